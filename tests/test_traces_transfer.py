"""Transfer-time lookups: analytic cases, float edge cases, scalar == vectorised == TraceBank."""

from __future__ import annotations

import numpy as np
import pytest

from slimrl.traces import EmptyTraceError, Trace, TraceBank, TraceError, TraceTimeError


def reference(trace: Trace, t: float, n: float) -> float:
    """Piece-by-piece walk (slow, obviously right): the time to send ``n`` bytes from ``t``."""
    knots, cap, dur = trace.knots, trace.capacity, trace.duration
    if n == 0:
        return 0.0
    now, left, elapsed = t % dur, float(n), 0.0
    while True:
        i = int(np.searchsorted(knots, now, side="right")) - 1
        end = knots[i + 1]
        avail = cap[i] * (end - now)
        if cap[i] > 0 and avail >= left:
            return elapsed + left / cap[i]
        left -= avail
        elapsed += end - now
        now = end if end < dur else 0.0


def all_three(trace: Trace, t: float, n: float) -> float:
    """The scalar result, after checking the vectorised and TraceBank forms agree with it."""
    s = trace.transfer_time(t, n)
    v = trace.transfer_times(np.array([t]), np.array([n]))[0]
    b = TraceBank([trace]).transfer_times(np.array([0]), np.array([t]), np.array([n]))[0]
    assert s == v == b
    return s


# analytic cases ------------------------------------------------------------------------------
def test_constant_capacity():
    tr = Trace([0.0], [1000.0], 10.0)
    assert all_three(tr, 0.0, 500) == pytest.approx(0.5)
    assert all_three(tr, 3.25, 2000) == pytest.approx(2.0)
    assert all_three(tr, 9.5, 1000) == pytest.approx(1.0)  # crosses the wrap seamlessly
    assert all_three(tr, 123.0, 25_000) == pytest.approx(25.0)
    assert tr.total_bytes == 10_000 and tr.mean_mbps == pytest.approx(0.008)


def test_step():
    tr = Trace([0.0, 5.0], [1000.0, 2000.0], 10.0)
    assert all_three(tr, 4.0, 3000) == pytest.approx(2.0)  # 1000 B in 1 s, then 2000 B in 1 s
    assert all_three(tr, 0.0, 5000) == pytest.approx(5.0)  # ends exactly on the step
    assert all_three(tr, 9.0, 3000) == pytest.approx(2.0)  # wraps: 2000 B to t=10, 1000 B at 1 kB/s
    assert all_three(tr, 29.0, 3000) == pytest.approx(2.0)  # t beyond the duration wraps too


def test_outage_stalls():
    tr = Trace([0.0, 1.0, 3.0], [1000.0, 0.0, 1000.0], 4.0)
    assert all_three(tr, 0.5, 1000) == pytest.approx(3.0)  # 500 B, wait 2 s, 500 B
    assert all_three(tr, 2.0, 100) == pytest.approx(1.1)  # starts inside the outage
    assert all_three(tr, 0.0, 1000) == 1.0  # ends exactly where the outage starts: no wait
    assert all_three(tr, 1.0, 1) == pytest.approx(2.001)
    assert tr.outage_fraction == pytest.approx(0.5)
    assert tr.capacity_at(1.5) == 0.0 and tr.capacity_at(5.5) == 0.0 and tr.capacity_at(4.0) == 1000


def test_trailing_outage_and_exact_periods():
    tr = Trace([0.0, 1.0], [1000.0, 0.0], 2.0)  # one period delivers 1000 B in its first second
    assert all_three(tr, 0.0, 1000) == 1.0
    assert all_three(tr, 0.0, 2000) == 3.0
    assert all_three(tr, 0.0, 3000) == 5.0
    assert all_three(tr, 1.0, 1000) == 2.0  # waits out the outage, then one full second
    assert all_three(tr, 0.5, 1000) == pytest.approx(2.0)


def test_zero_bytes():
    tr = Trace([0.0, 1.0], [0.0, 1000.0], 2.0)
    assert tr.transfer_time(0.3, 0) == 0.0
    assert np.all(tr.transfer_times([0.0, 0.3, 1.7], 0) == 0.0)
    assert TraceBank([tr]).transfer_times([0, 0], [0.0, 0.5], [0, 0]).tolist() == [0.0, 0.0]
    with pytest.raises(ValueError):
        tr.transfer_time(0.0, -1)
    with pytest.raises(ValueError):
        tr.transfer_times([0.0], [-1.0])


def test_very_large_transfers_span_many_periods():
    tr = Trace([0.0, 5.0], [1000.0, 2000.0], 10.0)  # 15 000 B per 10 s period
    assert all_three(tr, 0.0, 3 * 15_000 + 5_000) == pytest.approx(35.0)
    assert all_three(tr, 2.5, 1e6 * 15_000) == pytest.approx(1e7, rel=1e-12)
    n = 123_456.789 * 15_000 + 7_500
    # 123_456 whole periods plus the rest (0.789 * 15 000 + 7 500 bytes) from t = 2.5
    rest = n - 123_456 * 15_000
    expected = 123_456 * 10.0 + reference(tr, 2.5, rest)
    assert all_three(tr, 2.5, n) == pytest.approx(expected, rel=1e-12)


