"""Binary framing between the device and the edge server.

Every frame is a fixed 16-byte header followed by ``length`` body bytes::

    magic   4s   b"SLRL"
    version B    PROTOCOL_VERSION
    type    B    FrameType
    flags   H    reserved, 0
    req_id  I    request id chosen by the client, echoed in the answer
    length  I    body length in bytes (at most the receiver's frame limit)

Bodies: ``REQUEST`` carries the model payload (opaque bytes, self-describing); ``RESPONSE`` carries
``prediction (i), compute_ms (f), queue_ms (f), pending (H)``; ``ERROR`` carries ``code (H)`` and a
UTF-8 message; ``PING``/``PONG`` are empty. All integers are big-endian (network order).
"""

from __future__ import annotations

import enum
import math
import struct
from dataclasses import dataclass

from slimrl.errors import SlimrlError

MAGIC = b"SLRL"
PROTOCOL_VERSION = 1
HEADER = struct.Struct("!4sBBHII")
HEADER_SIZE = HEADER.size
RESPONSE_BODY = struct.Struct("!iffH")
ERROR_HEAD = struct.Struct("!H")
DEFAULT_MAX_FRAME = 1 << 20  # 1 MiB: far above any payload of the shipped model
MAX_REQUEST_ID = 0xFFFFFFFF
MAX_ERROR_MESSAGE = 1024  # bytes of an ERROR frame's message that are sent and shown


class ProtocolError(SlimrlError):
    """A frame that breaks the protocol (bad magic, version, type or size, or a truncated frame)."""

    def __init__(self, message: str, code: ErrorCode, request_id: int = 0) -> None:
        super().__init__(message)
        self.code = code
        self.request_id = request_id


class FrameType(enum.IntEnum):
    REQUEST = 1
    RESPONSE = 2
    ERROR = 3
    PING = 4
    PONG = 5


class ErrorCode(enum.IntEnum):
    BAD_MAGIC = 1
    BAD_VERSION = 2
    BAD_TYPE = 3
    TOO_LARGE = 4
    BAD_PAYLOAD = 5
    BUSY = 6
    INTERNAL = 7
    SHUTTING_DOWN = 8
    TRUNCATED = 9


@dataclass(frozen=True)
class Header:
    type: FrameType
    request_id: int
    length: int


@dataclass(frozen=True)
class Response:
    """The edge's answer to one request."""

    request_id: int
    prediction: int
    compute_ms: float
    queue_ms: float
    pending: int


def pack_header(ftype: FrameType, request_id: int, length: int) -> bytes:
    return HEADER.pack(MAGIC, PROTOCOL_VERSION, int(ftype), 0, request_id, length)


def unpack_header(data: bytes, max_frame: int = DEFAULT_MAX_FRAME) -> Header:
    """Parse and validate a header; raises :class:`ProtocolError` naming what is wrong."""
    if len(data) != HEADER_SIZE:
        raise ProtocolError(
            f"truncated header: {len(data)} of {HEADER_SIZE} bytes", ErrorCode.TRUNCATED
        )
    magic, version, ftype, _flags, req_id, length = HEADER.unpack(data)
    if magic != MAGIC:
        raise ProtocolError(f"bad magic {magic!r}, expected {MAGIC!r}", ErrorCode.BAD_MAGIC)
    if version != PROTOCOL_VERSION:
        raise ProtocolError(
            f"protocol version {version} not supported (this side speaks {PROTOCOL_VERSION})",
            ErrorCode.BAD_VERSION,
            req_id,
        )
    try:
        kind = FrameType(ftype)
    except ValueError:
        raise ProtocolError(f"unknown frame type {ftype}", ErrorCode.BAD_TYPE, req_id) from None
    if length > max_frame:
        raise ProtocolError(
            f"frame body of {length} bytes exceeds the limit of {max_frame}",
            ErrorCode.TOO_LARGE,
            req_id,
        )
    return Header(kind, req_id, length)


def encode_request(request_id: int, payload: bytes) -> bytes:
    return pack_header(FrameType.REQUEST, request_id, len(payload)) + payload


def encode_response(resp: Response) -> bytes:
    body = RESPONSE_BODY.pack(
        resp.prediction, resp.compute_ms, resp.queue_ms, min(resp.pending, 0xFFFF)
    )
    return pack_header(FrameType.RESPONSE, resp.request_id, len(body)) + body


def decode_response(request_id: int, body: bytes) -> Response:
    if len(body) != RESPONSE_BODY.size:
        raise ProtocolError(
            f"response body of {len(body)} bytes, expected {RESPONSE_BODY.size}",
            ErrorCode.TRUNCATED,
            request_id,
        )
    pred, compute_ms, queue_ms, pending = RESPONSE_BODY.unpack(body)
    if pred < 0:
        raise ProtocolError(
            f"response prediction {pred}; expected a class index >= 0",
            ErrorCode.BAD_PAYLOAD,
            request_id,
        )
    for name, v in (("compute_ms", compute_ms), ("queue_ms", queue_ms)):
        if not (math.isfinite(v) and v >= 0):
            raise ProtocolError(
                f"response {name} {v!r}; expected a finite time >= 0",
                ErrorCode.BAD_PAYLOAD,
                request_id,
            )
    return Response(request_id, pred, compute_ms, queue_ms, pending)


def encode_error(request_id: int, code: ErrorCode, message: str) -> bytes:
    body = ERROR_HEAD.pack(int(code)) + message.encode("utf-8", "replace")[:MAX_ERROR_MESSAGE]
    return pack_header(FrameType.ERROR, request_id, len(body)) + body


def decode_error(body: bytes) -> tuple[int, str]:
    """``(code, message)`` of an ERROR body (unknown codes are kept as plain ints; the message is
    cut to ``MAX_ERROR_MESSAGE`` bytes, as the sender cuts it, and unprintable characters become
    ``?``)."""
    if len(body) < ERROR_HEAD.size:
        return int(ErrorCode.TRUNCATED), "truncated error frame"
    (code,) = ERROR_HEAD.unpack_from(body)
    msg = body[ERROR_HEAD.size : ERROR_HEAD.size + MAX_ERROR_MESSAGE].decode("utf-8", "replace")
    return code, "".join(c if c.isprintable() else "?" for c in msg)  # one line in logs
