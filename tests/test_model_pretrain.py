"""``slimrl pretrain --quick`` and ``slimrl profile`` end to end (a few seconds of training)."""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest

from slimrl.cli import main
from slimrl.errors import DataError
from slimrl.model.data import IMAGE_MAGIC, LABEL_MAGIC, default_data_dir


def _idx(magic: int, arr: np.ndarray) -> bytes:
    head = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    return head + arr.tobytes()


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """The real Fashion-MNIST where installed, else a small synthetic stand-in."""
    try:
        folder = default_data_dir()
        if (folder / "t10k-labels-idx1-ubyte.gz").is_file() or (
            folder / "t10k-labels-idx1-ubyte"
        ).is_file():
            yield str(folder)
            return
    except DataError:
        pass
    import slimrl.model.data as data

    mp = pytest.MonkeyPatch()
    mp.setitem(data.SPLITS, "train", ("train", 2048))
    mp.setitem(data.SPLITS, "test", ("t10k", 1000))
    folder = tmp_path_factory.mktemp("fmnist")
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 2048), ("t10k", 1000)):
        labels = (np.arange(n) % 10).astype(np.uint8)
        images = rng.integers(0, 60, size=(n, 28, 28), dtype=np.uint8)
        for c in range(10):  # a bright bar whose place depends on the class
            images[labels == c, 2 + 2 * c : 4 + 2 * c, :] = 250
        (folder / f"{prefix}-images-idx3-ubyte.gz").write_bytes(
            gzip.compress(_idx(IMAGE_MAGIC, images), compresslevel=1)
        )
        (folder / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(
            gzip.compress(_idx(LABEL_MAGIC, labels))
        )
    yield str(folder)
    mp.undo()


@pytest.fixture(scope="module")
def quick_run(data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("pretrain")
    code = main(["pretrain", "--quick", "--data", data_dir, "--out", str(out), "--no-progress"])
    assert code == 0
    return out


def test_quick_pretrain_writes_loadable_model(quick_run):
    from slimrl.model import load_model

    assert (quick_run / "fmnist-slimmable.pt").is_file()
    assert (quick_run / "MODEL_CARD.md").is_file()
    assert any((quick_run / "tb").iterdir())
    model = load_model(quick_run)
    assert model.meta["recipe"]["seed"] == 0
    assert set(model.meta["accuracy"]) == {f"{k},{b}" for k, b in model.modes}
    assert len(model.meta["data_sha256"]) == 4
    images = np.zeros((2, 28, 28), np.uint8)
    model.set_mode(1, 2)
    logits = model.decode(model.encode(images)[0])
    assert logits.shape == (10,) and np.isfinite(logits).all()
    card = (quick_run / "MODEL_CARD.md").read_text()
    assert "| 4 | 8 |" in card and "Quality checks" in card


def test_profile_cli(quick_run, data_dir, tmp_path):
    out = tmp_path / "prof.csv"
    args = ["profile", "--model", str(quick_run), "--data", data_dir, "--out", str(out)]
    assert main([*args, "--repeats", "3", "--limit", "300", "--no-progress"]) == 0
    table = pd.read_csv(out)
    assert list(table.columns) == [
        "k",
        "bits",
        "accuracy",
        "payload_bytes",
        "compute_ms_cpu",
        "edge_ms_cpu",
    ]
    assert len(table) == 16 and (table.compute_ms_cpu > 0).all() and (table.edge_ms_cpu > 0).all()
    side = np.load(tmp_path / "prof.samples.npz")
    assert side["correct"].shape == (16, 300) and side["correct"].dtype == np.uint8
    np.testing.assert_allclose(side["correct"].mean(axis=1), table.accuracy, atol=1e-6)


def test_pretrain_bad_data_dir_is_a_clean_error(tmp_path, capsys):
    code = main(["pretrain", "--quick", "--data", str(tmp_path), "--out", str(tmp_path / "o")])
    assert code == 2
    err = capsys.readouterr().err
    assert "train-images-idx3-ubyte" in err and "dataset-fashion-mnist" in err
