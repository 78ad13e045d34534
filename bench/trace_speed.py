"""How many transfer-time queries per second the trace library answers.

Run: ``python bench/trace_speed.py [--queries 1000000] [--repeats 3]``

On the shipped mahimahi uplink set it times the vectorised ``Trace.transfer_times`` (per trace),
``TraceBank.transfer_times`` over the set and over a bank of many traces, and the scalar
``Trace.transfer_time`` / ``TraceBank.transfer_time`` that a single env step calls. Ratios are
against the scalar path measured in the same run, and against the 1,000,000 queries/s goal.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from slimrl.paths import TRACES_DIR
from slimrl.traces import TraceBank, TraceSet

GOAL = 1_000_000


def best_rate(fn, n: int, repeats: int) -> float:
    """Queries per second of ``fn`` (answering ``n`` queries), best of ``repeats``."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return n / best


def queries(rng: np.random.Generator, m: int, horizon_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Start times over two wraps of the trace and payloads log-uniform in 200 B .. 2 MB."""
    t = rng.uniform(0.0, horizon_s, m)
    n = np.exp(rng.uniform(np.log(200), np.log(2e6), m))
    return t, n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--queries", type=int, default=1_000_000)
    ap.add_argument("--scalar-queries", type=int, default=200_000)
    ap.add_argument("--many", type=int, default=100, help="copies of each uplink in the big bank")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    m, ms, r = args.queries, args.scalar_queries, args.repeats
    rng = np.random.default_rng(0)

    ups = TraceSet.from_path(TRACES_DIR / "mahimahi-cellular", pattern="*.up")
    pieces = sum(len(tr) for tr in ups)
    print(
        f"set: {len(ups)} mahimahi uplinks, {pieces} pieces at 100 ms, {ups.total_duration:.0f} s"
    )

    # scalar reference: one query at a time, as the single env does every step
    tr0 = max(ups, key=len)
    t, n = queries(rng, ms, 2 * tr0.duration)
    tl, nl = t.tolist(), n.tolist()
    f = tr0.transfer_time
    scalar = best_rate(lambda: [f(a, b) for a, b in zip(tl, nl, strict=True)], ms, r)
    bank = ups.bank
    il = rng.integers(0, len(ups), ms).tolist()
    g = bank.transfer_time
    scalar_bank = best_rate(lambda: [g(i, a, b) for i, a, b in zip(il, tl, nl, strict=True)], ms, r)

    # vectorised, one trace at a time
    total_s = 0.0
    for tr in ups:
        t, n = queries(rng, m, 2 * tr.duration)
        total_s += m / best_rate(lambda tr=tr, t=t, n=n: tr.transfer_times(t, n), m, r)
    vec = len(ups) * m / total_s

    # vectorised over the set, then over a bank of many traces
    idx = rng.integers(0, len(ups), m)
    t, n = queries(rng, m, 2 * bank.durations.max())
    vec_bank = best_rate(lambda: bank.transfer_times(idx, t, n), m, r)
    many = TraceBank([tr.scaled(s) for s in np.linspace(0.5, 2.0, args.many) for tr in ups])
    idx_many = rng.integers(0, len(many), m)
    vec_many = best_rate(lambda: many.transfer_times(idx_many, t, n), m, r)

    rows = [
        ("Trace.transfer_time (scalar)", scalar),
        ("TraceBank.transfer_time (scalar)", scalar_bank),
        ("Trace.transfer_times (vectorised)", vec),
        (f"TraceBank.transfer_times ({len(bank)} traces)", vec_bank),
        (f"TraceBank.transfer_times ({len(many)} traces)", vec_many),
    ]
    print(f"{'path':44s} {'queries/s':>14s} {'us/query':>9s} {'x scalar':>9s} {'x goal':>7s}")
    for name, rate in rows:
        print(f"{name:44s} {rate:14,.0f} {1e6 / rate:9.3f} {rate / scalar:9.2f} {rate / GOAL:7.2f}")
    ok = min(vec, vec_bank, vec_many) >= GOAL
    print(f"goal >= {GOAL:,} vectorised queries/s: {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
