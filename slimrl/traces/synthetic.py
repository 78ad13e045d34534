"""Synthetic capacity traces: a seeded mean-reverting random walk of the log capacity.

Used for the Bluetooth traces of ``traces/bluetooth-synthetic`` (``bench/bluetooth_traces.py``
writes them): no public per-second capacity log of a Bluetooth Classic link exists, so the traces
are made from published figures, and documented as synthetic.

The log capacity follows an Ornstein-Uhlenbeck process around ``log(mean_kBps)`` with
correlation time ``tau_s`` and a stationary spread ``spread`` (std of the log); on top, fades
(interference, retransmission bursts) start at rate ``fade_rate_per_s``, last an exponential
time of mean ``fade_s`` and multiply the capacity by a uniform factor in ``fade_depth``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from slimrl.io import atomic_path
from slimrl.traces.trace import MBPS, Trace


def random_walk_trace(
    seed: int,
    mean_kBps: float,
    *,
    duration_s: float = 600.0,
    resolution_s: float = 0.2,
    tau_s: float = 5.0,
    spread: float = 0.1,
    fade_rate_per_s: float = 1 / 40,
    fade_s: float = 1.5,
    fade_depth: tuple[float, float] = (0.3, 0.7),
    name: str = "synthetic",
) -> Trace:
    """A capacity trace (bytes/s) of ``duration_s`` in pieces of ``resolution_s``."""
    rng = np.random.default_rng(seed)
    n = int(round(duration_s / resolution_s))
    a = math.exp(-resolution_s / tau_s)
    x = np.empty(n)
    x[0] = rng.normal(0.0, spread)
    eps = rng.normal(0.0, spread * math.sqrt(1 - a * a), n)
    for i in range(1, n):
        x[i] = a * x[i - 1] + eps[i]
    factor = np.ones(n)
    t = rng.exponential(1 / fade_rate_per_s)
    while t < duration_s:
        length = rng.exponential(fade_s)
        i0, i1 = int(t / resolution_s), int(math.ceil((t + length) / resolution_s))
        factor[i0:i1] *= rng.uniform(*fade_depth)
        t += length + rng.exponential(1 / fade_rate_per_s)
    cap = mean_kBps * 1000.0 * np.exp(x - 0.5 * spread * spread) * factor
    times = np.arange(n) * resolution_s
    return Trace(times, cap, n * resolution_s, name=name, fmt="csv")


def write_csv(trace: Trace, path: str | os.PathLike, digits: int = 4) -> Path:
    """The canonical CSV (``time_s,mbps`` plus the end row), values rounded to ``digits``
    decimals of Mbit/s to keep shipped files small."""
    path = Path(path)
    rows = [
        f"{t:.6g},{round(c / MBPS, digits)}"
        for t, c in zip(trace.times.tolist(), trace.capacity.tolist(), strict=True)
    ]
    with atomic_path(path) as tmp:
        tmp.write_text("time_s,mbps\n" + "\n".join(rows) + f"\n{trace.duration:.6g},\n")
    return path
