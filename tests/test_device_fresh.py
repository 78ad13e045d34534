"""A fresh install runs the device loop as shipped: reference bundle, pretrained weights and the
Fashion-MNIST test split that ships with the package (no --bundle, --model or --data)."""

from __future__ import annotations

import json

import pytest

import slimrl.model.data as data
from slimrl.cli import main
from slimrl.paths import TRACES_DIR
from slimrl.runtime.device import meta_path
from slimrl.runtime.edge_server import EdgeServer, EdgeServerThread

TRACE = TRACES_DIR / "mahimahi-cellular" / "Verizon-LTE-short.up"


@pytest.fixture
def bare(tmp_path, monkeypatch):
    """No Fashion-MNIST anywhere but in the package."""
    monkeypatch.delenv(data.ENV_VAR, raising=False)
    monkeypatch.setattr(data, "DEBIAN_DIR", tmp_path / "no-debian")
    monkeypatch.setattr(data, "SHARED_DIR", tmp_path / "no-shared")
    return tmp_path


def test_device_run_with_everything_shipped(bare, capsys):
    from slimrl.runtime.split_model import edge_infer, load_split_model

    assert data.locate("test").folder == data.PACKAGE_DIR
    out = bare / "device.jsonl"
    with EdgeServerThread(EdgeServer(edge_infer(load_split_model(None, 1)))) as edge:
        code = main(["device", "run", "--edge", f"127.0.0.1:{edge.port}", "--trace", str(TRACE),
                     "--frames", "6", "--out", str(out), "--quiet"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(lines) == 6 and all(x["error"] is None for x in lines)
    assert sum(x["prediction"] == x["label"] for x in lines) >= 3  # the real images, a real model
    meta = json.loads(meta_path(out).read_text())
    assert meta["model"] == "shipped" and meta["bundle"].endswith("bundle")


@pytest.mark.parametrize("frames", ["0", "-3"])
def test_device_run_without_frames_exits_non_zero(bare, capsys, frames):
    out = bare / "none.jsonl"
    code = main(["device", "run", "--edge", "127.0.0.1:9", "--trace", str(TRACE), "--frames",
                 frames, "--out", str(out), "--quiet"])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"--frames: expected an integer >= 1, got {frames}" in err
    assert not out.exists()
