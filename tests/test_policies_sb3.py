"""SB3 run folders and exported bundles as policies: same decisions as SB3's own predict."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import yaml

import slimrl  # noqa: F401  (registers SlimSplit-v0)
from slimrl.errors import PolicyError
from slimrl.evaluate import run_evaluation
from slimrl.policies import make_policy
from slimrl.policies.bundle import BundlePolicy
from slimrl.policies.sb3 import SB3Policy

ENV_ID = "SlimSplit-v0"


def make_run(root: Path, action_space: str = "multidiscrete") -> Path:
    """A tiny PPO run with VecNormalize in the rl-zoo layout."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    env_kwargs = {"scenario": "default", "action_space": action_space}
    venv = VecNormalize(DummyVecEnv([lambda: gym.make(ENV_ID, **env_kwargs)]), norm_reward=False)
    model = PPO(
        "MlpPolicy",
        venv,
        n_steps=64,
        batch_size=32,
        n_epochs=1,
        seed=0,
        device="cpu",
        policy_kwargs={"net_arch": [16]},
    )
    model.learn(64)
    run = root / f"{ENV_ID}_1"
    params = run / ENV_ID
    params.mkdir(parents=True)
    model.save(run / f"{ENV_ID}.zip")
    from slimrl.runs.write import save_vecnormalize

    save_vecnormalize(venv, params / "vecnormalize.npz")
    config = OrderedDict(
        [("normalize", "{'norm_obs': True, 'norm_reward': False}"), ("policy", "MlpPolicy")]
    )
    args = OrderedDict([("algo", "ppo"), ("env", ENV_ID), ("env_kwargs", env_kwargs)])
    (params / "config.yml").write_text(yaml.dump(config))
    (params / "args.yml").write_text(yaml.dump(args))
    return run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return make_run(tmp_path_factory.mktemp("runs"))


def test_run_folder_policy_matches_sb3(run_dir):
    from stable_baselines3 import PPO

    from slimrl.runs.stats import load_vecnormalize

    env = gym.make(ENV_ID, scenario="default", split="val", action_space="flat")
    pol = make_policy(str(run_dir), env)
    assert isinstance(pol, SB3Policy) and pol.vecnormalize is not None
    model = PPO.load(run_dir / f"{ENV_ID}.zip", device="cpu")
    vec = load_vecnormalize(run_dir / ENV_ID / "vecnormalize.npz")
    rng = np.random.default_rng(0)
    obs = rng.uniform(0, 1, (64, env.observation_space.shape[0])).astype(np.float32)
    want, _ = model.predict(vec.normalize_obs(obs), deterministic=True)
    got = pol.act_batch(obs, {})
    assert np.array_equal(got, want[:, 0] * 4 + want[:, 1])
    assert pol.act(obs[3], {}) == got[3]


def test_bundle_policy_matches_run_and_evaluates(run_dir, tmp_path):
    from slimrl.export.exporter import export_run

    bundle = tmp_path / "bundle"
    export_run(run_dir, bundle, n_parity=500)
    env = gym.make(ENV_ID, scenario="default", split="val", action_space="flat")
    b = make_policy(str(bundle), env)
    s = make_policy(str(run_dir), env)
    assert isinstance(b, BundlePolicy)
    obs = np.random.default_rng(1).uniform(0, 1, (200, env.observation_space.shape[0]))
    obs = obs.astype(np.float32)
    assert np.array_equal(b.act_batch(obs, {}), s.act_batch(obs, {}))
    df = run_evaluation(
        "default",
        "val",
        [str(run_dir), str(bundle)],
        tmp_path / "ev",
        episodes=2,
        overrides={"episode_s": 8},
        progress=False,
    )
    r = df.set_index("policy")["reward_mean"]
    assert r[str(run_dir)] == pytest.approx(r[str(bundle)], abs=1e-9)


def test_mismatched_model_is_refused(run_dir):
    env = gym.make(
        ENV_ID, scenario="default", action_space="flat", overrides={"observation.history": 6}
    )
    with pytest.raises(PolicyError, match="observation"):
        make_policy(str(run_dir), env)
