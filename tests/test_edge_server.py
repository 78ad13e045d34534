"""Edge server: framing, limits, malformed frames, queueing, shutdown. All bounded by timeouts."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from slimrl.runtime.edge_client import EdgeClient, EdgeRejected, EdgeUnavailable
from slimrl.runtime.edge_server import running
from slimrl.runtime.protocol import (
    HEADER,
    HEADER_SIZE,
    MAGIC,
    PROTOCOL_VERSION,
    ErrorCode,
    FrameType,
    ProtocolError,
    decode_error,
    encode_request,
    pack_header,
    unpack_header,
)


def fake_infer(payload: bytes) -> int:
    """Stands in for the decoder: class = first byte mod 10; b'bad' is an unreadable payload."""
    if payload == b"bad":
        raise ValueError("unreadable payload")
    time.sleep(0.002)
    return payload[0] % 10


def recv_frame(sock: socket.socket) -> tuple[FrameType, int, bytes]:
    head = b""
    while len(head) < HEADER_SIZE:
        chunk = sock.recv(HEADER_SIZE - len(head))
        if not chunk:
            raise ConnectionError("closed")
        head += chunk
    h = unpack_header(head)
    body = b""
    while len(body) < h.length:
        body += sock.recv(h.length - len(body))
    return h.type, h.request_id, body


def raw(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.settimeout(5)
    return s


def assert_closed(sock: socket.socket) -> None:
    """The server closed the connection (EOF or reset), within the socket timeout."""
    try:
        data = sock.recv(1024)
    except ConnectionResetError:
        return
    assert data == b""


def test_header_round_trip_and_validation():
    h = unpack_header(pack_header(FrameType.REQUEST, 42, 100))
    assert (h.type, h.request_id, h.length) == (FrameType.REQUEST, 42, 100)
    with pytest.raises(ProtocolError, match="magic"):
        unpack_header(HEADER.pack(b"HTTP", PROTOCOL_VERSION, 1, 0, 1, 0))
    with pytest.raises(ProtocolError, match="version 9"):
        unpack_header(HEADER.pack(MAGIC, 9, 1, 0, 1, 0))
    with pytest.raises(ProtocolError, match="type 77"):
        unpack_header(HEADER.pack(MAGIC, PROTOCOL_VERSION, 77, 0, 1, 0))
    with pytest.raises(ProtocolError, match="exceeds"):
        unpack_header(pack_header(FrameType.REQUEST, 1, 2000), max_frame=1000)
    with pytest.raises(ProtocolError, match="truncated"):
        unpack_header(b"SLRL")


def test_request_reply_carries_id_prediction_and_timings():
    with running(fake_infer) as srv, EdgeClient("127.0.0.1", srv.port, io_timeout_s=5) as c:
        for rid in (1, 7, 123456):
            reply = c.request(rid, bytes([rid % 256, 1, 2]))
            assert reply.response.request_id == rid
            assert reply.response.prediction == (rid % 256) % 10
            assert reply.response.compute_ms >= 1.5
            assert reply.response.queue_ms >= 0
        assert c.ping(5) >= 0


def test_bad_payload_gets_error_and_connection_survives():
    with running(fake_infer) as srv, EdgeClient("127.0.0.1", srv.port, io_timeout_s=5) as c:
        with pytest.raises(EdgeRejected, match="bad payload") as info:
            c.request(3, b"bad")
        assert info.value.code == ErrorCode.BAD_PAYLOAD
        assert c.request(4, b"\x05").response.prediction == 5


@pytest.mark.parametrize(
    "frame, code",
    [
        (HEADER.pack(b"GET ", PROTOCOL_VERSION, 1, 0, 9, 0), ErrorCode.BAD_MAGIC),
        (HEADER.pack(MAGIC, 99, 1, 0, 9, 0), ErrorCode.BAD_VERSION),
        (HEADER.pack(MAGIC, PROTOCOL_VERSION, 42, 0, 9, 0), ErrorCode.BAD_TYPE),
        (pack_header(FrameType.REQUEST, 9, 10_000), ErrorCode.TOO_LARGE),
    ],
)
def test_malformed_frames_get_error_reply_then_close(frame, code):
    with running(fake_infer, max_frame=1000) as srv:
        bad = raw(srv.port)
        good = EdgeClient("127.0.0.1", srv.port, io_timeout_s=5)
        good.connect()
        bad.sendall(frame)
        ftype, _rid, body = recv_frame(bad)
        assert ftype is FrameType.ERROR
        assert decode_error(body)[0] == code
        assert_closed(bad)
        bad.close()
        assert good.request(1, b"\x03").response.prediction == 3  # others keep being served
        good.close()


def test_truncated_frame_times_out_or_eof_and_server_keeps_serving():
    with running(fake_infer, read_timeout_s=0.3) as srv:
        stall = raw(srv.port)
        stall.sendall(pack_header(FrameType.REQUEST, 1, 100) + b"x" * 10)  # 90 bytes missing
        eof = raw(srv.port)
        eof.sendall(pack_header(FrameType.REQUEST, 2, 100)[:7])
        eof.close()
        with EdgeClient("127.0.0.1", srv.port, io_timeout_s=5) as c:
            assert c.request(5, b"\x08").response.prediction == 8
        ftype, _, body = recv_frame(stall)  # after read_timeout_s
        assert ftype is FrameType.ERROR and decode_error(body)[0] == ErrorCode.TRUNCATED
        assert_closed(stall)
        stall.close()
        assert srv.server.stats.errors >= 2


def test_client_limit_rejects_extra_clients():
    with running(fake_infer, max_clients=1) as srv:
        with EdgeClient("127.0.0.1", srv.port, io_timeout_s=5) as first:
            first.request(1, b"\x01")
            with pytest.raises((EdgeRejected, EdgeUnavailable)):
                EdgeClient("127.0.0.1", srv.port, io_timeout_s=5).request(2, b"\x02")
            assert first.request(3, b"\x01").response.prediction == 1
        time.sleep(0.2)
        with EdgeClient("127.0.0.1", srv.port, io_timeout_s=5) as again:
            assert again.request(4, b"\x04").response.prediction == 4


def test_concurrent_clients_queue_behind_one_worker():
    def slow(payload: bytes) -> int:
        time.sleep(0.05)
        return payload[0]

    with running(slow) as srv:
        results: dict[int, tuple[int, float]] = {}

        def client(i: int) -> None:
            with EdgeClient("127.0.0.1", srv.port, io_timeout_s=10) as c:
                r = c.request(100 + i, bytes([i])).response
                results[i] = (r.prediction, r.queue_ms)

        threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(15)
        assert sorted(results) == [0, 1, 2, 3]
        assert all(results[i][0] == i for i in results)
        # one worker: the last one in line waited for about three others
        assert max(q for _, q in results.values()) > 80


def test_server_killed_mid_run_gives_clear_error_not_hang():
    with running(fake_infer) as srv:
        c = EdgeClient("127.0.0.1", srv.port, io_timeout_s=2, connect_timeout_s=1)
        c.request(1, b"\x01")
        port = srv.port
    t0 = time.monotonic()
    with pytest.raises(EdgeUnavailable):
        c.request(2, b"\x02")
    with pytest.raises(EdgeUnavailable, match="cannot connect"):
        EdgeClient("127.0.0.1", port, connect_timeout_s=1).connect()
    assert time.monotonic() - t0 < 5


def test_encode_request_round_trip():
    frame = encode_request(77, b"abc")
    h = unpack_header(frame[:HEADER_SIZE])
    assert h.request_id == 77 and frame[HEADER_SIZE:] == b"abc"
