"""Hostile network peers: idle holders, slow senders, garbage and floods must not lock real clients
out, logs stay bounded, and the frame decoder answers any bytes with a result or ProtocolError."""

from __future__ import annotations

import contextlib
import logging
import math
import socket
import struct
import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slimrl.cli import main
from slimrl.errors import SlimrlError
from slimrl.runtime.edge_client import EdgeClient, EdgeRejected, EdgeUnavailable
from slimrl.runtime.edge_server import EventLog, running
from slimrl.runtime.protocol import (
    DEFAULT_MAX_FRAME,
    HEADER,
    HEADER_SIZE,
    MAGIC,
    MAX_ERROR_MESSAGE,
    PROTOCOL_VERSION,
    RESPONSE_BODY,
    FrameType,
    Header,
    ProtocolError,
    Response,
    decode_error,
    decode_response,
    encode_error,
    encode_request,
    encode_response,
    pack_header,
    unpack_header,
)


def fake_infer(payload: bytes) -> int:
    if payload == b"bad":
        raise ValueError("unreadable payload")
    return payload[0] % 10 if payload else 0


def raw(port: int, timeout: float = 5.0) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.settimeout(timeout)
    return s


def closed_by_server(sock: socket.socket) -> bool:
    """True once the server closed ``sock`` (EOF or reset, after any error frame it sent)."""
    try:
        while True:
            data = sock.recv(4096)
            if not data:
                return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def wait_for(cond, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "condition not reached"
        time.sleep(0.01)


def test_idle_connections_do_not_lock_out_real_clients():
    """64 connections that never send used to make every other client get BUSY for 300 s."""
    with running(fake_infer) as srv:  # the defaults
        idle = [raw(srv.port) for _ in range(srv.server.max_clients)]
        try:
            wait_for(lambda: srv.server.stats.active == srv.server.max_clients)
            with EdgeClient("127.0.0.1", srv.port, io_timeout_s=5) as c:
                assert c.request(1, b"\x07").response.prediction == 7
        finally:
            for s in idle:
                s.close()


def test_more_idle_connections_than_pending_slots_displace_each_other():
    with running(fake_infer, max_pending=8, max_clients=2) as srv:
        idle = [raw(srv.port) for _ in range(20)]
        try:
            stats = srv.server.stats
            wait_for(lambda: stats.connections == 20 and stats.evicted == 12)
            assert stats.active == 8
            assert closed_by_server(idle[0])  # the oldest went first
            idle[-1].setblocking(False)
            with pytest.raises(BlockingIOError):  # the newest is still open, nothing to read
                idle[-1].recv(1)
        finally:
            for s in idle:
                s.close()
        with EdgeClient("127.0.0.1", srv.port, io_timeout_s=5) as c:
            assert c.request(1, b"\x07").response.prediction == 7


def test_silent_and_slow_connections_are_closed():
    with running(fake_infer, handshake_timeout_s=0.3, idle_timeout_s=0.3) as srv:
        silent = raw(srv.port)
        slow = raw(srv.port)
        frame = encode_request(1, b"\x05")
        stop = threading.Event()

        def drip() -> None:  # a valid frame, one byte at a time: never done in time
            for b in frame:
                if stop.wait(0.1):
                    return
                try:
                    slow.send(bytes([b]))
                except OSError:
                    return

        t = threading.Thread(target=drip, daemon=True)
        t.start()
        assert closed_by_server(silent)
        assert closed_by_server(slow)
        stop.set()
        t.join(5)
        idle = raw(srv.port)  # answered once, then silent between frames
        idle.sendall(pack_header(FrameType.PING, 3, 0))
        assert idle.recv(HEADER_SIZE)[:4] == MAGIC
        assert closed_by_server(idle)
        for s in (silent, slow, idle):
            s.close()
        assert srv.server.stats.timed_out >= 3
        with EdgeClient("127.0.0.1", srv.port, io_timeout_s=5) as c:  # real clients still fine
            assert c.request(2, b"\x04").response.prediction == 4


def test_edge_serve_has_timeout_flags(monkeypatch):
    import slimrl.runtime.edge_server as es
    import slimrl.runtime.split_model as sm

    seen = {}

    def fake_serve(server):
        seen["server"] = server
        return 0

    class Model:
        modes = [(1, 2)]
        bottleneck_shape = (1,)

    monkeypatch.setattr(es, "serve", fake_serve)
    monkeypatch.setattr(sm, "load_split_model", lambda path, threads: Model())
    monkeypatch.setattr(sm, "edge_infer", lambda model: fake_infer)
    args = ["edge", "serve", "--port", "0", "--idle-timeout-s", "7", "--handshake-timeout-s", "3"]
    assert main(args) == 0
    server = seen["server"]
    assert (server.idle_timeout_s, server.handshake_timeout_s) == (7.0, 3.0)
    assert main(["edge", "serve", "--port", "0", "--idle-timeout-s", "0"]) == 2


def test_refusals_are_logged_once_per_interval(caplog):
    caplog.set_level(logging.INFO, logger="slimrl.edge")
    with running(fake_infer, max_clients=2, evict_after_s=60, log_interval_s=60) as srv:
        with (
            EdgeClient("127.0.0.1", srv.port, io_timeout_s=5) as a,
            EdgeClient("127.0.0.1", srv.port, io_timeout_s=5) as b,
        ):
            a.ping()
            b.ping()
            flood = []
            for _ in range(150):
                s = raw(srv.port)
                s.sendall(pack_header(FrameType.PING, 1, 0))
                flood.append(s)
            for s in flood:
                assert closed_by_server(s)  # each got BUSY and was closed
                s.close()
            assert a.request(1, b"\x01").response.prediction == 1  # held slots still served
        wait_for(lambda: srv.server.stats.rejected == 150)
    refusals = [r for r in caplog.records if "refusing" in r.getMessage()]
    summaries = [r.getMessage() for r in caplog.records if "more connections refused" in r.message]
    assert len(refusals) == 1
    assert len(summaries) == 1 and summaries[0].startswith("149 more connections refused in")
    per_peer = [r for r in caplog.records if r.name == "slimrl.edge"]
    assert len(per_peer) < 20  # not one line per connection


def test_event_log_windows():
    now = [0.0]
    lines: list[str] = []

    class Catch(logging.Handler):
        def emit(self, record):
            lines.append(record.getMessage())

    logger = logging.getLogger("slimrl.test-events")
    logger.propagate = False
    logger.addHandler(Catch())
    logger.setLevel(logging.INFO)
    ev = EventLog(logger, 10.0, clock=lambda: now[0])
    for i in range(5):
        ev.note("x", logging.WARNING, "event %d", i)
    now[0] = 11.0
    ev.note("x", logging.WARNING, "event %d", 5)
    ev.note("x", logging.WARNING, "event %d", 6)
    ev.flush(force=True)
    assert lines == ["event 0", "4 more x in the last 11 s", "event 5", "1 more x in the last 0 s"]


def test_real_clients_are_served_under_a_mixed_attack():
    stop = threading.Event()
    with running(
        fake_infer,
        max_clients=8,
        max_pending=32,  # fewer than the attackers hold: they displace each other
        handshake_timeout_s=1.0,
        log_interval_s=60,
    ) as srv:
        port = srv.port

        def holder() -> None:  # connects, never sends, reconnects when dropped
            while not stop.is_set():
                try:
                    s = raw(port, timeout=0.5)
                except OSError:
                    continue
                with s:
                    while not stop.is_set() and not closed_by_server(s):
                        pass
                stop.wait(0.1)

        def slow() -> None:
            while not stop.is_set():
                try:
                    s = raw(port, timeout=0.5)
                    with s:
                        for b in encode_request(9, b"\x01" * 64):
                            if stop.wait(0.3):
                                break
                            s.send(bytes([b]))
                except OSError:
                    pass

        def garbage() -> None:
            i = 0
            while not stop.is_set():
                i += 1
                try:
                    with raw(port, timeout=0.5) as s:
                        s.sendall(bytes((i * 37 + k) % 256 for k in range(64)))
                        closed_by_server(s)
                except OSError:
                    pass
                stop.wait(0.02)

        def flood() -> None:
            while not stop.is_set():
                socks = []
                for _ in range(20):
                    with contextlib.suppress(OSError):
                        socks.append(socket.create_connection(("127.0.0.1", port), timeout=0.5))
                for s in socks:
                    s.close()
                stop.wait(0.05)

        attackers = [holder] * 24 + [slow] * 4 + [garbage] * 2 + [flood]
        threads = [threading.Thread(target=f, daemon=True) for f in attackers]
        for t in threads:
            t.start()
        time.sleep(1.0)  # let them fill the slots
        answered = {i: 0 for i in range(4)}
        wrong = []

        def real(i: int) -> None:
            for n in range(30):
                c = EdgeClient("127.0.0.1", port, io_timeout_s=5, connect_timeout_s=2)
                try:  # a fresh connection every time: the hardest case under attack
                    r = c.request(n, bytes([i + n]))
                    answered[i] += 1
                    if r.response.prediction != (i + n) % 10 or r.response.request_id != n:
                        wrong.append((i, n))
                except (EdgeUnavailable, EdgeRejected):
                    time.sleep(0.05)
                finally:
                    c.close()

        clients = [threading.Thread(target=real, args=(i,)) for i in range(4)]
        for t in clients:
            t.start()
        for t in clients:
            t.join(60)
        stop.set()
        for t in threads:
            t.join(5)
        assert not wrong
        assert all(n > 0 for n in answered.values()), answered
        assert sum(answered.values()) >= 60, answered  # most of the 120 requests
        s = srv.server.stats
        assert s.evicted > 0 and s.errors > 0
        with EdgeClient("127.0.0.1", port, io_timeout_s=5) as c:
            assert c.request(99, b"\x03").response.prediction == 3


# the frame decoder ------------------------------------------------------------------------------
def check_header(h: Header, max_frame: int) -> None:
    assert isinstance(h.type, FrameType) and 0 <= h.length <= max_frame
    assert 0 <= h.request_id <= 0xFFFFFFFF


VALID_FRAMES = st.one_of(
    st.builds(
        lambda t, rid, n: pack_header(t, rid, n),
        st.sampled_from(FrameType),
        st.integers(0, 0xFFFFFFFF),
        st.integers(0, 2 * DEFAULT_MAX_FRAME),
    ),
    st.builds(
        lambda rid, p, c, q, n: encode_response(Response(rid, p, c, q, n))[:HEADER_SIZE],
        st.integers(0, 0xFFFFFFFF),
        st.integers(0, 2**31 - 1),
        st.floats(0, 1e6, width=32),
        st.floats(0, 1e6, width=32),
        st.integers(0, 0xFFFF),
    ),
)


@st.composite
def mutated_frames(draw) -> bytes:
    data = bytearray(draw(VALID_FRAMES))
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(data) - 1))
        data[i] = draw(st.integers(0, 255))
    return bytes(data)


