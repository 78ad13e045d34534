"""``Trace``: piecewise-constant link capacity (bytes/s) with O(log n) transfer-time lookups.

A trace is a list of pieces: piece ``i`` starts at ``times[i]`` (s) and runs at ``capacity[i]``
(bytes/s) until the next piece starts, the last one until ``duration``. The trace repeats forever
(as mahimahi's ``mm-link`` loops it). Transfers integrate the capacity through a cumulative-bytes
table ``cum`` (bytes delivered from 0 to each piece start, plus the total at ``duration``), so a
lookup is two binary searches, never a per-millisecond loop.
"""

from __future__ import annotations

import math
import os
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from slimrl.io import atomic_path
from slimrl.traces.errors import EmptyTraceError, TraceLimitError, TraceTimeError, TraceValueError
from slimrl.traces.limits import MAX_DURATION_S, MAX_PIECES, MIN_TOTAL_BYTES

BITS_PER_BYTE = 8.0
MBPS = 1e6 / BITS_PER_BYTE  # bytes/s in one Mbit/s


class Trace:
    """Piecewise-constant capacity: ``times`` (s), ``capacity`` (bytes/s), ``duration`` (s).

    ``times[0] == 0``, ``times`` strictly increasing, ``capacity >= 0``, ``duration > times[-1]``
    (default: the last piece lasts as long as the one before it, 1 s for a single piece), and the
    total bytes over one period must be finite and at least ``MIN_TOTAL_BYTES``; at most
    ``MAX_PIECES`` pieces and ``MAX_DURATION_S`` seconds (:mod:`slimrl.traces.limits`). Arrays are
    read-only: a trace is immutable.
    """

    def __init__(
        self,
        times: Sequence[float] | np.ndarray,
        capacity: Sequence[float] | np.ndarray,
        duration: float | None = None,
        *,
        name: str = "trace",
        source: str | os.PathLike | None = None,
        fmt: str = "array",
    ) -> None:
        self.name = str(name)
        self.source = None if source is None else Path(source)
        self.fmt = fmt
        where = str(self.source) if self.source is not None else f"trace {self.name!r}"
        times = np.array(times, dtype=np.float64).reshape(-1)
        capacity = np.array(capacity, dtype=np.float64).reshape(-1)
        if times.size == 0 or times.size != capacity.size:
            raise EmptyTraceError(
                f"{where}: {times.size} piece times and {capacity.size} capacities; "
                "expected the same number, at least one"
            )
        if times.size > MAX_PIECES:
            raise TraceLimitError(
                f"{where}: {times.size:,} pieces; expected at most {MAX_PIECES:,} "
                "(slimrl.traces.limits.MAX_PIECES)"
            )
        if not np.all(np.isfinite(times)):
            raise TraceValueError(
                f"{where}: field times: non-finite value; expected finite seconds"
            )
        if times[0] != 0.0:
            raise TraceTimeError(f"{where}: field times: starts at {times[0]!r}; expected 0")
        steps = np.diff(times)
        if steps.size and not np.all(steps > 0):
            k = int(np.argmin(steps > 0)) + 1
            raise TraceTimeError(
                f"{where}: field times[{k}]: {times[k]!r} after {times[k - 1]!r}; "
                "expected strictly increasing piece starts"
            )
        bad = ~np.isfinite(capacity) | (capacity < 0)
        if bad.any():
            k = int(np.argmax(bad))
            raise TraceValueError(
                f"{where}: field capacity[{k}]: {capacity[k]!r}; expected a finite value >= 0"
            )
        if duration is None:
            duration = float(times[-1] + (steps[-1] if steps.size else 1.0))
        duration = float(duration)
        if not math.isfinite(duration) or duration <= times[-1]:
            raise TraceTimeError(
                f"{where}: field duration: {duration!r}; expected a finite value after the last "
                f"piece start {times[-1]!r}"
            )
        if duration > MAX_DURATION_S:
            raise TraceLimitError(
                f"{where}: field duration: {duration!r} s; expected at most {MAX_DURATION_S:g} s "
                "(slimrl.traces.limits.MAX_DURATION_S)"
            )
        knots = np.append(times, duration)
        cum = np.concatenate(([0.0], np.cumsum(capacity * np.diff(knots))))
        total = float(cum[-1])
        if not total > 0.0:
            raise EmptyTraceError(
                f"{where}: zero total bytes (capacity is 0 everywhere); expected some capacity"
            )
        if total < MIN_TOTAL_BYTES:
            raise EmptyTraceError(
                f"{where}: {total:.3g} total bytes over the trace; expected at least "
                f"{MIN_TOTAL_BYTES:g} (slimrl.traces.limits.MIN_TOTAL_BYTES)"
            )
        if not math.isfinite(total):
            raise TraceValueError(
                f"{where}: total bytes overflow ({total!r}); expected finite capacities whose sum "
                "over the trace is finite"
            )
        for a in (times, capacity, knots, cum):
            a.flags.writeable = False
        self._times, self._capacity, self._knots, self._cum = times, capacity, knots, cum
        self._duration = duration
        self._total = total
        # Plain lists for the scalar path: bisect on lists is much faster than numpy on scalars.
        self._knots_l: list[float] = knots.tolist()
        self._cum_l: list[float] = cum.tolist()
        self._cap_l: list[float] = capacity.tolist()
        self._xfer = None  # transfer_fn(), built on first use

    # construction helpers -------------------------------------------------------------------
    @classmethod
    def from_mbps(
        cls,
        times: Sequence[float] | np.ndarray,
        mbps: Sequence[float] | np.ndarray,
        duration: float | None = None,
        **kwargs,
    ) -> Trace:
        """A trace from piece starts (s) and capacities in Mbit/s."""
        return cls(times, np.asarray(mbps, dtype=np.float64) * MBPS, duration, **kwargs)

    def scaled(self, factor: float) -> Trace:
        """The same trace with every capacity multiplied by ``factor`` (> 0)."""
        factor = float(factor)
        if not (math.isfinite(factor) and factor > 0):
            raise TraceValueError(
                f"{self._where()}: field scale: {factor!r}; expected a number > 0"
            )
        if factor == 1.0:
            return self
        return Trace(
            self._times,
            self._capacity * factor,
            self._duration,
            name=self.name,
            source=self.source,
            fmt=self.fmt,
        )

    def renamed(self, name: str) -> Trace:
        """The same trace under another name (arrays are shared: they are read-only)."""
        other = object.__new__(Trace)
        other.__dict__.update(self.__dict__)
        other.name = str(name)
        return other

    # properties -------------------------------------------------------------------------------
    @property
    def times(self) -> np.ndarray:
        """Piece starts (s), read-only."""
        return self._times

    @property
    def capacity(self) -> np.ndarray:
        """Piece capacities (bytes/s), read-only."""
        return self._capacity

    @property
    def mbps(self) -> np.ndarray:
        """Piece capacities in Mbit/s."""
        return self._capacity / MBPS

    @property
    def duration(self) -> float:
        """End of the last piece (s): the period of the trace."""
        return self._duration

    @property
    def knots(self) -> np.ndarray:
        """``times`` followed by ``duration`` (s)."""
        return self._knots

    @property
    def cumulative_bytes(self) -> np.ndarray:
        """Bytes delivered from 0 to each knot (``len(times) + 1`` values)."""
        return self._cum

    @property
    def total_bytes(self) -> float:
        """Bytes delivered over one period."""
        return self._total

    @property
    def mean_mbps(self) -> float:
        """Time-averaged capacity (Mbit/s)."""
        return self._total / self._duration / MBPS

    @property
    def outage_fraction(self) -> float:
        """Fraction of the time with zero capacity."""
        widths = np.diff(self._knots)
        return float(widths[self._capacity == 0].sum() / self._duration)

    def percentile_mbps(self, q: float | Sequence[float]) -> float | np.ndarray:
        """Time-weighted percentile(s) ``q`` in [0, 100] of the capacity (Mbit/s)."""
        order = np.argsort(self._capacity, kind="stable")
        weights = np.cumsum(np.diff(self._knots)[order]) / self._duration
        qs = np.atleast_1d(np.asarray(q, dtype=np.float64)) / 100.0
        k = np.minimum(np.searchsorted(weights, qs, side="left"), order.size - 1)
        out = self._capacity[order][k] / MBPS
        return float(out[0]) if np.ndim(q) == 0 else out

    def __len__(self) -> int:
        return int(self._times.size)

    def __repr__(self) -> str:
        return (
            f"Trace({self.name!r}, fmt={self.fmt!r}, pieces={len(self)}, "
            f"duration={self._duration:.3f} s, mean={self.mean_mbps:.3f} Mbit/s)"
        )

    def _where(self) -> str:
        return str(self.source) if self.source is not None else f"trace {self.name!r}"

    def to_csv(self, path: str | os.PathLike) -> Path:
        """Write the canonical CSV (atomically): header ``time_s,mbps``, one row per piece start,
        then a last row ``<duration>,`` (empty mbps) that marks the end of the last piece."""
        path = Path(path)
        rows = [
            f"{t!r},{m!r}" for t, m in zip(self._times.tolist(), self.mbps.tolist(), strict=True)
        ]
        text = "time_s,mbps\n" + "\n".join(rows) + f"\n{self._duration!r},\n"
        with atomic_path(path) as tmp:
            tmp.write_text(text)
        return path

    # lookups ----------------------------------------------------------------------------------
    def capacity_at(self, t: float | np.ndarray) -> float | np.ndarray:
        """Capacity (bytes/s) at time ``t`` (s, wraps around at ``duration``)."""
        if np.ndim(t) == 0:
            tm = float(t) % self._duration
            i = bisect_right(self._knots_l, tm) - 1
            return self._cap_l[min(max(i, 0), len(self._cap_l) - 1)]
        tm = np.mod(np.asarray(t, dtype=np.float64), self._duration)
        i = np.searchsorted(self._knots, tm, side="right") - 1
        return self._capacity[np.clip(i, 0, self._times.size - 1)]

    def transfer_time(self, t: float, nbytes: float) -> float:
        """Seconds needed to send ``nbytes`` starting at time ``t`` (s, taken modulo ``duration``).

        Zero-capacity pieces stall the transfer; the trace wraps around, whole periods at a time
        for transfers longer than ``total_bytes``. The end is the earliest instant at which the
        cumulative bytes reach the target, so an end that lands exactly on the start of an outage
        does not wait for the outage. ``nbytes == 0`` gives 0.0.
        """
        return self.transfer(t, nbytes)[0]

    def transfer(self, t: float, nbytes: float) -> tuple[float, float]:
        """``(transfer_time(t, nbytes), capacity at t)`` in one lookup (s, bytes/s)."""
        fn = self._xfer
        if fn is None:
            fn = self._xfer = self.transfer_fn()
        return fn(t, nbytes)

    def transfer_fn(self):
        """:meth:`transfer` as a closure over this trace's lists (the single env's hot path)."""
        dur, total = self._duration, self._total
        knots, cum, cap = self._knots_l, self._cum_l, self._cap_l
        last = len(cum) - 1
        capacity_at, ceil = self.capacity_at, math.ceil

        def transfer(t: float, nbytes: float) -> tuple[float, float]:
            if nbytes <= 0:
                if nbytes == 0:
                    return 0.0, capacity_at(t)
                raise ValueError(f"nbytes must be >= 0, got {nbytes!r}")
            tm = t % dur
            if tm >= dur:  # t a hair below 0
                tm = 0.0
            i = bisect_right(knots, tm) - 1
            target = cum[i] + cap[i] * (tm - knots[i]) + nbytes
            if target <= total:
                p = 0
                r = target
            else:
                p = ceil(target / total) - 1
                r = target - p * total
                if r > total:
                    p += 1
                    r -= total
                elif r <= 0.0:
                    p -= 1
                    r += total
            j = bisect_left(cum, r)
            if j > last:
                j = last
            end = knots[j - 1] + (r - cum[j - 1]) / cap[j - 1]
            dt = p * dur + end - tm
            return (dt if dt > 0.0 else 0.0), cap[i]

        return transfer

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_xfer"] = None  # a closure: rebuilt on first use
        return state

    def transfer_times(self, t: float | np.ndarray, nbytes: float | np.ndarray) -> np.ndarray:
        """Vectorised :meth:`transfer_time` over broadcast arrays ``t`` (s) and ``nbytes``."""
        t, n = np.broadcast_arrays(
            np.asarray(t, dtype=np.float64), np.asarray(nbytes, dtype=np.float64)
        )
        if (n < 0).any():
            raise ValueError("nbytes must be >= 0")
        dur = self._duration
        tm = np.mod(t, dur)
        tm = np.where(tm >= dur, 0.0, tm)
        last = self._times.size - 1
        i = np.clip(np.searchsorted(self._knots, tm, side="right") - 1, 0, last)
        return _finish(
            tm, n, i, self._knots, self._cum, self._capacity, dur, self._total, 0, last + 1
        )


