"""`slimrl device run` in a real subprocess against a real edge server: SIGINT/SIGTERM flush the
frames run so far to --out with its meta file, and runs that could not complete exit non-zero."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from slimrl.cli import main
from slimrl.runtime.device import meta_path
from slimrl.runtime.edge_server import EdgeServer, EdgeServerThread

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path]:
    """An untrained model checkpoint, its profile, a scenario, a trace and synthetic test images."""
    from slimrl.model.checkpoint import save_model
    from slimrl.model.network import SlimmableSplitModel
    from slimrl.model.payload import payload_size
    from slimrl.paths import ENVS_DIR

    root = tmp_path_factory.mktemp("signals")
    model = SlimmableSplitModel().eval()
    ckpt = save_model(model, root / "model.pt")
    rows = ["k,bits,accuracy,payload_bytes,compute_ms_cpu"]
    for k, b in model.modes:
        size = payload_size(k, b, model.bottleneck_shape)
        rows.append(f"{k},{b},{0.5 + 0.05 * k + 0.02 * b:.3f},{size},{0.5 * k}")
    (root / "model.csv").write_text("\n".join(rows) + "\n")
    traces = root / "traces"
    traces.mkdir()
    for i in range(3):
        lines = ["time_s,mbps"] + [f"{t},{20 + i}" for t in range(60)]
        (traces / f"t{i}.csv").write_text("\n".join(lines) + "\n")
    scenario = root / "sc.yaml"
    scenario.write_text(
        f"name: signals\ntraces: {{path: {traces}}}\nmodel: {{profile: {root / 'model.csv'}}}\n"
        f"device: {{profile: {ENVS_DIR / 'profiles/devices/cpu.yaml'}}}\n"
        "edge: {service: {median_ms: 2, p90_ms: 3}}\nlink: {base_delay_ms: 0}\n"
        "deadline_ms: 40\nreward: {accuracy: 1, miss_penalty: 0.5, energy: 0}\n"
        "episode_s: 3\n"
    )
    data = root / "fmnist"
    data.mkdir()
    n = 10_000  # the loader checks the test split has its 10,000 images
    rng = np.random.default_rng(0)
    images = (rng.random((n, 28, 28)) < 0.05).astype(np.uint8) * 200
    head = (0x803).to_bytes(4, "big") + b"".join(x.to_bytes(4, "big") for x in (n, 28, 28))
    (data / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(head + images.tobytes(), 1))
    labels = rng.integers(0, 10, n).astype(np.uint8)
    lab = (0x801).to_bytes(4, "big") + n.to_bytes(4, "big") + labels.tobytes()
    (data / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(lab, 1))
    return {"ckpt": ckpt, "scenario": scenario, "trace": traces / "t1.csv", "data": data}


def device_args(world, port: int, out: Path, frames: int) -> list[str]:
    return [
        "device", "run", "--policy", "static:2,4", "--env", str(world["scenario"]),
        "--edge", f"127.0.0.1:{port}", "--trace", str(world["trace"]), "--frames", str(frames),
        "--out", str(out), "--model", str(world["ckpt"]), "--data", str(world["data"]),
        "--quiet", "--max-outage-s", "5",
    ]  # fmt: skip


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_flushes_the_log_and_exits_non_zero(world, tmp_path, sig, code):
    out = tmp_path / "run.jsonl"
    part = out.with_name(out.name + ".part")
    with EdgeServerThread(EdgeServer(lambda payload: 3)) as edge:
        proc = subprocess.Popen(
            [sys.executable, "-m", "slimrl.cli", *device_args(world, edge.port, out, 1_000_000)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            deadline = time.monotonic() + 120
            while not (part.is_file() and part.read_text().count("\n") >= 5):
                assert proc.poll() is None, proc.communicate()[1][-3000:]
                assert time.monotonic() < deadline, "no frames after 120 s"
                time.sleep(0.05)
            proc.send_signal(sig)
            _, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    assert proc.returncode == code, err[-3000:]
    assert "Traceback" not in err and f"interrupted by {sig.name}" in err
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    meta = json.loads(meta_path(out).read_text())
    assert len(lines) >= 5 and [x["frame"] for x in lines] == list(range(len(lines)))
    assert all(x["error"] is None and x["prediction"] == 3 for x in lines)
    assert meta["interrupted"] == sig.name and meta["frames_run"] == len(lines)
    assert meta["summary"]["frames"] == len(lines) and meta["frames"] == 1_000_000
    assert not part.exists()


def test_run_in_which_every_frame_fails_exits_non_zero(world, tmp_path, capsys):
    def refuse(payload: bytes) -> int:
        raise ValueError("cannot decode")

    out = tmp_path / "fail.jsonl"
    with EdgeServerThread(EdgeServer(refuse)) as edge:
        code = main(device_args(world, edge.port, out, 3))
    assert code == 2
    err = capsys.readouterr().err
    assert "none of the 3 frames got an answer" in err and str(out) in err
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(lines) == 3 and all("bad payload" in x["error"] for x in lines)
    assert json.loads(meta_path(out).read_text())["interrupted"] is None


def test_trace_that_is_a_fifo_is_refused_not_waited_on(world, tmp_path, capsys):
    fifo = tmp_path / "trace.csv"
    os.mkfifo(fifo)
    args = device_args(world, 9, tmp_path / "x.jsonl", 3)
    args[args.index("--trace") + 1] = str(fifo)
    result: list = []
    t = threading.Thread(target=lambda: result.append(main(args)), daemon=True)
    t.start()
    t.join(60)
    if t.is_alive():  # the unfixed loader blocks in open(): give it a writer so the thread ends
        with open(fifo, "w"):
            pass
        t.join(10)
    assert result == [2], "device run blocked on a FIFO trace"
    assert "FIFO" in capsys.readouterr().err