FUZZ = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@FUZZ
@given(
    data=st.one_of(st.binary(max_size=40), VALID_FRAMES, mutated_frames()),
    max_frame=st.sampled_from([0, 1, 1000, DEFAULT_MAX_FRAME]),
)
def test_header_decoder_gives_a_header_or_protocol_error(data, max_frame):
    try:
        h = unpack_header(data, max_frame)
    except ProtocolError as exc:
        assert len(str(exc)) < 200
        return
    assert len(data) == HEADER_SIZE
    check_header(h, max_frame)
    assert pack_header(h.type, h.request_id, h.length)[:6] == data[:6]


@FUZZ
@given(body=st.one_of(st.binary(max_size=40), st.binary(min_size=14, max_size=14)))
def test_body_decoders_give_a_result_or_protocol_error(body):
    try:
        r = decode_response(5, body)
    except ProtocolError as exc:
        assert len(str(exc)) < 200
    else:
        assert r.prediction >= 0 and 0 <= r.pending <= 0xFFFF
        assert math.isfinite(r.compute_ms) and r.compute_ms >= 0
        assert math.isfinite(r.queue_ms) and r.queue_ms >= 0
    code, msg = decode_error(body)
    assert isinstance(code, int) and len(msg) <= MAX_ERROR_MESSAGE and msg.isprintable()