def _wrap(target: np.ndarray, total: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """Split byte offsets ``target`` into whole periods ``p`` and a rest ``r`` in (0, total]."""
    p = np.maximum(np.ceil(target / total) - 1.0, 0.0)
    r = target - p * total
    over = r > total
    p = np.where(over, p + 1.0, p)
    r = np.where(over, r - total, r)
    under = (r <= 0.0) & (p > 0)
    p = np.where(under, p - 1.0, p)
    r = np.where(under, r + total, r)
    return p, r


def _finish(
    tm: np.ndarray,
    n: np.ndarray,
    i: np.ndarray,
    knots: np.ndarray,
    cum: np.ndarray,
    cap: np.ndarray,
    dur: np.ndarray | float,
    total: np.ndarray | float,
    lo: np.ndarray | int,
    hi: np.ndarray | int,
    fix_j=None,
) -> np.ndarray:
    """Shared tail of the vectorised lookups: start piece ``i`` -> transfer time.

    ``lo``/``hi`` bound the knot indices of each query's trace (a single trace: 0 and n);
    ``fix_j`` (TraceBank) maps a rest ``r`` to end-knot indices when the search is global.
    """
    pos = cum[i] + cap[i] * (tm - knots[i])
    target = pos + n
    if np.all(target <= total):  # no transfer wraps around the trace: the common case
        p, r = 0.0, target
    else:
        p, r = _wrap(target, total)
    j = np.searchsorted(cum, r, side="left") if fix_j is None else fix_j(r)
    j = np.clip(j, np.asarray(lo) + 1, hi)
    with np.errstate(divide="ignore", invalid="ignore"):
        end = knots[j - 1] + (r - cum[j - 1]) / cap[j - 1]
        dt = p * dur + end - tm
    dt = np.where(n > 0, np.maximum(dt, 0.0), 0.0)
    return dt
