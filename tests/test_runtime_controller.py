"""The numpy controller: verification of bundles, decisions, and no torch / SB3 at import."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import slimrl  # noqa: F401  (registers SlimSplit-v0)
from slimrl.errors import BundleError
from slimrl.export.exporter import export_model
from slimrl.runtime import SCHEMA_VERSION, Controller


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    from stable_baselines3 import PPO

    env = gym.make("SlimSplit-v0")
    model = PPO("MlpPolicy", env, seed=1, device="cpu")
    out = tmp_path_factory.mktemp("bundle") / "b"
    export_model(model, out, env=env, n_parity=500)
    return out


@pytest.fixture
def copy(bundle, tmp_path) -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(bundle, dst)
    return dst


def test_runtime_imports_neither_torch_nor_sb3():
    code = (
        "import sys, slimrl.runtime, slimrl.runtime.device, slimrl.runtime.device_run, "
        "slimrl.runtime.edge_client, slimrl.runtime.edge_server, slimrl.runtime.uplink, "
        "slimrl.runtime.compare, slimrl.runtime.split_model, slimrl.env.observation\n"
        "heavy = [m for m in sys.modules if m.split('.')[0] in "
        "('torch', 'stable_baselines3', 'sb3_contrib', 'onnx', 'onnxruntime')]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


def test_decide_returns_modes_of_the_table(bundle):
    ctrl = Controller.load(bundle)
    env = gym.make("SlimSplit-v0")
    obs, _ = env.reset(seed=0)
    k, bits = ctrl.decide(obs)
    assert (k, bits) in env.unwrapped.action_table
    assert ctrl.observation_names == list(env.unwrapped.obs_builder.names)
    onnx = Controller.load(bundle, backend="onnx")
    for _ in range(200):
        obs, _r, _t, truncated, _i = env.step(env.action_space.sample())
        assert onnx.decide(obs) == ctrl.decide(obs)
        if truncated:
            obs, _ = env.reset()


def test_corrupted_file_is_refused(copy):
    npz = copy / "policy.npz"
    data = bytearray(npz.read_bytes())
    data[len(data) // 2] ^= 0xFF
    npz.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"policy\.npz: sha256 .* does not match"):
        Controller.load(copy)


def test_missing_file_is_refused(copy):
    (copy / "policy.onnx").unlink()
    with pytest.raises(BundleError, match=r"policy\.onnx: missing"):
        Controller.load(copy)


def test_future_schema_is_refused(copy):
    m = json.loads((copy / "manifest.json").read_text())
    m["schema_version"] = SCHEMA_VERSION + 1
    (copy / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(
        BundleError,
        match=f"schema version {SCHEMA_VERSION + 1} is newer.*"
        f"supports \\(schema version {SCHEMA_VERSION}\\)",
    ):
        Controller.load(copy)


def test_garbage_manifest_and_missing_folder(copy, tmp_path):
    (copy / "manifest.json").write_text("{not json")
    with pytest.raises(BundleError, match="not valid JSON"):
        Controller.load(copy)
    with pytest.raises(BundleError, match="no such bundle folder"):
        Controller.load(tmp_path / "nowhere")


def test_unknown_backend(bundle):
    with pytest.raises(BundleError, match="unknown backend"):
        Controller.load(bundle, backend="tpu")


def test_decide_reuses_no_stale_state(bundle):
    """Single decisions (which reuse preallocated buffers) agree with the batch path, whatever
    came before: no state leaks from one call into the next."""
    ctrl = Controller.load(bundle)
    rng = np.random.default_rng(0)
    obs = rng.uniform(0, 2, (200, ctrl.obs_dim)).astype(np.float32)
    batch = [ctrl.action_table[a] for a in ctrl.act_batch(obs)]
    forward = [ctrl.decide(o) for o in obs]
    backward = [ctrl.decide(o) for o in obs[::-1]][::-1]
    assert forward == batch == backward


def test_categorical_mode_matches_torch_on_near_ties():
    import torch
    from torch.distributions import Categorical

    from slimrl.bundle.controller import categorical_mode

    rng = np.random.default_rng(0)
    logits = rng.standard_normal((20_000, 4)) * rng.choice([1e-3, 1.0, 10.0], (20_000, 1))
    logits = logits.astype(np.float32)
    j = rng.integers(1, 4, 20_000)
    rows = np.arange(20_000)
    top = logits.argmax(axis=1)
    # second candidate within a few float32 steps of the best one: ties decided by rounding
    logits[rows, (top + j) % 4] = logits[rows, top] - rng.integers(0, 4, 20_000) * np.spacing(
        np.abs(logits[rows, top]) + 1.4, dtype=np.float32
    ) * rng.random(20_000).astype(np.float32)
    expected = Categorical(logits=torch.from_numpy(logits)).probs.argmax(dim=1).numpy()
    plain = int(np.sum(logits.argmax(axis=1) != expected))
    emulated = int(np.sum(categorical_mode(logits) != expected))
    assert plain > 500  # these rows really are ties decided by float32 rounding
    assert emulated <= plain // 50  # exp/log implementations differ by an ulp, rarely
