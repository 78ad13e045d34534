"""``mpc``: robust model-predictive control (after Yin et al., SIGCOMM 2015), and ``tuned-mpc``.

- Goodput prediction: the harmonic mean of the last ``window`` measured goodputs, discounted by
  the largest relative prediction error over the last ``window`` frames:
  ``pred = harmonic_mean / (1 + max_error)`` (robust MPC's throughput estimate).
- Predicted frame of mode m: the device's mean compute time (device profile), the payload over
  the predicted goodput times ``margin``, twice the base delay, the edge's median service time,
  and the queueing delay the edge reported with its last answer, drained by the time that passes
  before the frame reaches the edge.
- It enumerates every sequence of ``horizon`` allowed modes, predicts each frame's reward (table
  accuracy, the scenario's deadline accounting, predicted energy) and its busy time (the time to
  the next frame), and plays the first mode of the sequence with the highest predicted reward
  per second: the objective is reward per second of trace, so a slower mode must earn its time.
  When even the best sequence's first frame is predicted late, it sends the mode with the
  smallest predicted end-to-end time instead (a miss then blocks the device the least, and the
  next frame may find the link recovered).
- Before the first measurement of an episode: the fastest mode, as a probe.

``window`` and ``margin`` may be (N,) arrays (one per row) so a whole parameter grid runs as one
batch (the ``tuned-mpc`` search).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from slimrl.errors import PolicyError
from slimrl.policies.base import ModeTable, PolicyContext, register_policy
from slimrl.policies.heuristics import GoodputHistory, parse_params


class RobustMPC(GoodputHistory):
    """Robust MPC over the next ``horizon`` frames (see the module docstring)."""

    name = "mpc"

    def __init__(
        self,
        table: ModeTable,
        window: int | Sequence[int] | np.ndarray = 5,
        margin: float | Sequence[float] | np.ndarray = 1.0,
        horizon: int = 2,
        name: str | None = None,
    ) -> None:
        if not 1 <= int(horizon) <= 4:
            raise ValueError(f"horizon must be 1..4, got {horizon!r}")
        self.horizon = int(horizon)
        # every sequence of allowed modes, (S, horizon)
        allowed = np.flatnonzero(table.allowed)
        self._seqs = np.array(list(itertools.product(allowed, repeat=self.horizon)))
        self._first = self._seqs[:, 0]
        self._before_edge_ms = table.compute_ms + table.delay_ms  # queue drains meanwhile
        super().__init__(table, window, margin, name)

    def _alloc(self, n: int) -> None:
        super()._alloc(n)
        self.err_hist = np.zeros((n, self.max_window))  # relative prediction errors
        self.last_pred = np.zeros(n)  # predicted ms per byte of the frame in flight

    def _reset_rows(self, rows: np.ndarray) -> None:
        super()._reset_rows(rows)
        self.err_hist[rows] = 0.0
        self.last_pred[rows] = 0.0

    def update(self, infos: Mapping[str, Any]) -> None:
        """Fold the last frame's measurement into the history; reset rows without one."""
        valid, inv = self._measure(infos)
        # relative error of the goodput prediction: |pred - actual| / actual, in rate terms
        with np.errstate(divide="ignore", invalid="ignore"):
            err = np.where(
                (self.last_pred > 0) & (inv > 0), np.abs(inv / self.last_pred - 1.0), 0.0
            )
        self._push(self.inv_hist, valid, inv)
        self._push(self.err_hist, valid, err)
        self._count(valid)

    def predicted_ms_per_byte(self) -> np.ndarray:
        """Robust prediction (N,): harmonic-mean goodput discounted by the worst recent error."""
        harmonic = self._window_mean(self.inv_hist)  # mean of ms/byte = 1 / harmonic
        return harmonic * (1.0 + self._window_mean(self.err_hist, "max"))

    def act_batch(self, observations: np.ndarray, infos: Mapping[str, Any]) -> np.ndarray:
        self.update(infos)
        t = self.table
        self.last_pred = self._window_mean(self.inv_hist)
        inv = self.predicted_ms_per_byte()
        tx = (self.margin.reshape(-1, 1) * inv[:, None]) * self._payload[None, :]  # (N, M)
        total_r = np.zeros((self.n, len(self._seqs)))
        total_t = np.zeros_like(total_r)
        queue = np.broadcast_to(self.queue_ms[:, None], total_r.shape).copy()
        first_e2e = None
        for h in range(self.horizon):
            m = self._seqs[:, h]
            tx_h = tx[:, m]
            wait = np.maximum(queue - (self._before_edge_ms[m] + tx_h), 0.0)
            e2e = self._fixed_ms[m] + tx_h + wait
            if first_e2e is None:
                first_e2e = e2e
            r = t.expected_reward(e2e, tx_h, m)
            busy = t.busy_ms(e2e)
            total_r += r
            total_t += busy
            queue = np.maximum(queue - busy, 0.0)
        seq = (total_r / total_t).argmax(axis=1)
        rows = np.arange(self.n)
        late = first_e2e[rows, seq] > t.deadline_ms
        fastest = self._first[first_e2e.argmin(axis=1)]
        best = np.where(late, fastest, self._first[seq])
        return np.where(self.count > 0, best, self.probe)


@register_policy(
    "mpc",
    "mpc[:window=W,margin=M,horizon=H]",
    "robust model-predictive control over the next frames (default window 5, margin 1, H 2)",
)
def _mpc(arg: str, ctx: PolicyContext) -> RobustMPC:
    if not arg:
        return RobustMPC(ctx.table)
    try:
        params = parse_params(arg, {"window": int, "margin": float, "horizon": int})
        return RobustMPC(ctx.table, **params)
    except ValueError:
        raise PolicyError(
            f"policy 'mpc:{arg}': expected mpc:window=N,margin=X,horizon=H "
            "(N >= 1, X > 0, H in 1..4)"
        ) from None
