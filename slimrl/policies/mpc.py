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
from slimrl.policies.base import (
    BatchPolicy,
    ModeTable,
    PolicyContext,
    measurements,
    register_policy,
)
from slimrl.policies.heuristics import fastest_mode, parse_params


class RobustMPC(BatchPolicy):
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
        self.window = np.asarray(window, dtype=np.int64)
        self.margin = np.asarray(margin, dtype=np.float64)
        if (self.window < 1).any():
            raise ValueError(f"window must be >= 1, got {window!r}")
        if (self.margin <= 0).any():
            raise ValueError(f"margin must be > 0, got {margin!r}")
        if not 1 <= int(horizon) <= 4:
            raise ValueError(f"horizon must be 1..4, got {horizon!r}")
        self.horizon = int(horizon)
        self.max_window = int(self.window.max())
        if name is not None:
            self.name = name
        t = table
        allowed = np.flatnonzero(t.allowed)
        # every sequence of allowed modes, (S, horizon)
        self._seqs = np.array(list(itertools.product(allowed, repeat=self.horizon)))
        self._first = self._seqs[:, 0]
        self._fixed_ms = t.compute_ms + 2.0 * t.delay_ms + t.service_ms
        self._before_edge_ms = t.compute_ms + t.delay_ms  # queue drains meanwhile (plus transfer)
        self._payload = t.payload_bytes
        self.probe = fastest_mode(t)
        self._params = (self.window, self.margin)
        per_row = [a.size for a in (self.window, self.margin) if a.ndim]
        super().__init__(table, per_row[0] if per_row else 1)

    def reset(self, n: int = 1) -> None:
        # per-row parameters as given (keep_rows drops rows of an evaluation in progress)
        self.window, self.margin = self._params
        for arr in (self.window, self.margin):
            if arr.ndim and arr.size != n:
                raise ValueError(f"{self.name}: per-row parameters for {arr.size} rows, reset({n})")
        super().reset(n)

    def keep_rows(self, rows: np.ndarray) -> None:
        idx = np.asarray(rows, dtype=np.int64).reshape(-1)
        if self.window.ndim:
            self.window = self.window[idx]
        if self.margin.ndim:
            self.margin = self.margin[idx]
        super().keep_rows(idx)

    def _alloc(self, n: int) -> None:
        self.inv_hist = np.zeros((n, self.max_window))  # ms per byte, newest first
        self.err_hist = np.zeros((n, self.max_window))  # relative prediction errors
        self.count = np.zeros(n, dtype=np.int64)
        self.queue_ms = np.zeros(n)
        self.last_pred = np.zeros(n)  # predicted ms per byte of the frame in flight

    def _reset_rows(self, rows: np.ndarray) -> None:
        for arr in (self.inv_hist, self.err_hist, self.count, self.queue_ms, self.last_pred):
            arr[rows] = 0

    def _window_mean(self, hist: np.ndarray, reduce: str) -> np.ndarray:
        used = np.minimum(self.count, self.window)
        cols = np.arange(self.max_window)
        w = cols[None, :] < used[:, None]
        if reduce == "max":
            return np.where(w, hist, 0.0).max(axis=1)
        return (hist * w).sum(axis=1) / np.maximum(used, 1)

    def update(self, infos: Mapping[str, Any]) -> None:
        """Fold the last frame's measurement into the history; reset rows without one."""
        valid, nbytes, tx_ms, queue = measurements(
            infos, self.n, ("bytes", "transfer_ms", "edge_queue_ms")
        )
        self._reset_rows(~valid)
        inv = tx_ms / np.maximum(nbytes, 1.0)
        # relative error of the goodput prediction: |pred - actual| / actual, in rate terms
        with np.errstate(divide="ignore", invalid="ignore"):
            err = np.where(
                (self.last_pred > 0) & (inv > 0), np.abs(inv / self.last_pred - 1.0), 0.0
            )
        if self.max_window > 1:
            self.inv_hist[valid, 1:] = self.inv_hist[valid, :-1]
            self.err_hist[valid, 1:] = self.err_hist[valid, :-1]
        self.inv_hist[valid, 0] = inv[valid]
        self.err_hist[valid, 0] = err[valid]
        self.count = np.where(valid, np.minimum(self.count + 1, self.max_window), self.count)
        self.queue_ms = np.where(valid, queue, self.queue_ms)

    def predicted_ms_per_byte(self) -> np.ndarray:
        """Robust prediction (N,): harmonic-mean goodput discounted by the worst recent error."""
        harmonic = self._window_mean(self.inv_hist, "mean")  # mean of ms/byte = 1 / harmonic
        return harmonic * (1.0 + self._window_mean(self.err_hist, "max"))

    def act_batch(self, observations: np.ndarray, infos: Mapping[str, Any]) -> np.ndarray:
        self.update(infos)
        t = self.table
        self.last_pred = self._window_mean(self.inv_hist, "mean")
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
