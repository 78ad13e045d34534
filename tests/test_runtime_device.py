"""Device loop and uplink against a real edge server on loopback (fake model, real framing)."""

from __future__ import annotations

import socket
import time

import numpy as np
import pytest

from slimrl.env.observation import ObservationBuilder
from slimrl.runtime.device import Backoff, DeviceLoop, read_log, summarize, write_log
from slimrl.runtime.edge_client import EdgeClient
from slimrl.runtime.edge_server import EdgeServer, EdgeServerThread
from slimrl.runtime.uplink import TraceUplink, UplinkTimeout
from slimrl.traces import MBPS, Trace

LABELS = np.arange(20) % 10


def fake_encode(image: int, k: int, bits: int) -> bytes:
    """Payload whose first byte is the label; size grows with the mode (like the real encoder)."""
    return bytes([int(LABELS[image])]) + bytes(k * bits * 50)


def fake_infer(payload: bytes) -> int:
    return payload[0]


def make_loop(port: int, trace: Trace, decide=lambda obs, info: (2, 2), **kw) -> DeviceLoop:
    builder = ObservationBuilder(4, 4, 4, 300, payload_bytes=[51, 201, 801])
    client = EdgeClient("127.0.0.1", port, connect_timeout_s=1, io_timeout_s=2)
    return DeviceLoop(decide, fake_encode, LABELS, client, TraceUplink(trace), builder, 300, **kw)


def test_uplink_paces_by_the_trace():
    trace = Trace([0.0], [1.0 * MBPS], duration=100.0)  # 1 Mbit/s
    a, b = socket.socketpair()
    try:
        up = TraceUplink(trace, chunk_bytes=500)
        t = up.send(a, b"H" * 16, bytes(5000))  # 40 ms at 1 Mbit/s
        assert 0.038 < t < 0.2
        got = b""
        b.settimeout(1)
        while len(got) < 5016:
            got += b.recv(65536)
        assert got[:16] == b"H" * 16 and len(got) == 5016
        assert up.schedule(0.0, 1200) == [(500, 0.004), (1000, 0.008), (1200, 0.0096)]
    finally:
        a.close()
        b.close()


def test_uplink_outage_stalls_and_times_out():
    trace = Trace([0.0, 0.01, 50.0], [1.0 * MBPS, 0.0, 1.0 * MBPS], duration=60.0)
    a, b = socket.socketpair()
    try:
        up = TraceUplink(trace, chunk_bytes=500)
        with pytest.raises(UplinkTimeout, match="stalled"):
            up.send(a, b"", bytes(5000), timeout_s=1.0)
    finally:
        a.close()
        b.close()


def test_device_loop_end_to_end():
    trace = Trace([0.0], [8.0 * MBPS], duration=100.0)
    seen = []

    infos = []

    def decide(obs, info):
        seen.append(obs.copy())
        infos.append(dict(info))
        return (1, 2) if len(seen) % 2 else (4, 4)

    with EdgeServerThread(EdgeServer(fake_infer)) as srv:
        loop = make_loop(srv.port, trace, decide)
        recs = loop.run(12)
    assert [r.frame for r in recs] == list(range(12))
    assert all(r.error is None and r.correct and r.on_time for r in recs)
    assert [r.bytes for r in recs[:2]] == [1 + 100, 1 + 800]
    assert recs[1].transfer_ms == pytest.approx(800 * 8 / 8e6 * 1e3, abs=3)  # about 0.8 ms
    assert all(r.edge_ms >= r.edge_queue_ms >= 0 for r in recs)
    # the observation fed back is the builder's, from the measurements of the last frame
    assert np.array_equal(seen[0], loop.builder.initial())
    r0, r1 = recs[0], recs[1]
    inv = [r1.transfer_ms / r1.bytes, r0.transfer_ms / r0.bytes, 0.0, 0.0]
    want = loop.builder.build_one(
        inv, 2, r1.transfer_ms, r1.compute_ms, r1.edge_ms, r1.edge_queue_ms, r1.e2e_ms, True, 4, 4
    )
    assert np.array_equal(seen[2], want)
    assert seen[2][-3:-1].tolist() == [1.0, 1.0]  # k=4/4, bits=4/4 of frame 1
    assert infos[0] == {} and infos[2]["bytes"] == 801 and infos[2]["edge_ms"] == r1.edge_ms
    assert infos[2]["transfer_ms"] == recs[1].transfer_ms


def test_edge_restart_is_survived_and_lost_frames_are_misses(tmp_path):
    trace = Trace([0.0], [50.0 * MBPS], duration=100.0)
    srv = EdgeServerThread(EdgeServer(fake_infer)).start()
    port = srv.port
    loop = make_loop(port, trace, backoff=Backoff(initial_s=0.01, max_s=0.05))
    loop.run(3)
    srv.stop()
    t0 = time.monotonic()
    for i in range(3, 6):
        loop.step(i)
    assert time.monotonic() - t0 < 5  # bounded: connect refused fast, backoff capped
    srv2 = EdgeServerThread(EdgeServer(fake_infer, port=port)).start()
    try:
        for i in range(6, 10):
            loop.step(i)
    finally:
        srv2.stop()
    recs = loop.records
    lost = [r for r in recs if r.error is not None]
    assert [r.frame for r in lost] == [3, 4, 5]
    assert all(not r.on_time and not r.correct and r.prediction is None for r in lost)
    assert all(r.error is None and r.correct for r in recs[6:])
    log = tmp_path / "run.jsonl"
    write_log(log, recs, {"trace": "x", "deadline_ms": 300})
    frames, meta = read_log(log)
    assert len(frames) == 10 and frames[4]["error"] and meta["deadline_ms"] == 300
    s = summarize(recs)
    assert s["errors"] == 3 and s["frames"] == 10


def test_server_killed_mid_request_is_a_logged_miss():
    trace = Trace([0.0], [50.0 * MBPS], duration=100.0)

    def dying(payload: bytes) -> int:
        time.sleep(0.3)
        return payload[0]

    srv = EdgeServerThread(EdgeServer(dying)).start()
    loop = make_loop(srv.port, trace)
    import threading

    threading.Timer(0.1, srv.stop).start()
    t0 = time.monotonic()
    rec = loop.step(0)
    assert time.monotonic() - t0 < 5
    assert rec.error is not None or rec.prediction == LABELS[0]  # answered before shutdown, or lost
    rec2 = loop.step(1)
    assert rec2.error is not None and "connect" in rec2.error
