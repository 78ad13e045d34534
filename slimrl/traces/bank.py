"""``TraceBank``: many traces in one table, so (trace index, t, N) queries run in one numpy pass."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from slimrl.traces.errors import EmptyTraceError
from slimrl.traces.trace import Trace, _finish

_SORT_MIN_QUERIES = 4096  # order big batches by trace ...
_SORT_MIN_KNOTS = 1 << 15  # ... when the table outgrows the CPU caches


class TraceBank:
    """Every trace of a set concatenated into one time axis and one cumulative-bytes table.

    Trace ``k`` owns the knot indices ``start[k] .. start[k] + len(trace_k)`` (its piece starts
    and its end). On the global axes its times are offset by the durations of the traces before
    it and its cumulative bytes by their totals, so one ``np.searchsorted`` over the global arrays
    finds the pieces of a whole vector of queries. The arithmetic then runs on the local
    (per-trace) values, and the rare query whose global search disagrees with the local values by
    a rounding error is searched again locally, so results equal ``traces[k].transfer_times``
    exactly.
    """

    def __init__(self, traces: Iterable[Trace]) -> None:
        self.traces: list[Trace] = list(traces)
        if not self.traces:
            raise EmptyTraceError("TraceBank: no traces; expected at least one")
        sizes = np.array([len(tr) + 1 for tr in self.traces], dtype=np.int64)
        self._start = np.concatenate(([0], np.cumsum(sizes)[:-1])).astype(np.int64)
        self._end = self._start + sizes - 1  # index of each trace's end knot
        self.durations = np.array([tr.duration for tr in self.traces], dtype=np.float64)
        self.total_bytes = np.array([tr.total_bytes for tr in self.traces], dtype=np.float64)
        self._toff = np.concatenate(([0.0], np.cumsum(self.durations)[:-1]))
        self._boff = np.concatenate(([0.0], np.cumsum(self.total_bytes)[:-1]))
        self._lt = np.concatenate([tr.knots for tr in self.traces])
        self._lc = np.concatenate([tr.cumulative_bytes for tr in self.traces])
        self._cap = np.concatenate([np.append(tr.capacity, 0.0) for tr in self.traces])
        rep = np.repeat(np.arange(len(self.traces)), sizes)
        # Same float operations as the queries below, so rounding is consistent (and monotone).
        self._gt = self._lt + self._toff[rep]
        self._gc = self._lc + self._boff[rep]
        for a in (self.durations, self.total_bytes):
            a.flags.writeable = False

    def __len__(self) -> int:
        return len(self.traces)

    def __iter__(self) -> Iterator[Trace]:
        return iter(self.traces)

    def __getitem__(self, i: int) -> Trace:
        return self.traces[i]

    @property
    def names(self) -> list[str]:
        return [tr.name for tr in self.traces]

    def transfer_time(self, i: int, t: float, nbytes: float) -> float:
        """Scalar: seconds to send ``nbytes`` over trace ``i`` starting at ``t`` (s)."""
        return self.traces[i].transfer_time(t, nbytes)

    def _queries(self, idx, *arrays):
        """Broadcast and flatten the queries; order them by trace when that helps the cache.

        Returns ``(order, shape, idx, tm, *rest)``: 1-D arrays (permuted by ``order`` unless it is
        ``None``) and ``tm``, the start times taken modulo each trace's duration.
        """
        idx, *arrays = np.broadcast_arrays(
            np.asarray(idx), *(np.asarray(a, dtype=np.float64) for a in arrays)
        )
        if idx.dtype.kind not in "iu":
            raise TypeError(f"trace indices must be integers, got {idx.dtype}")
        shape = idx.shape
        idx = idx.ravel()
        arrays = [a.ravel() for a in arrays]
        if idx.size and (idx.min() < 0 or idx.max() >= len(self.traces)):
            raise IndexError(f"trace index out of range 0..{len(self.traces) - 1}")
        order = None
        if idx.size >= _SORT_MIN_QUERIES and self._lt.size >= _SORT_MIN_KNOTS:
            # Grouped by trace, each binary search stays in one trace's (cached) part of the table.
            key = idx.astype(np.uint16) if len(self.traces) <= 65536 else idx
            order = np.argsort(key, kind="stable")
            idx = idx[order]
            arrays = [a[order] for a in arrays]
        dur = self.durations[idx]
        tm = np.mod(arrays[0], dur)
        tm = np.where(tm >= dur, 0.0, tm)
        return order, shape, idx, tm, *arrays[1:]

    @staticmethod
    def _restore(values: np.ndarray, order: np.ndarray | None, shape: tuple) -> np.ndarray:
        if order is not None:
            out = np.empty_like(values)
            out[order] = values
            values = out
        return values.reshape(shape)

    def _piece(self, idx: np.ndarray, tm: np.ndarray) -> np.ndarray:
        """Knot index of the piece holding local time ``tm`` of trace ``idx`` (1-D)."""
        lo, hi = self._start[idx], self._end[idx] - 1
        i = np.searchsorted(self._gt, tm + self._toff[idx], side="right") - 1
        i = np.clip(i, lo, hi)
        lt = self._lt
        for q in np.flatnonzero((lt[i] > tm) | (lt[i + 1] <= tm)):  # rounding: search locally
            s, e = lo[q], hi[q] + 1
            k = np.searchsorted(lt[s : e + 1], tm[q], side="right") - 1
            i[q] = s + min(max(int(k), 0), e - s - 1)
        return i

    def capacity_at(self, idx: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Capacity (bytes/s) of trace ``idx`` at time ``t`` (vectorised, wraps)."""
        order, shape, idx, tm = self._queries(idx, t)
        return self._restore(self._cap[self._piece(idx, tm)], order, shape)

    def transfer_times(
        self, idx: np.ndarray, t: np.ndarray, nbytes: np.ndarray | float
    ) -> np.ndarray:
        """Vectorised: seconds to send ``nbytes`` over trace ``idx`` starting at ``t`` (s)."""
        order, shape, idx, tm, n = self._queries(idx, t, nbytes)
        if (n < 0).any():
            raise ValueError("nbytes must be >= 0")
        i = self._piece(idx, tm)
        lo, hi = self._start[idx], self._end[idx]
        lc = self._lc

        def search_end(r: np.ndarray) -> np.ndarray:
            j = np.searchsorted(self._gc, r + self._boff[idx], side="left")
            j = np.clip(j, lo + 1, hi)
            bad = ~((lc[j - 1] < r) & (r <= lc[j])) & (n > 0)
            for q in np.flatnonzero(bad):  # rounding: search locally
                s, e = lo[q], hi[q]
                k = np.searchsorted(lc[s : e + 1], r[q], side="left")
                j[q] = s + min(max(int(k), 1), e - s)
            return j

        dt = _finish(
            tm,
            n,
            i,
            self._lt,
            lc,
            self._cap,
            self.durations[idx],
            self.total_bytes[idx],
            lo,
            hi,
            fix_j=search_end,
        )
        return self._restore(dt, order, shape)
