"""Export: bundle contents, parity with SB3 on env observations, refusals with reasons."""

from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import yaml

import slimrl  # noqa: F401  (registers SlimSplit-v0)
from slimrl.bundle.format import sha256_file
from slimrl.errors import BundleError
from slimrl.export.exporter import draw_observations, export_model, export_run
from slimrl.runs import Run
from slimrl.runs.zoo_yaml import read_zoo_yaml
from slimrl.runtime import Controller

ENV_ID = "SlimSplit-v0"
PARITY_N = 10_000


def make_run(
    root: Path,
    algo: str = "PPO",
    action_space: str = "multidiscrete",
    normalize: bool = True,
    steps: int = 256,
    policy_kwargs: dict | None = None,
    overrides: dict | None = None,
) -> Path:
    """Train a tiny agent on SlimSplit-v0 and save it in the rl-zoo layout; return RUN_DIR."""
    import torch
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    torch.set_num_threads(1)  # tiny networks: threads only add overhead on a busy machine
    env_kwargs = {"scenario": "default", "action_space": action_space}
    if overrides:
        env_kwargs["overrides"] = overrides
    venv = DummyVecEnv([lambda: gym.make(ENV_ID, **env_kwargs)])
    if normalize:
        venv = VecNormalize(venv, norm_reward=False)
    kwargs = {"policy_kwargs": policy_kwargs or {}, "seed": 0, "device": "cpu"}
    if algo == "DQN":
        from stable_baselines3 import DQN

        model = DQN("MlpPolicy", venv, learning_starts=32, buffer_size=1000, **kwargs)
    elif algo == "MaskablePPO":
        from sb3_contrib import MaskablePPO

        model = MaskablePPO("MlpPolicy", venv, n_steps=128, batch_size=64, n_epochs=1, **kwargs)
    else:
        import stable_baselines3

        cls = getattr(stable_baselines3, algo)
        extra = {"n_steps": 128, "batch_size": 64, "n_epochs": 1} if algo == "PPO" else {}
        if algo == "A2C":
            extra = {"n_steps": 32}
        model = cls("MlpPolicy", venv, **extra, **kwargs)
    if steps:
        model.learn(steps)
    run = root / algo.lower() / f"{ENV_ID}_1"
    params = run / ENV_ID
    params.mkdir(parents=True)
    model.save(run / f"{ENV_ID}.zip")
    if normalize:
        from slimrl.runs.write import save_vecnormalize

        save_vecnormalize(venv, params / "vecnormalize.npz")
    zoo_algo = {"MaskablePPO": "ppo_mask"}.get(algo, algo.lower())
    config = OrderedDict(
        [
            ("normalize", "{'norm_obs': True, 'norm_reward': False}" if normalize else False),
            ("policy", "MlpPolicy"),
        ]
    )
    args = OrderedDict(
        [("algo", zoo_algo), ("env", ENV_ID), ("env_kwargs", env_kwargs), ("seed", 0)]
    )
    (params / "config.yml").write_text(yaml.dump(config))  # the python tags rl-zoo writes
    (params / "args.yml").write_text(yaml.dump(args))
    return run


@pytest.fixture(scope="module")
def ppo_run(tmp_path_factory) -> Path:
    return make_run(tmp_path_factory.mktemp("runs"))