def test_response_with_nonsense_values_is_refused():
    for pred, c, q in ((-1, 1.0, 1.0), (1, math.nan, 1.0), (1, 1.0, math.inf), (1, -2.0, 0.0)):
        with pytest.raises(ProtocolError):
            decode_response(1, RESPONSE_BODY.pack(pred, c, q, 0))
    code, msg = decode_error(encode_error(1, 5, "two\nlines\x1b[31m" + "x" * 5000)[HEADER_SIZE:])
    assert code == 5 and "\n" not in msg and len(msg) <= MAX_ERROR_MESSAGE


@pytest.fixture(scope="module")
def server():
    with running(fake_infer, max_frame=4096, handshake_timeout_s=0.5, read_timeout_s=0.5) as srv:
        yield srv


@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.one_of(st.binary(min_size=1, max_size=300), mutated_frames()))
def test_live_server_survives_random_and_mutated_frames(server, data):
    s = raw(server.port)
    with s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)  # no more bytes: the server answers or closes, never hangs
        got = b""
        while True:
            try:
                chunk = s.recv(4096)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            got += chunk
    while len(got) >= HEADER_SIZE:  # whatever came back is well-formed frames
        h = unpack_header(got[:HEADER_SIZE])
        got = got[HEADER_SIZE + h.length :]
    with EdgeClient("127.0.0.1", server.port, io_timeout_s=5) as c:
        assert c.request(1, b"\x02").response.prediction == 2


def test_protocol_error_is_a_slimrl_error():
    assert issubclass(ProtocolError, SlimrlError)
    with pytest.raises(ProtocolError):
        unpack_header(HEADER.pack(MAGIC, PROTOCOL_VERSION, 1, 0, 1, 2**32 - 1))
    with pytest.raises(struct.error):
        struct.pack("!I", -1)  # the encoder side is ours: out-of-range ids are programming errors