def test_boundaries_of_a_binned_trace():
    """Ends landing exactly on 0.1 s knots (float times), some of them before outages."""
    rng = np.random.default_rng(1)
    cap = rng.integers(0, 4, 200).astype(float) * 15_000.0  # mahimahi-like: packets per 100 ms
    cap[:7] = 0.0  # a trace that starts late
    cap[50:80] = 0.0
    tr = Trace(np.arange(200) * 0.1, cap, 20.0)
    knots, cum = tr.knots, tr.cumulative_bytes
    bank = TraceBank([tr, tr.scaled(2.0), tr])
    ks = rng.integers(0, 200, 300)
    js = np.minimum(ks + rng.integers(1, 200, 300), 200)
    for k, j in zip(ks, js, strict=True):
        n = cum[j] - cum[k]
        if n <= 0:
            continue
        got = all_three(tr, knots[k], n)
        first = int(np.searchsorted(cum, cum[j], side="left"))  # earliest knot with that total
        assert got == pytest.approx(knots[first] - knots[k], abs=1e-9)
        assert bank.transfer_time(2, knots[k], n) == got
    vec = tr.transfer_times(knots[ks], cum[js] - cum[ks])
    assert np.array_equal(
        bank.transfer_times(np.full(ks.size, 2), knots[ks], cum[js] - cum[ks]), vec
    )


# agreement on random queries -------------------------------------------------------------------
def random_trace(rng: np.random.Generator, n: int, name: str) -> Trace:
    widths = rng.uniform(0.05, 2.0, n)
    times = np.concatenate(([0.0], np.cumsum(widths)[:-1]))
    cap = rng.uniform(0, 5e6, n) * (rng.random(n) > 0.25)  # a quarter of the pieces are outages
    cap[rng.integers(n)] = 1e6
    return Trace(times, cap, float(np.sum(widths)), name=name)


def test_scalar_vectorised_bank_and_reference_agree():
    rng = np.random.default_rng(0)
    traces = [random_trace(rng, n, f"r{n}") for n in (1, 2, 7, 50, 400)]
    bank = TraceBank(traces)
    m = 2000
    idx = rng.integers(0, len(traces), m)
    t = rng.uniform(0, 3, m) * bank.durations[idx]
    n = np.exp(rng.uniform(0, np.log(3e7), m))
    n[::50] = 0.0
    got = bank.transfer_times(idx, t, n)
    for k, tr in enumerate(traces):
        sel = idx == k
        assert np.array_equal(tr.transfer_times(t[sel], n[sel]), got[sel])
    scalar = [
        bank.transfer_time(i, a, b)
        for i, a, b in zip(idx.tolist(), t.tolist(), n.tolist(), strict=True)
    ]
    assert np.array_equal(np.array(scalar), got)
    for q in range(0, m, 10):  # the slow reference on a sample (n up to a few periods)
        tr = traces[idx[q]]
        if n[q] < 3 * tr.total_bytes:
            assert got[q] == pytest.approx(reference(tr, t[q], n[q]), rel=1e-9, abs=1e-9)
    caps = bank.capacity_at(idx, t)
    assert np.array_equal(caps, [traces[i].capacity_at(a) for i, a in zip(idx, t, strict=True)])


def test_vectorised_broadcasts():
    tr = Trace([0.0, 1.0], [1000.0, 2000.0], 2.0)
    out = tr.transfer_times(np.zeros((2, 3)), 1000)
    assert out.shape == (2, 3) and np.all(out == 1.0)
    assert TraceBank([tr, tr]).transfer_times(1, 0.0, [1000, 3000]).tolist() == [1.0, 2.0]


# construction ----------------------------------------------------------------------------------
def test_trace_properties_and_scaling():
    tr = Trace.from_mbps([0, 1, 2, 3], [8.0, 0.0, 4.0, 4.0], name="x")
    assert tr.duration == 4.0 and tr.mean_mbps == pytest.approx(4.0)
    assert tr.capacity[0] == 1e6 and len(tr) == 4
    assert tr.percentile_mbps(50) == 4.0 and tr.percentile_mbps([0, 100]).tolist() == [0.0, 8.0]
    double = tr.scaled(2.0)
    assert double.mean_mbps == pytest.approx(8.0)
    assert double.transfer_time(0.0, 1e6) == pytest.approx(tr.transfer_time(0.0, 1e6) / 2)
    with pytest.raises(TraceError, match="scale"):
        tr.scaled(0.0)
    with pytest.raises(ValueError):
        tr.times[0] = 1.0  # read-only


@pytest.mark.parametrize(
    "times, cap, dur, err, text",
    [
        ([0.5, 1.0], [1.0, 1.0], None, TraceTimeError, "expected 0"),
        ([0.0, 2.0, 1.0], [1.0, 1.0, 1.0], 3.0, TraceTimeError, "times[2]"),
        ([0.0, 1.0], [1.0, -1.0], None, TraceError, "capacity[1]"),
        ([0.0, 1.0], [1.0, np.nan], None, TraceError, "capacity[1]"),
        ([0.0, 1.0], [0.0, 0.0], None, EmptyTraceError, "zero total bytes"),
        ([0.0, 1.0], [1.0, 1.0], 1.0, TraceTimeError, "duration"),
        ([], [], None, EmptyTraceError, "at least one"),
    ],
)
def test_invalid_traces(times, cap, dur, err, text):
    with pytest.raises(err) as info:
        Trace(times, cap, dur, name="bad")
    assert text in str(info.value) and "'bad'" in str(info.value)