@pytest.fixture(scope="module")
def ppo_bundle(ppo_run, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bundles") / "ppo"
    export_run(ppo_run, out, n_parity=PARITY_N)
    return out


def sb3_actions(run: Path, obs: np.ndarray, masks=None) -> np.ndarray:
    """What SB3 itself predicts: VecNormalize.normalize_obs then model.predict."""
    files = Run.open(run)
    model = files.load_agent()
    x = obs
    if files.vecnormalize is not None:
        x = files.load_vecnormalize().normalize_obs(obs)
    kwargs = {"action_masks": masks} if masks is not None else {}
    a, _ = model.predict(x, deterministic=True, **kwargs)
    return np.asarray(a).reshape(len(obs), -1)


def test_zoo_yaml_reader(ppo_run):
    cfg = read_zoo_yaml(ppo_run / ENV_ID / "config.yml")
    files = Run.open(ppo_run)
    assert cfg["policy"] == "MlpPolicy"
    assert files.normalize == {"norm_obs": True, "norm_reward": False}
    assert files.algo == "ppo"
    assert files.env_kwargs["action_space"] == "multidiscrete"
    assert files.model.name == f"{ENV_ID}.zip"


def test_bundle_files_and_manifest(ppo_bundle):
    names = sorted(p.name for p in ppo_bundle.iterdir())
    assert names == ["manifest.json", "policy.npz", "policy.onnx"]
    m = json.loads((ppo_bundle / "manifest.json").read_text())
    assert m["schema_version"] == 1 and m["algo"] == "PPO"
    for name, digest in m["files"].items():
        assert sha256_file(ppo_bundle / name) == digest
    env = gym.make(ENV_ID)
    assert m["observation"]["names"] == list(env.unwrapped.obs_builder.names)
    assert m["observation"]["normalize"]["enabled"] is True
    assert m["observation"]["normalize"]["clip_obs"] == 10.0
    assert [tuple(x) for x in m["action"]["table"]] == env.unwrapped.action_table
    assert m["action"]["kind"] == "multidiscrete" and m["action"]["nvec"] == [4, 4]
    assert m["scenario"]["name"] == "default" and m["scenario"]["deadline_ms"] == 300
    assert {"numpy", "torch", "stable-baselines3", "onnx"} <= set(m["versions"])
    p = m["parity"]
    assert p["n"] == PARITY_N
    assert p["numpy_vs_sb3"] == p["onnx_vs_sb3"] == p["onnx_vs_numpy"] == 1.0
    assert p["mismatches"] == 0


def test_parity_onnx_numpy_sb3_on_env_observations(ppo_run, ppo_bundle):
    env = gym.make(ENV_ID, scenario="default", split="val")
    obs, _ = draw_observations(env, PARITY_N, seed=123)
    sb3 = Controller.load(ppo_bundle).flat_index(sb3_actions(ppo_run, obs))
    a_np = Controller.load(ppo_bundle).act_batch(obs)
    a_onnx = Controller.load(ppo_bundle, backend="onnx").act_batch(obs)
    assert np.array_equal(a_np, sb3)
    assert np.array_equal(a_onnx, sb3)
    ctrl = Controller.load(ppo_bundle)
    single = [ctrl.flat_action(o) for o in obs[:2000]]  # the fast single-observation path
    assert np.array_equal(single, sb3[:2000])
    assert len(set(sb3.tolist())) >= 1


@pytest.mark.parametrize(
    "algo, action_space, normalize",
    [("DQN", "flat", False), ("A2C", "flat", True), ("MaskablePPO", "multidiscrete", True)],
)
def test_other_algorithms(tmp_path, algo, action_space, normalize):
    overrides = {"modes": {"k": [1, 2, 4], "bits": [2, 4]}} if algo == "MaskablePPO" else None
    run = make_run(tmp_path, algo, action_space, normalize, steps=128, overrides=overrides)
    m = export_run(run, tmp_path / "bundle", n_parity=3000)
    assert m["algo"] == algo
    assert m["parity"]["numpy_vs_sb3"] == m["parity"]["onnx_vs_sb3"] == 1.0
    if algo == "MaskablePPO":
        ctrl = Controller.load(tmp_path / "bundle")
        env = gym.make(ENV_ID, overrides=overrides)
        obs, masks = draw_observations(env, 2000, seed=5, maskable=True)
        assert not masks.all()  # the scenario forbids some modes
        chosen = ctrl.act_batch(obs, masks)
        onnx = Controller.load(tmp_path / "bundle", backend="onnx").act_batch(obs, masks)
        assert np.array_equal(chosen, onnx)
        assert np.array_equal(chosen, ctrl.flat_index(sb3_actions(run, obs, masks)))
        ks = {ctrl.action_table[a][0] for a in chosen}
        assert ks <= {1, 2, 4}
        assert ctrl.flat_action(obs[0], masks[0]) == chosen[0]


def _untrained(policy_kwargs=None, algo="PPO", **env_kwargs):
    env = gym.make(ENV_ID, **env_kwargs)
    if algo == "RecurrentPPO":
        from sb3_contrib import RecurrentPPO

        return RecurrentPPO("MlpLstmPolicy", env, n_steps=16, device="cpu"), env
    from stable_baselines3 import PPO

    return PPO("MlpPolicy", env, policy_kwargs=policy_kwargs or {}, device="cpu"), env


def test_refuses_missing_vecnormalize_when_config_normalises(tmp_path, ppo_run):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(ppo_run, run)
    (run / ENV_ID / "vecnormalize.npz").unlink()
    with pytest.raises(BundleError, match="vecnormalize.npz"):
        export_run(run, tmp_path / "out", n_parity=10)
    assert not (tmp_path / "out").exists()


def test_refuses_unknown_activation(tmp_path):
    from torch import nn

    model, env = _untrained({"activation_fn": nn.GELU})
    with pytest.raises(BundleError, match="unknown activation GELU"):
        export_model(model, tmp_path / "b", env=env, n_parity=10)


def test_refuses_non_mlp_feature_extractor(tmp_path):
    from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
    from torch import nn

    class Custom(BaseFeaturesExtractor):
        def __init__(self, space):
            super().__init__(space, 8)
            self.net = nn.Linear(space.shape[0], 8)

        def forward(self, obs):
            return self.net(obs)

    model, env = _untrained({"features_extractor_class": Custom})
    with pytest.raises(BundleError, match="Custom.*MlpPolicy"):
        export_model(model, tmp_path / "b", env=env, n_parity=10)


def test_refuses_recurrent_policy(tmp_path):
    model, env = _untrained(algo="RecurrentPPO")
    with pytest.raises(BundleError, match="RecurrentPPO cannot be exported"):
        export_model(model, tmp_path / "b", env=env, n_parity=10)


def test_refuses_mismatching_observation_space(tmp_path):
    model, _ = _untrained()
    other = gym.make(ENV_ID, overrides={"observation.history": 6})
    with pytest.raises(BundleError, match="observation spaces differ"):
        export_model(model, tmp_path / "b", env=other, n_parity=10)
    flat = gym.make(ENV_ID, action_space="flat")
    with pytest.raises(BundleError, match="action spaces differ"):
        export_model(model, tmp_path / "b", env=flat, n_parity=10)


def test_refuses_unknown_run_folder(tmp_path):
    with pytest.raises(BundleError, match="no model .zip"):
        export_run(tmp_path, tmp_path / "out")


def test_cli_export(ppo_run, tmp_path, capsys):
    from slimrl.cli import main

    out = tmp_path / "cli-bundle"
    assert main(["export", str(ppo_run), "--out", str(out), "--parity", "2000"]) == 0
    assert "parity on 2,000 observations" in capsys.readouterr().err
    assert Controller.load(out).manifest["parity"]["onnx_vs_sb3"] == 1.0
    code = main(["export", str(tmp_path / "nope"), "--out", str(tmp_path / "x")])
    assert code == 2 and "no such run folder" in capsys.readouterr().err


@pytest.mark.parametrize("activation", ["ReLU", "LeakyReLU", "ELU", "Sigmoid"])
def test_supported_activations_keep_parity(tmp_path, activation):
    from torch import nn

    model, env = _untrained({"activation_fn": getattr(nn, activation), "net_arch": [32, 32]})
    m = export_model(model, tmp_path / "b", env=env, n_parity=2000)
    assert m["network"]["layers"][0]["activation"] != "identity"
    assert m["parity"]["numpy_vs_sb3"] == m["parity"]["onnx_vs_sb3"] == 1.0
