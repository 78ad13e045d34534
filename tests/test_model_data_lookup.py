"""Where Fashion-MNIST is found: --data, $SLIMRL_FMNIST_DIR, Debian, ../shared, the package."""

from __future__ import annotations

import gzip
import hashlib
import tomllib

import numpy as np
import pytest

import slimrl.model.data as data
from slimrl.cli import main
from slimrl.errors import DataError
from slimrl.paths import ROOT


def _split(folder, prefix: str, n: int = 4) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    labels = (np.arange(n) % 10).astype(np.uint8)
    images = np.zeros((n, 28, 28), np.uint8)
    for magic, arr, kind in ((data.IMAGE_MAGIC, images, "images-idx3"),
                             (data.LABEL_MAGIC, labels, "labels-idx1")):  # fmt: skip
        head = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
        (folder / f"{prefix}-{kind}-ubyte.gz").write_bytes(gzip.compress(head + arr.tobytes()))


@pytest.fixture
def places(tmp_path, monkeypatch):
    """Empty stand-ins for the Debian and ../shared folders; no $SLIMRL_FMNIST_DIR."""
    monkeypatch.delenv(data.ENV_VAR, raising=False)
    monkeypatch.setattr(data, "DEBIAN_DIR", tmp_path / "debian")
    monkeypatch.setattr(data, "SHARED_DIR", tmp_path / "shared")
    monkeypatch.setitem(data.SPLITS, "train", ("train", 4))
    return tmp_path


def test_the_test_split_ships_with_the_package():
    ds = data.load_fashion_mnist("test", data.PACKAGE_DIR)
    assert ds.images.shape == (10_000, 28, 28) and np.bincount(ds.labels).tolist() == [1000] * 10
    assert abs(ds.images.mean() / 255 - 0.2868) < 1e-3  # the README's test-split mean
    raw = {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in data.PACKAGE_DIR.glob("*.gz")}
    assert raw == {  # byte-identical to upstream (MD5s published by Zalando Research)
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    }
    licence = (data.PACKAGE_DIR / "LICENSE").read_text()
    assert "MIT License" in licence and "Zalando SE" in licence
    assert "arXiv:1708.07747" in (data.PACKAGE_DIR / "README.md").read_text()
    # declared as package data, so a non-editable install carries it too
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = conf["tool"]["setuptools"]["package-data"]["slimrl.model"]
    rel = data.PACKAGE_DIR.relative_to(ROOT / "slimrl" / "model").as_posix()
    assert f"{rel}/*" in patterns


def test_lookup_order(places, monkeypatch):
    # nothing installed: the shipped test split, and a clear error for the training split
    assert data.locate("test") == data.DataSource(data.PACKAGE_DIR, data.candidates("test")[-1].how)
    assert "shipped with slimrl" in str(data.locate("test"))
    with pytest.raises(DataError, match=r"train split not found .*debian.*shared.*dataset-fashion"):
        data.locate("train")
    _split(places / "shared", "train")
    _split(places / "shared", "t10k")
    assert data.locate("train").folder == places / "shared"
    assert data.locate("test").folder == places / "shared"  # before the shipped copy
    _split(places / "debian", "train")
    assert data.locate("train").how == "Debian package dataset-fashion-mnist"
    assert data.locate("test").folder == places / "shared"  # Debian's has no test split here
    monkeypatch.setenv(data.ENV_VAR, str(places / "env"))
    assert data.locate("train") == data.DataSource(places / "env", f"${data.ENV_VAR}")
    with pytest.raises(DataError, match="no such Fashion-MNIST folder"):
        data.load_fashion_mnist("train")  # an explicit folder is not skipped when wrong
    assert data.locate("train", places / "x") == data.DataSource(places / "x", "--data")
    ds = data.load_fashion_mnist("train", places / "shared")
    assert ds.source == f"{places / 'shared'} (--data)" and len(ds) == 4


def test_pretrain_says_which_folder_it_uses(places, monkeypatch, capsys):
    import slimrl.model.pretrain as pretrain

    _split(places / "debian", "train")

    def stop(*args, **kwargs):
        raise DataError("stopped before training")

    monkeypatch.setattr(pretrain, "pretrain", stop)
    assert main(["pretrain", "--quick", "--out", str(places / "out"), "--no-progress"]) == 2
    out = capsys.readouterr().out
    assert f"Fashion-MNIST train split: {places / 'debian'} (Debian package" in out
    assert "Fashion-MNIST test split: " in out and "shipped with slimrl" in out
