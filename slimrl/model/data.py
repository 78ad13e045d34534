"""Fashion-MNIST reader for the original IDX files (gzip-compressed or raw); no torchvision.

Where a split is found (:func:`locate`), in order: ``--data DIR`` (``data_dir``), then
``$SLIMRL_FMNIST_DIR`` (either one, when given, is the only place looked at), the Debian package
``dataset-fashion-mnist`` (``/usr/share/datasets/fashion-mnist``), ``../shared/data/fashion-mnist``
next to the slimrl checkout, and for the test split only the copy shipped with the package
(``slimrl/model/dataset/fashion-mnist``, MIT licence): so a fresh install runs the device loop,
``slimrl profile`` and the tests, while ``slimrl pretrain`` needs one of the others.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from slimrl.errors import DataError
from slimrl.paths import ROOT

ENV_VAR = "SLIMRL_FMNIST_DIR"
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
SHARED_DIR = ROOT.parent / "shared" / "data" / "fashion-mnist"
#: the test split shipped with the package (package data)
PACKAGE_DIR = Path(__file__).resolve().parent / "dataset" / "fashion-mnist"
PACKAGE_SPLITS = ("test",)
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
class DataSource:
    """Where a split was found: ``folder`` and ``how`` (which rule of the lookup order)."""

    folder: Path
    how: str

    def __str__(self) -> str:
        return f"{self.folder} ({self.how})"


@dataclass(frozen=True)
class FashionMNIST:
    """One split: ``images`` (N, 28, 28) uint8, ``labels`` (N,) uint8, raw-file ``sha256``."""

    images: np.ndarray
    labels: np.ndarray
    split: str
    files: tuple[Path, Path]
    sha256: dict[str, str]
    source: str = field(default="", compare=False)  # where it was found (DataSource text)

    def __len__(self) -> int:
        return len(self.labels)


def candidates(split: str = "train") -> list[DataSource]:
    """Folders searched for ``split`` when no ``--data`` is given, in order (an explicit
    ``$SLIMRL_FMNIST_DIR`` is the only one)."""
    if os.environ.get(ENV_VAR):
        return [DataSource(Path(os.environ[ENV_VAR]), f"${ENV_VAR}")]
    out = [
        DataSource(DEBIAN_DIR, "Debian package dataset-fashion-mnist"),
        DataSource(SHARED_DIR, "../shared/data next to the slimrl checkout"),
    ]
    if split in PACKAGE_SPLITS:
        out.append(DataSource(PACKAGE_DIR, "shipped with slimrl, test split only"))
    return out


def candidate_dirs(split: str = "train") -> list[Path]:
    """The folders of :func:`candidates`."""
    return [c.folder for c in candidates(split)]


def _has_split(folder: Path, split: str) -> bool:
    """Both IDX files of ``split`` (gzip-compressed or raw) are in ``folder``."""
    prefix = SPLITS[split][0]
    return all(
        any((folder / f"{prefix}-{kind}-ubyte{ext}").is_file() for ext in (".gz", ""))
        for kind in ("images-idx3", "labels-idx1")
    )


def locate(split: str = "train", data_dir: str | os.PathLike | None = None) -> DataSource:
    """Where ``split`` is read from: ``data_dir`` when given, else the first candidate folder
    (:func:`candidates`) that holds the split's two files. An explicit folder is returned even
    when it lacks them (reading it then names the missing file)."""
    if split not in SPLITS:
        raise DataError(f"unknown Fashion-MNIST split {split!r}; expected one of {list(SPLITS)}")
    if data_dir is not None:
        return DataSource(Path(data_dir), "--data")
    found = candidates(split)
    if len(found) == 1 and found[0].how.startswith("$"):
        return found[0]
    for cand in found:
        if _has_split(cand.folder, split):
            return cand
    tried = ", ".join(str(c.folder) for c in found)
    raise DataError(f"Fashion-MNIST {split} split not found (looked in {tried}); {_WHERE}")


def default_data_dir(split: str = "train") -> Path:
    """The folder :func:`locate` picks for ``split`` when no ``--data`` is given."""
    return locate(split).folder


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
    """Load ``"train"`` (60,000) or ``"test"`` (10,000) images and labels from ``data_dir``, else
    from where :func:`locate` finds the split (``.source`` says where)."""
    source = locate(split, data_dir)
    folder = source.folder
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
    return FashionMNIST(images, labels, split, (img_path, lab_path), sha, str(source))


def _raw_for_hash(path: Path, arr: np.ndarray, magic: int) -> bytes:
    """The decompressed IDX bytes, rebuilt from the validated array (no second decompression)."""
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    return header + arr.tobytes()
