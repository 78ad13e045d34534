"""Fashion-MNIST reader for the original IDX files (gzip-compressed or raw); no torchvision."""

from __future__ import annotations

import gzip
import hashlib
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from slimrl.errors import DataError
from slimrl.paths import ROOT

ENV_VAR = "SLIMRL_FMNIST_DIR"
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
IMAGE_MAGIC = 0x00000803
LABEL_MAGIC = 0x00000801
ROWS = COLS = 28
NUM_CLASSES = 10
SPLITS = {"train": ("train", 60_000), "test": ("t10k", 10_000)}
CLASS_NAMES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
# Pixel statistics of the training split over [0, 1] (see shared/data/fashion-mnist/README.md).
MEAN = 0.2860
STD = 0.3530

_WHERE = (
    "get the four IDX files with `apt-get install dataset-fashion-mnist` "
    "(installs /usr/share/datasets/fashion-mnist) or from "
    "https://github.com/zalandoresearch/fashion-mnist (data/fashion/*.gz), "
    f"then point slimrl at the folder with --data DIR or {ENV_VAR}"
)


@dataclass(frozen=True)
class FashionMNIST:
    """One split: ``images`` (N, 28, 28) uint8, ``labels`` (N,) uint8, raw-file ``sha256``."""

    images: np.ndarray
    labels: np.ndarray
    split: str
    files: tuple[Path, Path]
    sha256: dict[str, str]

    def __len__(self) -> int:
        return len(self.labels)


def candidate_dirs() -> list[Path]:
    """Folders searched when no ``--data`` is given, in order."""
    dirs = []
    if os.environ.get(ENV_VAR):
        dirs.append(Path(os.environ[ENV_VAR]))
    dirs += [DEBIAN_DIR, ROOT.parent / "shared" / "data" / "fashion-mnist"]
    return dirs


def default_data_dir() -> Path:
    """``$SLIMRL_FMNIST_DIR`` if set, else the first existing default folder."""
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR])
    for d in candidate_dirs():
        if d.is_dir():
            return d
    tried = ", ".join(str(d) for d in candidate_dirs())
    raise DataError(f"Fashion-MNIST not found (looked in {tried}); {_WHERE}")


def _find(folder: Path, stem: str) -> Path:
    for name in (f"{stem}.gz", stem):
        if (folder / name).is_file():
            return folder / name
    raise DataError(f"{folder / (stem + '.gz')}: missing Fashion-MNIST file; {_WHERE}")


def _read_bytes(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror}); {_WHERE}") from exc
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(f"{path}: corrupt gzip data ({exc}); {_WHERE}") from exc
    return raw


def read_idx(
    path: str | os.PathLike, magic: int, dims: tuple[int, ...] | None = None
) -> np.ndarray:
    """Read one IDX file (``.gz`` or raw) into a uint8 array, checking magic, dims and size.

    ``dims`` gives the expected shape; ``None`` entries are not checked.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: missing Fashion-MNIST file; {_WHERE}")
    data = _read_bytes(path)
    if len(data) < 4:
        raise DataError(f"{path}: too short for an IDX header ({len(data)} bytes); {_WHERE}")
    found = int.from_bytes(data[:4], "big")
    if found != magic:
        raise DataError(
            f"{path}: bad IDX magic 0x{found:08x}, expected 0x{magic:08x}; corrupt file? {_WHERE}"
        )
    ndim = magic & 0xFF
    head = 4 + 4 * ndim
    if len(data) < head:
        raise DataError(f"{path}: truncated IDX header; {_WHERE}")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    if dims is not None:
        for i, (want, got) in enumerate(zip(dims, shape, strict=True)):
            if want is not None and want != got:
                raise DataError(f"{path}: IDX dimension {i} is {got}, expected {want}; {_WHERE}")
    expected = head + int(np.prod(shape))
    if len(data) != expected:
        raise DataError(
            f"{path}: {len(data)} bytes after decompression, expected {expected} for shape "
            f"{shape}; truncated or corrupt file? {_WHERE}"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=head).reshape(shape).copy()


def load_fashion_mnist(
    split: str = "train", data_dir: str | os.PathLike | None = None
) -> FashionMNIST:
    """Load ``"train"`` (60,000) or ``"test"`` (10,000) images and labels from ``data_dir``."""
    if split not in SPLITS:
        raise DataError(f"unknown Fashion-MNIST split {split!r}; expected one of {list(SPLITS)}")
    folder = Path(data_dir) if data_dir is not None else default_data_dir()
    if not folder.is_dir():
        raise DataError(f"{folder}: no such Fashion-MNIST folder; {_WHERE}")
    prefix, n = SPLITS[split]
    img_path = _find(folder, f"{prefix}-images-idx3-ubyte")
    lab_path = _find(folder, f"{prefix}-labels-idx1-ubyte")
    images = read_idx(img_path, IMAGE_MAGIC, (n, ROWS, COLS))
    labels = read_idx(lab_path, LABEL_MAGIC, (n,))
    if labels.max(initial=0) >= NUM_CLASSES:
        bad = int(np.argmax(labels >= NUM_CLASSES))
        raise DataError(
            f"{lab_path}: label {int(labels[bad])} at index {bad} is outside 0..9; corrupt file? "
            f"{_WHERE}"
        )
    sha = {
        p.name.removesuffix(".gz"): hashlib.sha256(_raw_for_hash(p, arr, magic)).hexdigest()
        for p, arr, magic in ((img_path, images, IMAGE_MAGIC), (lab_path, labels, LABEL_MAGIC))
    }
    return FashionMNIST(images, labels, split, (img_path, lab_path), sha)


def _raw_for_hash(path: Path, arr: np.ndarray, magic: int) -> bytes:
    """The decompressed IDX bytes, rebuilt from the validated array (no second decompression)."""
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    return header + arr.tobytes()
