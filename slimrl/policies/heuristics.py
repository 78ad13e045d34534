"""Threshold heuristics: fixed modes, random, the founding paper's controller, rate-threshold.

Every heuristic sees only what the device knows: the model and device profiles, the scenario's
constants (:class:`~slimrl.policies.base.ModeTable`) and its own measurements from ``info``
(payload bytes, transfer, compute, edge and end-to-end times of each frame, the queueing delay the
edge reported). All are
:class:`~slimrl.policies.base.BatchPolicy`: N rows at once, state in (N,) arrays. Only allowed
modes (scenario ``modes``) are ever chosen. Ties go to the smaller flat index (smaller k, then
fewer bits).
"""

from __future__ import annotations

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

_NEG = -np.inf


def fastest_mode(table: ModeTable) -> int:
    """The allowed mode with the smallest mean compute time, then the smallest payload."""
    idx = np.flatnonzero(table.allowed)
    order = np.lexsort((idx, table.payload_bytes[idx], table.compute_ms[idx]))
    return int(idx[order[0]])


class Static(BatchPolicy):
    """``static:K,B``: always the same mode."""

    def __init__(self, table: ModeTable, k: int, bits: int) -> None:
        self.mode = table.index(k, bits)
        if not table.allowed[self.mode]:
            raise ValueError(f"mode k={k} bits={bits} is not allowed by the scenario's modes")
        self.name = f"static:{k},{bits}"
        super().__init__(table)

    def act_batch(self, observations: np.ndarray, infos: Mapping[str, Any]) -> np.ndarray:
        return np.full(len(observations), self.mode, dtype=np.int64)


class RandomPolicy(BatchPolicy):
    """``random``: a uniform draw over the allowed modes each frame (seeded at construction)."""

    name = "random"

    def __init__(self, table: ModeTable, seed: int | None = 0) -> None:
        self._choices = np.flatnonzero(table.allowed)
        self.rng = np.random.default_rng(seed)
        super().__init__(table)

    def act_batch(self, observations: np.ndarray, infos: Mapping[str, Any]) -> np.ndarray:
        return self.rng.choice(self._choices, size=len(observations))


