"""The payload byte format and the Fashion-MNIST reader (no training, no torch for most)."""

from __future__ import annotations

import gzip
import struct
import zlib

import numpy as np
import pytest

from slimrl.errors import DataError, ModelError
from slimrl.model import payload as wire
from slimrl.model.data import IMAGE_MAGIC, LABEL_MAGIC, load_fashion_mnist, read_idx


@pytest.mark.parametrize("bits", [1, 2, 3, 4, 5, 7, 8])
def test_pack_unpack_round_trip(bits):
    rng = np.random.default_rng(bits)
    q = rng.integers(0, 1 << bits, size=(3, 294), dtype=np.uint8)
    packed = wire.pack_bits(q, bits)
    assert packed.shape == (3, -(-294 * bits // 8))
    for i in range(3):
        assert np.array_equal(wire.unpack_bits(packed[i], 294, bits), q[i])


def _payload(bits=4, k=2, shape=(6, 7, 7)):
    rng = np.random.default_rng(0)
    q = rng.integers(0, 1 << bits, size=(1, *shape), dtype=np.uint8)
    scale = np.array([0.25], dtype=np.float32)
    offset = np.array([-1.5], dtype=np.float32)
    return wire.build_payloads(q, scale, offset, k, bits)[0], q[0]


def test_build_parse_round_trip():
    buf, q = _payload()
    p = wire.parse_payload(buf)
    assert (p.k, p.bits, p.shape) == (2, 4, (6, 7, 7))
    assert np.array_equal(p.q, q)
    assert p.scale == pytest.approx(0.25) and p.offset == pytest.approx(-1.5)
    assert len(buf) == wire.payload_size(2, 4)


@pytest.mark.parametrize("bits", [1, 2, 4, 8])
def test_payload_size_formula(bits):
    assert wire.payload_size(1, bits) == wire.OVERHEAD_BYTES + -(-294 * bits // 8)
    assert len(_payload(bits=bits)[0]) == wire.payload_size(3, bits)


def test_truncated_payload_raises():
    buf, _ = _payload()
    with pytest.raises(ModelError, match="truncated"):
        wire.parse_payload(buf[:-5])
    with pytest.raises(ModelError, match="truncated"):
        wire.parse_payload(buf[:10])
    with pytest.raises(ModelError, match="too long"):
        wire.parse_payload(buf + b"\0")


def test_corrupt_payload_raises():
    buf = bytearray(_payload()[0])
    buf[40] ^= 0x10
    with pytest.raises(ModelError, match="CRC32"):
        wire.parse_payload(bytes(buf))


def test_wrong_magic_and_version_raise():
    buf, _ = _payload()
    bad_magic = b"XXXX" + buf[4:]
    with pytest.raises(ModelError, match="magic"):
        wire.parse_payload(bad_magic)
    body = bytearray(buf[:-4])
    body[4] = 99
    bad_version = bytes(body) + struct.pack("<I", zlib.crc32(bytes(body)))
    with pytest.raises(ModelError, match="version 99"):
        wire.parse_payload(bad_version)


# ---- data reader -------------------------------------------------------------------------------


def _idx(magic: int, arr: np.ndarray) -> bytes:
    head = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    return head + arr.astype(np.uint8).tobytes()


def _write_split(folder, n=10, labels=None, gz=True, images=None):
    images = np.zeros((n, 28, 28), np.uint8) if images is None else images
    labels = np.arange(n, dtype=np.uint8) % 10 if labels is None else labels
    for name, blob in (
        ("t10k-images-idx3-ubyte", _idx(IMAGE_MAGIC, images)),
        ("t10k-labels-idx1-ubyte", _idx(LABEL_MAGIC, labels)),
    ):
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(blob))
        else:
            (folder / name).write_bytes(blob)


def test_read_idx_gz_and_raw(tmp_path):
    arr = np.arange(2 * 28 * 28, dtype=np.uint32).astype(np.uint8).reshape(2, 28, 28)
    (tmp_path / "a.gz").write_bytes(gzip.compress(_idx(IMAGE_MAGIC, arr)))
    (tmp_path / "a").write_bytes(_idx(IMAGE_MAGIC, arr))
    assert np.array_equal(read_idx(tmp_path / "a.gz", IMAGE_MAGIC, (2, 28, 28)), arr)
    assert np.array_equal(read_idx(tmp_path / "a", IMAGE_MAGIC, (2, 28, 28)), arr)


def test_missing_file_names_it(tmp_path):
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte.*dataset-fashion-mnist"):
        load_fashion_mnist("test", tmp_path)


def test_missing_folder(tmp_path):
    with pytest.raises(DataError, match="no such Fashion-MNIST folder"):
        load_fashion_mnist("test", tmp_path / "nope")


def test_wrong_count_names_file(tmp_path):
    _write_split(tmp_path, n=10)  # the test split must hold 10,000 images
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte\.gz: IDX dimension 0 is 10"):
        load_fashion_mnist("test", tmp_path)


def test_corrupt_gzip_names_file(tmp_path):
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(_idx(LABEL_MAGIC, np.zeros(5, np.uint8)))[:-6])
    with pytest.raises(DataError, match=r"x\.gz: corrupt gzip"):
        read_idx(path, LABEL_MAGIC, (5,))


def test_bad_magic_and_truncation_name_file(tmp_path):
    path = tmp_path / "labels"
    path.write_bytes(_idx(IMAGE_MAGIC, np.zeros((1, 28, 28), np.uint8)))
    with pytest.raises(DataError, match="labels: bad IDX magic"):
        read_idx(path, LABEL_MAGIC)
    path.write_bytes(_idx(LABEL_MAGIC, np.zeros(5, np.uint8))[:-1])
    with pytest.raises(DataError, match=r"labels: 12 bytes .* expected 13"):
        read_idx(path, LABEL_MAGIC, (5,))


def test_label_out_of_range(tmp_path, monkeypatch):
    import slimrl.model.data as data

    monkeypatch.setitem(data.SPLITS, "test", ("t10k", 4))
    _write_split(tmp_path, n=4, labels=np.array([0, 1, 12, 3], np.uint8), gz=False)
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte: label 12 at index 2"):
        load_fashion_mnist("test", tmp_path)


def test_env_var_default(tmp_path, monkeypatch):
    import slimrl.model.data as data

    monkeypatch.setitem(data.SPLITS, "test", ("t10k", 4))
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path))
    _write_split(tmp_path, n=4)
    ds = load_fashion_mnist("test")
    assert ds.images.shape == (4, 28, 28) and list(ds.labels) == [0, 1, 2, 3]
    assert set(ds.sha256) == {"t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"}
