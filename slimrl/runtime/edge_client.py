"""A blocking edge client with timeouts on connect, send and receive (never hangs)."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass

from slimrl.errors import SlimrlError
from slimrl.runtime.protocol import (
    DEFAULT_MAX_FRAME,
    HEADER_SIZE,
    FrameType,
    ProtocolError,
    Response,
    decode_error,
    decode_response,
    encode_request,
    pack_header,
    unpack_header,
)
from slimrl.runtime.uplink import TraceUplink


class EdgeUnavailable(SlimrlError):
    """The edge cannot be reached, or the connection broke or timed out mid-request."""


class EdgeRejected(SlimrlError):
    """The edge answered with an error frame."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Reply:
    """One answered request, with the device-side timings (ms)."""

    response: Response
    transfer_ms: float  # first byte handed to the uplink -> last byte sent
    wait_ms: float  # last byte sent -> answer received


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` -> ``(host, port)``."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise SlimrlError(f"edge address {text!r}: expected HOST:PORT, e.g. 127.0.0.1:7000")
    return host.strip("[]"), int(port)


class EdgeClient:
    """One TCP connection to the edge server; reconnect by calling :meth:`connect` again."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        connect_timeout_s: float = 2.0,
        io_timeout_s: float = 10.0,
        max_frame: int = DEFAULT_MAX_FRAME,
    ) -> None:
        self.host, self.port = host, port
        self.connect_timeout_s = connect_timeout_s
        self.io_timeout_s = io_timeout_s
        self.max_frame = max_frame
        self.sock: socket.socket | None = None

    @property
    def connected(self) -> bool:
        return self.sock is not None

    def connect(self) -> None:
        self.close()
        try:
            sock = socket.create_connection((self.host, self.port), self.connect_timeout_s)
        except OSError as exc:
            raise EdgeUnavailable(f"cannot connect to edge {self.host}:{self.port}: {exc}") from exc
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(self.io_timeout_s)
        self.sock = sock

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None

    def __enter__(self) -> EdgeClient:
        self.connect()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def request(self, request_id: int, payload: bytes, uplink: TraceUplink | None = None) -> Reply:
        """Send one payload and wait for its answer; any transport failure drops the connection.

        Raises :class:`EdgeUnavailable` (connection lost, timeout, uplink stall) or
        :class:`EdgeRejected` (the edge refused the request).
        """
        if self.sock is None:
            self.connect()
        sock = self.sock
        try:
            t0 = time.perf_counter()
            if uplink is None:
                sock.sendall(encode_request(request_id, payload))
            else:
                header = pack_header(FrameType.REQUEST, request_id, len(payload))
                uplink.send(sock, header, payload, timeout_s=self.io_timeout_s)
            t1 = time.perf_counter()
            ftype, rid, body = self._read_frame()
            t2 = time.perf_counter()
        except (OSError, ProtocolError, SlimrlError) as exc:
            self.close()
            if isinstance(exc, EdgeRejected):
                raise
            raise EdgeUnavailable(f"edge {self.host}:{self.port}: {_describe(exc)}") from exc
        if ftype is FrameType.ERROR:
            code, msg = decode_error(body)
            self.close()
            raise EdgeRejected(f"edge refused request {request_id}: {msg}", code)
        if ftype is not FrameType.RESPONSE or rid != request_id:
            self.close()
            raise EdgeUnavailable(
                f"edge answered {ftype.name} for request {rid}, expected RESPONSE for {request_id}"
            )
        try:
            resp = decode_response(rid, body)
        except ProtocolError as exc:
            self.close()
            raise EdgeUnavailable(f"edge {self.host}:{self.port}: {exc}") from exc
        return Reply(resp, (t1 - t0) * 1e3, (t2 - t1) * 1e3)

    def ping(self, request_id: int = 0) -> float:
        """Round trip of an empty PING frame (ms)."""
        if self.sock is None:
            self.connect()
        t0 = time.perf_counter()
        try:
            self.sock.sendall(pack_header(FrameType.PING, request_id, 0))
            ftype, rid, _ = self._read_frame()
        except (OSError, ProtocolError) as exc:
            self.close()
            raise EdgeUnavailable(f"edge {self.host}:{self.port}: {_describe(exc)}") from exc
        if ftype is not FrameType.PONG or rid != request_id:
            self.close()
            raise EdgeUnavailable(f"edge answered {ftype.name} to a ping")
        return (time.perf_counter() - t0) * 1e3

    def _read_frame(self) -> tuple[FrameType, int, bytes]:
        header = unpack_header(self._recv_exactly(HEADER_SIZE), self.max_frame)
        return header.type, header.request_id, self._recv_exactly(header.length)

    def _recv_exactly(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionResetError(
                    f"connection closed by the edge ({len(buf)} of {n} bytes received)"
                )
            buf += chunk
        return bytes(buf)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timed out"
    return str(exc) or exc.__class__.__name__