class PaperEWMA(BatchPolicy):
    """``paper-ewma``: the controller of Assine et al., WoWMoM 2023, exactly as published (the
    authors' ``src/device.py`` and ``Assine2022B.get_best_mode`` in
    github.com/jsiloto/adaptive-cod-on-device).

    - After each frame, a bandwidth sample in kB/s (kB = 1000 bytes):
      ``x = payload_kB / (e2e - encoder_time - decoder_time)`` per second, i.e.
      ``bytes / (e2e_ms - compute_ms - service_ms)``, where ``service_ms`` is the edge's decoder
      time (``edge_ms - edge_queue_ms``): the sample includes the link's latencies both ways,
      base delays and any queue at the edge.
    - EWMA ``bw <- 0.4 * x + 0.6 * bw``, starting at ``bw = 200`` kB/s.
    - The next mode: the highest-accuracy allowed mode with
      ``60 ms * (k + bits / 10) + payload_bytes / bw < 0.8 * deadline`` (``payload / bw`` in
      ms) whose accuracy exceeds that of (1, 1); none: (1, 1). Ties go to the first mode in
      (k, bits) order, as in the authors' loop. It ignores the decoder time and under-estimates
      the in-loop encoder time: the reason it misses deadlines.
    - The first frame of an episode runs (1, 1) (the authors' loop starts in mode 11).
    - (1, 1) not allowed by the scenario's ``modes``: the allowed mode with the smallest
      ``60 * (k + bits / 10)``.

    Deviations, each off by default (``paper-ewma:sample=transfer,init=first``):
    ``sample="transfer"`` takes the sample from the uplink transfer alone
    (``bytes / transfer_ms``); ``init="first"`` seeds the EWMA with the first sample instead of
    200 kB/s. A sample whose denominator is not positive (clock noise) counts as 1 ns.
    """

    name = "paper-ewma"

    def __init__(
        self,
        table: ModeTable,
        alpha: float = 0.4,
        ms_per_unit: float = 60.0,
        budget: float = 0.8,
        initial_kBps: float = 200.0,
        sample: str = "e2e",
        init: str = "paper",
    ) -> None:
        if sample not in ("e2e", "transfer"):
            raise ValueError(f"sample must be 'e2e' or 'transfer', got {sample!r}")
        if init not in ("paper", "first"):
            raise ValueError(f"init must be 'paper' or 'first', got {init!r}")
        self.alpha = float(alpha)
        self.initial_kBps = float(initial_kBps)
        self.sample = sample
        self.init = init
        self.budget_ms = float(budget) * table.deadline_ms
        self._fixed_ms = ms_per_unit * (table.k + table.bits / 10.0)
        self._payload = table.payload_bytes
        self._allowed = table.allowed
        idx = np.flatnonzero(table.allowed)
        self.fallback = int(idx[np.lexsort((idx, self._fixed_ms[idx]))[0]])
        # only modes more accurate than the fallback can replace it (the authors' strict ``>``)
        self._acc = np.where(
            table.allowed & (table.accuracy > table.accuracy[self.fallback]), table.accuracy, _NEG
        )
        if sample != "e2e" or init != "paper":
            self.name = f"paper-ewma:sample={sample},init={init}"
        super().__init__(table)

    def _alloc(self, n: int) -> None:
        self.bw_kBps = np.full(n, self.initial_kBps)
        self.seen = np.zeros(n, dtype=bool)

    def _reset_rows(self, rows: np.ndarray) -> None:
        self.bw_kBps[rows] = self.initial_kBps
        self.seen[rows] = False

    def bandwidth_sample(self, infos: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        """``(valid, x)``: rows with a measurement of the last frame and its sample in kB/s."""
        if self.sample == "transfer":
            valid, nbytes, tx_ms = measurements(infos, self.n, ("bytes", "transfer_ms"))
            return valid, nbytes / np.maximum(tx_ms, 1e-6)
        valid, nbytes, e2e, comp, edge, queue = measurements(
            infos, self.n, ("bytes", "e2e_ms", "compute_ms", "edge_ms", "edge_queue_ms")
        )
        net_ms = e2e - comp - (edge - queue)
        return valid, nbytes / np.maximum(net_ms, 1e-6)

    def update(self, infos: Mapping[str, Any]) -> None:
        """Fold the last frame's sample into the estimate; reset rows without one."""
        valid, x = self.bandwidth_sample(infos)
        self._reset_rows(~valid)
        a = self.alpha
        first = valid & ~self.seen & (self.init == "first")
        ewma = a * x + (1 - a) * self.bw_kBps
        self.bw_kBps = np.where(first, x, np.where(valid, ewma, self.bw_kBps))
        self.seen |= valid

    def choose(self, bw_kBps: np.ndarray) -> np.ndarray:
        """The authors' ``get_best_mode`` for each row's bandwidth estimate (kB/s)."""
        with np.errstate(divide="ignore"):
            lhs = self._fixed_ms[None, :] + self._payload[None, :] / bw_kBps[:, None]
        fits = (lhs < self.budget_ms) & self._allowed
        score = np.where(fits, self._acc, _NEG)
        best = score.argmax(axis=1)
        return np.where(np.isfinite(score.max(axis=1)), best, self.fallback)

    def act_batch(self, observations: np.ndarray, infos: Mapping[str, Any]) -> np.ndarray:
        self.update(infos)
        return np.where(self.seen, self.choose(self.bw_kBps), self.fallback)


class GoodputHistory(BatchPolicy):
    """A policy that predicts transfers from the goodputs of its last ``window`` frames.

    Keeps per row the measured ms per byte of recent transfers (newest first), how many it holds
    and the queueing delay the edge reported last. ``window`` and ``margin`` are scalars, or (N,)
    arrays giving each row its own parameters (then ``reset(n)`` needs ``n == len``), which lets
    a whole grid run as one batch.
    """

    def __init__(
        self,
        table: ModeTable,
        window: int | Sequence[int] | np.ndarray,
        margin: float | Sequence[float] | np.ndarray,
        name: str | None = None,
    ) -> None:
        self.window = np.asarray(window, dtype=np.int64)
        self.margin = np.asarray(margin, dtype=np.float64)
        if (self.window < 1).any():
            raise ValueError(f"window must be >= 1, got {window!r}")
        if (self.margin <= 0).any():
            raise ValueError(f"margin must be > 0, got {margin!r}")
        self.max_window = int(self.window.max())
        if name is not None:
            self.name = name
        self._fixed_ms = table.compute_ms + 2.0 * table.delay_ms + table.service_ms
        self._payload = table.payload_bytes
        self.probe = fastest_mode(table)
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
        self.count = np.zeros(n, dtype=np.int64)
        self.queue_ms = np.zeros(n)

    def _reset_rows(self, rows: np.ndarray) -> None:
        self.inv_hist[rows] = 0.0
        self.count[rows] = 0
        self.queue_ms[rows] = 0.0

    def _measure(self, infos: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        """(valid (N,), ms per byte (N,)) of the last frames; resets rows without one."""
        valid, nbytes, tx_ms, queue = measurements(
            infos, self.n, ("bytes", "transfer_ms", "edge_queue_ms")
        )
        self._reset_rows(~valid)
        self.queue_ms = np.where(valid, queue, self.queue_ms)
        return valid, tx_ms / np.maximum(nbytes, 1.0)

    def _push(self, hist: np.ndarray, valid: np.ndarray, value: np.ndarray) -> None:
        """Shift ``value`` into the valid rows of a (N, max_window) history."""
        if self.max_window > 1:
            hist[valid, 1:] = hist[valid, :-1]
        hist[valid, 0] = value[valid]

    def _count(self, valid: np.ndarray) -> None:
        self.count = np.where(valid, np.minimum(self.count + 1, self.max_window), self.count)

    def _window_mean(self, hist: np.ndarray, reduce: str = "mean") -> np.ndarray:
        """Mean (or max) over each row's last ``min(count, window)`` entries of ``hist``."""
        used = np.minimum(self.count, self.window)
        w = np.arange(self.max_window)[None, :] < used[:, None]
        if reduce == "max":
            return np.where(w, hist, 0.0).max(axis=1)
        return (hist * w).sum(axis=1) / np.maximum(used, 1)


class RateThreshold(GoodputHistory):
    """``rate-threshold``: best expected reward per second among the modes predicted on time.

    - Bandwidth: harmonic mean of the goodputs of the last ``window`` transfers (goodput =
      payload / transfer time, stalls included), i.e. a transfer predicted to take
      ``payload * mean(transfer_ms / bytes)`` over those transfers.
    - Predicted end-to-end latency of mode m: the device's true mean compute time (device
      profile) + predicted transfer + 2 x base one-way delay + the queueing delay the edge
      reported with its last answer + the edge's median service time.
    - Among the allowed modes with ``e2e <= margin * deadline`` it picks the highest expected
      reward ``w_acc * accuracy - w_energy * predicted energy`` (energy of the mean compute time
      and of the predicted transfer under the device's radio model) per predicted busy time (the
      time to the next frame: the objective is reward per second of trace); none fits: the mode
      with the smallest predicted e2e.
    - Before the first measurement of an episode: the fastest mode (smallest mean compute, then
      smallest payload) as a probe.
    """

    name = "rate-threshold"

    def __init__(
        self,
        table: ModeTable,
        window: int | Sequence[int] | np.ndarray = 5,
        margin: float | Sequence[float] | np.ndarray = 0.9,
        name: str | None = None,
    ) -> None:
        super().__init__(table, window, margin, name)
        self._allowed = table.allowed

    def update(self, infos: Mapping[str, Any]) -> None:
        """Push the last frame's transfer into the history; reset rows without one."""
        valid, inv = self._measure(infos)
        self._push(self.inv_hist, valid, inv)
        self._count(valid)

    def predict_e2e_ms(self) -> tuple[np.ndarray, np.ndarray]:
        """(predicted e2e (N, M), predicted transfer (N, M)) in ms from the current state."""
        tx = self._window_mean(self.inv_hist)[:, None] * self._payload[None, :]
        return self._fixed_ms[None, :] + self.queue_ms[:, None] + tx, tx

    def act_batch(self, observations: np.ndarray, infos: Mapping[str, Any]) -> np.ndarray:
        self.update(infos)
        e2e, tx = self.predict_e2e_ms()
        budget = (self.margin * self.table.deadline_ms).reshape(-1, 1)
        fits = (e2e <= budget) & self._allowed
        t = self.table
        busy = t.busy_ms(e2e)
        value = t.expected_reward(e2e, tx) / busy
        best = np.where(fits, value, _NEG).argmax(axis=1)
        fallback = np.where(self._allowed, e2e, np.inf).argmin(axis=1)
        a = np.where(fits.any(axis=1), best, fallback)
        return np.where(self.count > 0, a, self.probe)


# -- names ----------------------------------------------------------------------------------------
def allowed_labels(table: ModeTable) -> str:
    return " ".join(
        f"{k},{b}" for (k, b), ok in zip(table.action_table, table.allowed, strict=True) if ok
    )


@register_policy("static", "static:K,B", "one fixed mode")
def _static(arg: str, ctx: PolicyContext) -> Static:
    try:
        k, b = (int(v) for v in arg.split(","))
        return Static(ctx.table, k, b)
    except ValueError as exc:
        detail = str(exc) if "mode" in str(exc) else "expected static:K,B"
        raise PolicyError(
            f"policy 'static:{arg}': {detail} (allowed modes: {allowed_labels(ctx.table)})"
        ) from None


@register_policy("random", help="uniform over the allowed modes, seeded")
def _random(arg: str, ctx: PolicyContext) -> RandomPolicy:
    return RandomPolicy(ctx.table, seed=ctx.seed)


@register_policy(
    "paper-ewma",
    "paper-ewma[:sample=transfer,init=first]",
    "the founding paper's controller as published (options: documented deviations)",
)
def _paper_ewma(arg: str, ctx: PolicyContext) -> PaperEWMA:
    if not arg:
        return PaperEWMA(ctx.table)
    try:
        return PaperEWMA(ctx.table, **parse_params(arg, {"sample": str, "init": str}))
    except ValueError:
        raise PolicyError(
            f"policy 'paper-ewma:{arg}': expected paper-ewma:sample=e2e|transfer,init=paper|first"
        ) from None


def parse_params(arg: str, kinds: Mapping[str, type]) -> dict[str, Any]:
    """``window=3,margin=0.7`` -> ``{"window": 3, "margin": 0.7}`` for the keys of ``kinds``."""
    out: dict[str, Any] = {}
    for item in arg.split(","):
        key, _, val = item.partition("=")
        key = key.strip()
        if key not in kinds:
            raise ValueError(f"unknown parameter {key!r}")
        out[key] = kinds[key](val)
    return out


@register_policy(
    "rate-threshold",
    "rate-threshold[:window=W,margin=M]",
    "harmonic-mean goodput, true compute profile, safety margin (default window 5, margin 0.9)",
)
def _rate_threshold(arg: str, ctx: PolicyContext) -> RateThreshold:
    if not arg:
        return RateThreshold(ctx.table)
    try:
        params = parse_params(arg, {"window": int, "margin": float})
        return RateThreshold(ctx.table, **params)
    except ValueError:
        raise PolicyError(
            f"policy 'rate-threshold:{arg}': expected rate-threshold:window=N,margin=X "
            "(N >= 1, X > 0)"
        ) from None
