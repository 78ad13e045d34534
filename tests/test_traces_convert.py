"""Goodput of a known payload -> capacity given the per-transfer latency (``slimrl traces
to-capacity``), and the synthetic random-walk traces."""

from __future__ import annotations

import numpy as np
import pytest

from slimrl.cli import main
from slimrl.errors import TraceError
from slimrl.traces import Trace, load_trace
from slimrl.traces.convert import capacity_to_goodput, goodput_to_capacity
from slimrl.traces.synthetic import random_walk_trace, write_csv


def test_round_trip_and_zero_goodput():
    cap = Trace([0.0, 1.0, 2.0], [150e3, 0.0, 90e3], 3.0)
    good = capacity_to_goodput(cap, 13824, 16.0)
    # 13824 B at 150 kB/s = 92.16 ms + 16 ms -> 127.8 kB/s
    assert good.capacity[0] == pytest.approx(13824 / 0.10816)
    assert good.capacity[1] == 0.0
    back = goodput_to_capacity(good, 13824, 16.0)
    assert np.allclose(back.capacity, cap.capacity) and back.duration == 3.0


def test_capacity_removes_the_payload_bias():
    """A goodput trace used as capacity makes a 4x payload take 3 latencies too long."""
    cap = Trace([0.0], [180e3], 10.0)
    good = capacity_to_goodput(cap, 6912, 16.0)
    big = 4 * 6912
    true_ms = 16.0 + cap.transfer_time(0.0, big) * 1e3
    naive_ms = good.transfer_time(0.0, big) * 1e3
    assert naive_ms - true_ms == pytest.approx(3 * 16.0)
    fixed = goodput_to_capacity(good, 6912, 16.0)
    assert 16.0 + fixed.transfer_time(0.0, big) * 1e3 == pytest.approx(true_ms)


def test_too_much_latency_is_a_clear_error():
    good = Trace([0.0, 1.0], [100e3, 1e6], 2.0)
    with pytest.raises(TraceError, match=r"piece 1 \(t = 1 s\).*not more than the latency 20 ms"):
        goodput_to_capacity(good, 13824, 20.0)
    with pytest.raises(TraceError, match="payload_bytes"):
        goodput_to_capacity(good, 0, 1.0)


def test_cli_to_capacity_writes_canonical_csv(tmp_path, capsys):
    src = tmp_path / "good.csv"
    src.write_text("time_s,mbps\n0,1.0\n1,0\n2,0.5\n3,\n")
    out = tmp_path / "cap.csv"
    rc = main(
        ["traces", "to-capacity", str(src), "--payload-bytes", "6912", "--latency-ms", "10",
         "--out", str(out)]
    )  # fmt: skip
    assert rc == 0 and "wrote" in capsys.readouterr().out
    assert out.read_text().startswith("time_s,mbps\n")
    cap = load_trace(out)
    good = load_trace(src)
    assert np.allclose(capacity_to_goodput(cap, 6912, 10).capacity, good.capacity)
    rc = main(
        ["traces", "to-capacity", str(src), "--payload-bytes", "6912", "--latency-ms", "60",
         "--out", str(out)]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2 and "latency" in err and len(err.strip().splitlines()) == 1


def test_random_walk_is_seeded_and_loads(tmp_path):
    a = random_walk_trace(1, 150.0, duration_s=60)
    b = random_walk_trace(1, 150.0, duration_s=60)
    assert np.array_equal(a.capacity, b.capacity) and a.duration == 60.0
    assert 100e3 < np.median(a.capacity) < 200e3
    path = write_csv(a, tmp_path / "x.csv")
    again = load_trace(path)
    assert again.duration == pytest.approx(60.0) and np.allclose(
        again.capacity, a.capacity, rtol=1e-3, atol=20
    )
