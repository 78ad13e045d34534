"""Goodput <-> capacity for links whose transfers cost a fixed latency plus bytes over capacity.

On a link such as Bluetooth RFCOMM a transfer of ``P`` bytes takes ``L + P / C`` (a per-transfer
latency ``L`` plus the bytes at capacity ``C``), so the goodput measured with payloads of ``P``
bytes is ``G = P / (L + P / C)``: it grows with the payload, and a goodput trace used as a
capacity trace makes a payload ``k`` times larger take ``(k - 1) L`` too long. Given the payload a
goodput trace was measured with and the latency it contains, the capacity is
``C = P / (P / G - L)``. Zero goodput (an outage) stays zero capacity.
"""

from __future__ import annotations

import numpy as np

from slimrl.traces.errors import TraceValueError
from slimrl.traces.trace import Trace


def _check(trace: Trace, payload_bytes: float, latency_ms: float) -> tuple[float, float]:
    where = trace.source or trace.name
    if not (np.isfinite(payload_bytes) and payload_bytes > 0):
        raise TraceValueError(f"{where}: payload_bytes = {payload_bytes!r}; expected a number > 0")
    if not (np.isfinite(latency_ms) and latency_ms >= 0):
        raise TraceValueError(f"{where}: latency_ms = {latency_ms!r}; expected a number >= 0")
    return float(payload_bytes), float(latency_ms) * 1e-3


def goodput_to_capacity(trace: Trace, payload_bytes: float, latency_ms: float) -> Trace:
    """The capacity trace behind a goodput trace measured with ``payload_bytes`` transfers that
    each paid ``latency_ms`` (see the module docstring).

    Raises :class:`TraceValueError` naming the first piece whose goodput is too high for that
    latency (its payload would cross in no more than the latency alone).
    """
    p, lat = _check(trace, payload_bytes, latency_ms)
    g = trace.capacity
    with np.errstate(divide="ignore"):
        per = np.where(g > 0, p / g, np.inf)  # s per payload at the measured goodput
    bytes_time = per - lat
    bad = (g > 0) & ~(bytes_time > 0)
    if bad.any():
        i = int(np.argmax(bad))
        raise TraceValueError(
            f"{trace.source or trace.name}: piece {i} (t = {trace.times[i]:g} s): goodput "
            f"{g[i] * 8e-6:.4g} Mbit/s moves {p:g} bytes in {per[i] * 1e3:.3g} ms, not more than "
            f"the latency {latency_ms:g} ms; expected a smaller latency (or the payload the "
            "goodput was measured with)"
        )
    cap = np.where(g > 0, p / np.where(g > 0, bytes_time, 1.0), 0.0)
    return Trace(trace.times, cap, trace.duration, name=trace.name, source=trace.source, fmt="csv")


def capacity_to_goodput(trace: Trace, payload_bytes: float, latency_ms: float) -> Trace:
    """The goodput of ``payload_bytes`` transfers that each pay ``latency_ms`` on a capacity trace
    (piece by piece: the inverse of :func:`goodput_to_capacity`)."""
    p, lat = _check(trace, payload_bytes, latency_ms)
    c = trace.capacity
    with np.errstate(divide="ignore"):
        g = np.where(c > 0, p / (lat + p / np.where(c > 0, c, 1.0)), 0.0)
    return Trace(trace.times, g, trace.duration, name=trace.name, source=trace.source, fmt="csv")
