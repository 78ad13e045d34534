"""The SB3 VecEnv adapter over SlimSplitVectorEnv, and Zoo hyperparameter parsing (fast)."""

from __future__ import annotations

import numpy as np
import pytest

import slimrl  # noqa: F401  (registers SlimSplit-v0)
from slimrl.env.slimsplit import SlimSplitEnv
from slimrl.env.vector import SlimSplitVectorEnv
from slimrl.errors import HyperparamsError
from slimrl.train.hyperparams import parse_python_kwargs, preprocess
from slimrl.train.vec_env import GymVectorToSB3, make_vec_env

EP_S = 1.5  # a few frames per episode


def _adapter(n: int = 3, flat: bool = False) -> GymVectorToSB3:
    venv = SlimSplitVectorEnv(
        n,
        "default",
        overrides={"episode_s": EP_S},
        action_space="flat" if flat else "multidiscrete",
    )
    return GymVectorToSB3(venv)


def test_terminal_observation_matches_single_envs():
    n, seed = 3, 7
    env = _adapter(n)
    env.seed(seed)
    obs = env.reset()
    singles = [SlimSplitEnv("default", overrides={"episode_s": EP_S}) for _ in range(n)]
    single_obs = [s.reset(seed=seed + i)[0] for i, s in enumerate(singles)]
    np.testing.assert_array_equal(obs, np.stack(single_obs))
    rng = np.random.default_rng(0)
    ended = 0
    for _ in range(30):
        actions = rng.integers(0, [4, 4], size=(n, 2))
        obs, rewards, dones, infos = env.step(actions)
        results = [s.step(actions[i]) for i, s in enumerate(singles)]
        np.testing.assert_allclose(rewards, [r[1] for r in results], rtol=1e-6)
        assert isinstance(infos, list) and len(infos) == n
        for i, (o, _r, _term, trunc, info) in enumerate(results):
            assert infos[i]["e2e_ms"] == pytest.approx(info["e2e_ms"])
            assert infos[i]["k"] == info["k"] and infos[i]["bits"] == info["bits"]
            assert dones[i] == trunc
            if not trunc:
                assert "terminal_observation" not in infos[i]
                np.testing.assert_array_equal(obs[i], o)
            else:
                ended += 1
                np.testing.assert_array_equal(infos[i]["terminal_observation"], o)
                assert infos[i]["TimeLimit.truncated"] is True
                # the returned observation is the next episode's first one
                np.testing.assert_array_equal(obs[i], singles[i].obs_builder.initial())
                assert "trace" in env.reset_infos[i]
                singles[i].reset()
    assert ended >= n


def test_seed_applies_at_next_reset_and_is_reproducible():
    a, b = _adapter(2), _adapter(2)
    a.seed(3)
    b.seed(3)
    a.reset()
    b.reset()
    acts = np.zeros((2, 2), dtype=np.int64)
    for _ in range(3):
        ra = a.step(acts)
        rb = b.step(acts)
        np.testing.assert_array_equal(ra[0], rb[0])
        np.testing.assert_array_equal(ra[1], rb[1])


def test_masks_and_attributes_for_maskable_ppo():
    from sb3_contrib.common.maskable.utils import get_action_masks, is_masking_supported

    env = _adapter(3)
    env.reset()
    assert is_masking_supported(env)
    masks = get_action_masks(env)
    assert masks.shape == (3, 8) and masks.dtype == bool
    flat = _adapter(2, flat=True)
    assert get_action_masks(flat).shape == (2, 16)
    assert env.has_attr("action_table") and not env.has_attr("no_such_attribute")
    assert env.get_attr("num_envs", indices=[0, 2]) == [3, 3]
    assert env.env_is_wrapped(object) == [False, False, False]


def test_make_vec_env_monitors_episodes():
    env = make_vec_env("default", "train", 2, seed=0, env_kwargs={"overrides": {"episode_s": 1.0}})
    env.reset()
    steps, episodes = np.zeros(2, dtype=int), []
    for _ in range(20):
        _, _, dones, infos = env.step(np.zeros((2, 2), dtype=np.int64))
        steps += 1
        for i in np.flatnonzero(dones):
            assert infos[i]["episode"]["l"] == steps[i]  # VecMonitor's episode record
            episodes.append(infos[i]["episode"]["r"])
            steps[i] = 0
    assert len(episodes) >= 2


def test_zoo_hyperparameters_are_parsed_like_the_zoo():
    import torch.nn as nn

    hp = preprocess(
        {
            "n_timesteps": "1e4",
            "policy": "MlpPolicy",
            "n_envs": 4,
            "normalize": "dict(norm_obs=True, norm_reward=False)",
            "learning_rate": "lin_3e-4",
            "ent_coef": "1e-3",
            "gamma": 0.9,
            "policy_kwargs": "dict(net_arch=dict(pi=[32], vf=[32]), activation_fn=nn.ReLU)",
        },
        "ppo",
    )
    assert hp.n_timesteps == 10_000 and hp.n_envs == 4
    assert hp.normalize == {"norm_obs": True, "norm_reward": False, "gamma": 0.9}
    assert hp.model_kwargs["learning_rate"](1.0) == pytest.approx(3e-4)
    assert hp.model_kwargs["learning_rate"](0.5) == pytest.approx(1.5e-4)
    assert hp.model_kwargs["ent_coef"] == pytest.approx(1e-3)
    assert hp.model_kwargs["policy_kwargs"]["activation_fn"] is nn.ReLU
    assert parse_python_kwargs("dict(a=[1, -2], b=(1, 'x'), c=None)") == {
        "a": [1, -2],
        "b": (1, "x"),
        "c": None,
    }


@pytest.mark.parametrize(
    ("raw", "algo", "match"),
    [
        ({"n_timesteps": 10, "policy": "MlpPolicy", "n_stepz": 8}, "ppo", "n_stepz: unknown"),
        (
            {"n_timesteps": 10, "policy": "MlpPolicy", "n_steps": "many"},
            "ppo",
            "expected an integer",
        ),
        ({"n_timesteps": 10, "policy": "MlpPolicy", "learning_rate": "exp_1"}, "ppo", "lin_"),
        ({"n_timesteps": 10, "policy": "MlpPolicy"}, "dqn", "action_space: flat"),
        ({"policy": "MlpPolicy"}, "ppo", "n_timesteps: missing"),
        ({"n_timesteps": 10, "policy": "MlpPolicy", "frame_stack": 4}, "ppo", "not supported"),
        (
            {"n_timesteps": 10, "policy": "MlpPolicy", "policy_kwargs": "__import__('os')"},
            "ppo",
            "not allowed",
        ),
    ],
)
def test_bad_hyperparameters_raise_one_line_errors(raw, algo, match):
    with pytest.raises(HyperparamsError, match=match) as info:
        preprocess(raw, algo, "agents/x.yml: SlimSplit-v0")
    assert "\n" not in str(info.value)
