"""End to end on loopback: `slimrl edge serve` + `slimrl device run` + `slimrl device compare`.

Uses an untrained split model checkpoint and synthetic Fashion-MNIST files (the loop does not
care what the network learned), and a scenario whose modes are the model's.
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import slimrl  # noqa: F401
from slimrl.cli import main
from slimrl.errors import BundleError
from slimrl.export.exporter import export_model
from slimrl.runtime.device_run import DeviceRunConfig, run_device
from slimrl.runtime.edge_server import EdgeServer, EdgeServerThread

FRAMES = 24


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path]:
    """A model checkpoint, synthetic Fashion-MNIST, traces, a scenario and a bundle for it."""
    from stable_baselines3 import PPO

    from slimrl.model.checkpoint import save_model
    from slimrl.model.network import SlimmableSplitModel
    from slimrl.model.payload import payload_size
    from slimrl.paths import ENVS_DIR

    root = tmp_path_factory.mktemp("world")
    ckpt = save_model(SlimmableSplitModel().eval(), root / "model.pt")
    model = SlimmableSplitModel()
    rows = ["k,bits,accuracy,payload_bytes,compute_ms_cpu"]
    for k, b in model.modes:
        acc = 0.5 + 0.05 * k + 0.02 * b
        rows.append(f"{k},{b},{acc:.3f},{payload_size(k, b, model.bottleneck_shape)},{0.5 * k}")
    (root / "model.csv").write_text("\n".join(rows) + "\n")
    traces = root / "traces"
    traces.mkdir()
    for i, mbps in enumerate((0.5, 1.0, 2.0)):
        lines = ["time_s,mbps"] + [f"{t},{mbps if t % 7 else 0.0}" for t in range(60)]
        (traces / f"t{i}.csv").write_text("\n".join(lines) + "\n")
    scenario = root / "fmnist.yaml"
    scenario.write_text(
        f"name: fmnist-test\ntraces: {{path: {traces}}}\nmodel: {{profile: {root / 'model.csv'}}}\n"
        f"device: {{profile: {ENVS_DIR / 'profiles/devices/cpu.yaml'}}}\n"
        "edge: {service: {median_ms: 2, p90_ms: 3}}\nlink: {base_delay_ms: 0}\n"
        "deadline_ms: 40\nreward: {accuracy: 1, miss_penalty: 0.5, energy: 0}\n"
        "episode_s: 3\n"
    )
    data = root / "fmnist"
    data.mkdir()
    rng = np.random.default_rng(0)
    images = (rng.random((10_000, 28, 28)) < 0.05).astype(np.uint8) * 200
    labels = rng.integers(0, 10, 10_000).astype(np.uint8)
    head = (0x803).to_bytes(4, "big") + b"".join(n.to_bytes(4, "big") for n in (10_000, 28, 28))
    (data / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(head + images.tobytes(), 1))
    lab = (0x801).to_bytes(4, "big") + (10_000).to_bytes(4, "big") + labels.tobytes()
    (data / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(lab, 1))
    env = gym.make("SlimSplit-v0", scenario=str(scenario))
    bundle = root / "bundle"
    export_model(
        PPO("MlpPolicy", env, seed=0, device="cpu"),
        bundle,
        env=env,
        n_parity=300,
        scenario=env.unwrapped.scenario.to_dict(),
    )
    wrong = root / "wrong-bundle"  # trained on the paper's profile: bits 3 does not exist here
    env2 = gym.make("SlimSplit-v0")
    export_model(PPO("MlpPolicy", env2, device="cpu"), wrong, env=env2, n_parity=0)
    return {
        "ckpt": ckpt,
        "scenario": scenario,
        "trace": traces / "t1.csv",
        "data": data,
        "bundle": bundle,
        "wrong": wrong,
        "labels": labels,
    }


@pytest.fixture
def edge(world):
    from slimrl.runtime.split_model import edge_infer, load_split_model

    with EdgeServerThread(EdgeServer(edge_infer(load_split_model(world["ckpt"])))) as srv:
        yield srv


def config(world, port: int, out: Path, **kw) -> DeviceRunConfig:
    base = {
        "edge": f"127.0.0.1:{port}",
        "trace": world["trace"],
        "frames": FRAMES,
        "out": out,
        "bundle": world["bundle"],
        "model": world["ckpt"],
        "data": world["data"],
        "io_timeout_s": 5.0,
        "connect_timeout_s": 1.0,
    }
    base.update(kw)
    return DeviceRunConfig(**base)


def test_device_run_with_bundle_and_compare(world, edge, tmp_path, capsys):
    log = tmp_path / "run.jsonl"
    recs, meta = run_device(config(world, edge.port, log), progress=False)
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    assert len(lines) == FRAMES and not (tmp_path / "run.jsonl.part").exists()
    need = {
        "frame",
        "k",
        "bits",
        "bytes",
        "compute_ms",
        "transfer_ms",
        "edge_ms",
        "edge_queue_ms",
        "e2e_ms",
        "on_time",
        "correct",
        "label",
        "prediction",
    }
    assert need <= set(lines[0])
    for ln in lines:
        assert ln["error"] is None
        assert ln["label"] == int(world["labels"][ln["image"]])
        assert ln["correct"] == (ln["prediction"] == ln["label"])
        assert ln["on_time"] == (ln["e2e_ms"] <= 40)
        assert ln["e2e_ms"] >= ln["compute_ms"] + ln["transfer_ms"]
    assert meta["deadline_ms"] == 40 and meta["summary"]["frames"] == FRAMES
    assert edge.server.stats.served == FRAMES

    assert main(["device", "compare", str(log), "--env", str(world["scenario"])]) == 0
    out = capsys.readouterr().out
    assert "on-time rate" in out and "simulated" in out
    csv = (tmp_path / "run.compare.csv").read_text().splitlines()
    assert len(csv) == FRAMES + 1 and "sim_e2e_ms" in csv[0]
    assert (tmp_path / "run.compare.png").stat().st_size > 1000


@pytest.mark.parametrize("policy", ["static:2,4", "paper-ewma", "rate-threshold"])
def test_device_run_with_heuristics(world, edge, tmp_path, policy):
    cfg = config(
        world,
        edge.port,
        tmp_path / "h.jsonl",
        policy=policy,
        scenario=str(world["scenario"]),
        frames=8,
    )
    recs, meta = run_device(cfg, progress=False)
    assert meta["policy"] == policy and all(r.error is None for r in recs)
    if policy == "static:2,4":
        assert {(r.k, r.bits) for r in recs} == {(2, 4)}


def test_bundle_with_modes_the_model_lacks_is_refused(world, edge, tmp_path):
    cfg = config(world, edge.port, tmp_path / "x.jsonl", bundle=world["wrong"])
    with pytest.raises(BundleError, match=r"modes the model does not have: \(k=1, bits=3\)"):
        run_device(cfg, progress=False)


def test_missing_reference_bundle_is_a_clear_error(world, tmp_path, monkeypatch, capsys):
    import slimrl.runtime.device_run as dr

    monkeypatch.setattr(dr, "REFERENCE_BUNDLE", tmp_path / "agents" / "reference")
    code = main(
        [
            "device",
            "run",
            "--edge",
            "127.0.0.1:9",
            "--trace",
            str(world["trace"]),
            "--frames",
            "1",
            "--out",
            str(tmp_path / "l.jsonl"),
            "--quiet",
        ]
    )
    assert code == 2
    assert "reference policy bundle" in capsys.readouterr().err


def test_cli_edge_serve_and_device_run_then_sigterm(world, tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "slimrl.cli",
            "edge",
            "serve",
            "--port",
            "0",
            "--model",
            str(world["ckpt"]),
            "--threads",
            "1",
        ],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        port, deadline = None, time.monotonic() + 60
        while port is None and time.monotonic() < deadline:
            line = proc.stderr.readline()
            if "listening on" in line:
                port = int(line.rsplit(":", 1)[1])
            elif not line and proc.poll() is not None:
                break
        assert port, "edge server did not start"
        log = tmp_path / "cli.jsonl"
        code = main(
            [
                "device",
                "run",
                "--bundle",
                str(world["bundle"]),
                "--edge",
                f"127.0.0.1:{port}",
                "--trace",
                str(world["trace"]),
                "--frames",
                "10",
                "--deadline-ms",
                "50",
                "--out",
                str(log),
                "--model",
                str(world["ckpt"]),
                "--data",
                str(world["data"]),
                "--quiet",
            ]
        )
        assert code == 0
        assert len(log.read_text().splitlines()) == 10
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
        assert proc.returncode == 0
        assert "edge server stopped: 10 served" in err and "Traceback" not in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


def test_reference_bundle_found_under_agents_reference(world, tmp_path, monkeypatch):
    import shutil

    import slimrl.runtime.device_run as dr

    root = tmp_path / "reference"
    monkeypatch.setattr(dr, "REFERENCE_BUNDLE", root)
    shutil.copytree(world["bundle"], root / "ppo-fmnist" / "bundle")
    assert dr._bundle_dir(None) == root / "ppo-fmnist" / "bundle"
    shutil.copytree(world["bundle"], root / "other")
    with pytest.raises(BundleError, match="several reference bundles"):
        dr._bundle_dir(None)


def test_edge_that_never_answers_ends_with_a_clear_error(world, tmp_path, capsys):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp_path / "down.jsonl"
    t0 = time.monotonic()
    code = main(
        [
            "device",
            "run",
            "--bundle",
            str(world["bundle"]),
            "--edge",
            f"127.0.0.1:{port}",
            "--trace",
            str(world["trace"]),
            "--frames",
            "1000",
            "--out",
            str(log),
            "--model",
            str(world["ckpt"]),
            "--data",
            str(world["data"]),
            "--quiet",
            "--max-outage-s",
            "1",
        ]
    )
    assert code == 2 and time.monotonic() - t0 < 30
    assert "giving up" in capsys.readouterr().err
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    assert 1 <= len(lines) < 1000 and all(x["error"] for x in lines)
