"""The bottleneck's wire format: uniform b-bit quantisation and the versioned payload bytes.

Layout (little-endian), ``HEADER_BYTES + ceil(C*H*W*bits/8) + 4`` bytes in all::

    magic  4s   b"SLMP"
    version u8  1
    k       u8  active sub-encoders (informational: the decoder reads every k)
    bits    u8  bits per element, 1..8
    C, H, W u8  bottleneck shape
    scale   f32 dequantised value = q * scale + offset
    offset  f32 (the bottleneck's minimum)
    data        C*H*W unsigned b-bit integers, MSB first, packed like numpy.packbits
    crc32   u32 of everything before it

The quantiser works per sample (its own min/max), so one payload is self-contained.
"""

from __future__ import annotations

import math
import struct
import zlib
from dataclasses import dataclass

import numpy as np

from slimrl.errors import ModelError

MAGIC = b"SLMP"
VERSION = 1
_HEADER = struct.Struct("<4sBBBBBBff")
_CRC = struct.Struct("<I")
HEADER_BYTES = _HEADER.size  # 18
OVERHEAD_BYTES = HEADER_BYTES + _CRC.size  # 22


@dataclass(frozen=True)
class Payload:
    """A parsed payload: quantised integers ``q`` (C, H, W) uint8 and how to dequantise them."""

    k: int
    bits: int
    shape: tuple[int, int, int]
    scale: float
    offset: float
    q: np.ndarray

    def dequantize(self) -> np.ndarray:
        """The float32 bottleneck (C, H, W), computed as the in-memory path does."""
        return self.q.astype(np.float32) * np.float32(self.scale) + np.float32(self.offset)


def payload_size(k: int, bits: int, shape: tuple[int, int, int] = (6, 7, 7)) -> int:
    """Bytes of one payload in mode ``(k, bits)``: header + packed data + CRC (any ``k``)."""
    if not 1 <= bits <= 8:
        raise ModelError(f"bits must be in 1..8, got {bits}")
    return OVERHEAD_BYTES + math.ceil(math.prod(shape) * bits / 8)


def pack_bits(q: np.ndarray, bits: int) -> np.ndarray:
    """Pack (N, n) integers in ``[0, 2**bits)`` into (N, ceil(n*bits/8)) bytes, MSB first."""
    q = np.ascontiguousarray(q, dtype=np.uint8)
    if bits == 8:
        return q
    planes = np.unpackbits(q[..., None], axis=-1)[..., 8 - bits :]  # (N, n, bits)
    return np.packbits(planes.reshape(q.shape[0], -1), axis=-1)


def unpack_bits(data: np.ndarray, n: int, bits: int) -> np.ndarray:
    """Inverse of :func:`pack_bits` for one payload: ``n`` integers from packed bytes."""
    if bits == 8:
        return np.asarray(data[:n], dtype=np.uint8)
    planes = np.unpackbits(data, count=n * bits).reshape(n, bits)
    weights = (1 << np.arange(bits - 1, -1, -1)).astype(np.uint8)
    return (planes * weights).sum(axis=1, dtype=np.uint8)


def build_payloads(
    q: np.ndarray, scale: np.ndarray, offset: np.ndarray, k: int, bits: int
) -> list[bytes]:
    """Serialise a batch: ``q`` (N, C, H, W) uint8, ``scale``/``offset`` (N,) float32."""
    n_items, c, h, w = q.shape
    packed = pack_bits(q.reshape(n_items, -1), bits)
    out = []
    for i in range(n_items):
        head = _HEADER.pack(MAGIC, VERSION, k, bits, c, h, w, float(scale[i]), float(offset[i]))
        body = head + packed[i].tobytes()
        out.append(body + _CRC.pack(zlib.crc32(body)))
    return out


def parse_payload(payload: bytes | bytearray | memoryview) -> Payload:
    """Check and parse one payload; raise :class:`ModelError` saying what is wrong."""
    buf = bytes(payload)
    if len(buf) < OVERHEAD_BYTES:
        raise ModelError(
            f"payload truncated: {len(buf)} bytes, shorter than the {OVERHEAD_BYTES}-byte "
            "header and checksum"
        )
    magic, version, k, bits, c, h, w, scale, offset = _HEADER.unpack_from(buf)
    if magic != MAGIC:
        raise ModelError(f"not a slimrl payload: magic {magic!r}, expected {MAGIC!r}")
    if version != VERSION:
        raise ModelError(f"unsupported payload version {version}, this reader knows {VERSION}")
    if not 1 <= bits <= 8:
        raise ModelError(f"payload header: bits {bits} outside 1..8")
    expected = payload_size(k, bits, (c, h, w))
    if len(buf) != expected:
        kind = "truncated" if len(buf) < expected else "too long"
        raise ModelError(
            f"payload {kind}: {len(buf)} bytes, expected {expected} for k={k} bits={bits} "
            f"shape={c}x{h}x{w}"
        )
    (crc,) = _CRC.unpack_from(buf, len(buf) - _CRC.size)
    if zlib.crc32(buf[: -_CRC.size]) != crc:
        raise ModelError("payload corrupt: CRC32 mismatch")
    if not (math.isfinite(scale) and math.isfinite(offset)):
        raise ModelError("payload header: scale or offset is not finite")
    n = c * h * w
    data = np.frombuffer(buf, dtype=np.uint8, offset=HEADER_BYTES, count=expected - OVERHEAD_BYTES)
    q = unpack_bits(data, n, bits).reshape(c, h, w)
    return Payload(k, bits, (c, h, w), scale, offset, q)
