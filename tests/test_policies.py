"""Policies: the protocol, each heuristic's rule, the oracle, batch == single, name resolution."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import slimrl  # noqa: F401  (registers SlimSplit-v0)
from slimrl.env.vector import SlimSplitVectorEnv
from slimrl.errors import PolicyError
from slimrl.policies import (
    ModeTable,
    Oracle,
    PaperEWMA,
    RateThreshold,
    make_policy,
    policy_names,
    static_names,
    to_env_action,
)


@pytest.fixture(scope="module")
def env():
    e = gym.make("SlimSplit-v0", scenario="default", split="test", action_space="flat")
    yield e
    e.close()


@pytest.fixture(scope="module")
def table(env) -> ModeTable:
    return ModeTable.from_env(env)


def step_info(nbytes: float, transfer_ms: float, queue_ms: float = 0.0) -> dict:
    return {"bytes": nbytes, "transfer_ms": transfer_ms, "edge_queue_ms": queue_ms}


def test_mode_table_matches_env(env, table):
    w = env.unwrapped.world
    assert table.action_table == tuple(env.unwrapped.action_table)
    assert table.M == 16 and table.K == 4 and table.B == 4
    assert table.index(2, 3) == 1 * 4 + 2
    assert table.compute_ms.tolist() == [100.0] * 4 + [173.0] * 4 + [246.0] * 4 + [321.0] * 4
    assert np.array_equal(table.payload_bytes, w.payload)
    assert table.service_ms.tolist() == [56.0] * 16
    assert table.deadline_ms == 300.0 and table.delay_ms == 20.0
    a = np.array([0, 5, 15])
    assert to_env_action(a, table).tolist() == [[0, 0], [1, 1], [3, 3]]
    assert to_env_action(7, table, multidiscrete=False) == 7


def test_every_registered_policy_acts_in_the_allowed_modes(env, table):
    """Every name in the policy table builds, and over an episode picks only allowed modes."""
    names = ["static:2,3" if u.startswith("static") else u.split("[")[0] for u in policy_names()]
    assert {"static:2,3", "random", "paper-ewma", "rate-threshold", "oracle"} <= set(names)
    allowed = np.flatnonzero(table.allowed)
    for name in names:
        p = make_policy(name, env)
        assert p.name == name
        obs, info = env.reset(seed=1)
        p.reset()
        for _ in range(30):
            a = p.act(obs, info)
            assert a in allowed, (name, a)
            obs, _r, _t, _tr, info = env.step(a)


def test_static_and_single_env_loop(env):
    p = make_policy("static:2,3", env)
    obs, info = env.reset(seed=1)
    p.reset()
    for _ in range(5):
        a = p.act(obs, info)
        assert a == 6
        obs, _r, _te, tr, info = env.step(a)
        assert (info["k"], info["bits"]) == (2, 3)
    # the same policy drives a MultiDiscrete env through to_env_action
    md = gym.make("SlimSplit-v0", scenario="default", split="test")
    obs, info = md.reset(seed=1)
    _o, _r, _t, _tr, info = md.step(to_env_action(p.act(obs, info), ModeTable.from_env(md)))
    assert (info["k"], info["bits"]) == (2, 3)


def test_random_is_seeded_and_allowed_only():
    e = gym.make(
        "SlimSplit-v0",
        scenario="default",
        split="test",
        action_space="flat",
        overrides={"modes.k": [1, 3], "modes.bits": [2]},
    )
    t = ModeTable.from_env(e)
    a1 = make_policy("random", e, seed=3).act_batch(np.zeros((500, 12)), {})
    a2 = make_policy("random", e, seed=3).act_batch(np.zeros((500, 12)), {})
    assert np.array_equal(a1, a2)
    assert set(a1.tolist()) == {t.index(1, 2), t.index(3, 2)}
    assert static_names(e) == ["static:1,2", "static:3,2"]
    with pytest.raises(PolicyError, match="not allowed"):
        make_policy("static:2,2", e)


def test_paper_ewma_rule(table):
    """The published rule (tests/test_paper_ewma.py replays a longer sequence)."""
    p = PaperEWMA(table)
    obs = np.zeros(12)
    assert p.act(obs, {"trace": "x"}) == table.index(1, 1)  # the authors' first mode
    # 13824 B in 300 - 100 - 56 = 144 ms = 96 kB/s; bw = 0.4 * 96 + 0.6 * 200 = 158.4
    info = {**step_info(13824, 80.0), "e2e_ms": 300.0, "compute_ms": 100.0, "edge_ms": 56.0}
    a = p.act(obs, info)
    assert p.bw_kBps[0] == pytest.approx(158.4)
    lhs = 60 * (table.k + table.bits / 10) + table.payload_bytes / 158.4
    assert a == int(np.argmax(np.where(lhs < 240, table.accuracy, -1)))
    p.act(obs, {"trace": "x"})  # a reset info starts a new episode (estimate forgotten)
    assert not p.seen[0] and p.bw_kBps[0] == 200.0


def test_rate_threshold_rule(table):
    p = RateThreshold(table, window=2, margin=1.0)
    obs = np.zeros(12)
    assert p.act(obs, {}) == table.index(1, 1)  # probe: fastest compute, smallest payload
    p.act(obs, step_info(10_000, 10.0, queue_ms=30.0))  # 1 MB/s
    a = p.act(obs, step_info(10_000, 40.0, queue_ms=5.0))  # 250 kB/s
    # harmonic mean of 1 MB/s and 250 kB/s = 400 kB/s -> 2.5 ms per kB
    e2e, tx = p.predict_e2e_ms()
    assert tx[0, table.index(1, 4)] == pytest.approx(27648 * 2.5e-3)
    want = table.compute_ms + 27648 * 0 + 2 * 20 + 5.0 + 56 + table.payload_bytes * 2.5e-3
    assert np.allclose(e2e[0], want)
    fits = want <= 300
    energy = (
        3.7e-3 * table.compute_ms
        + 1.28804 * table.payload_bytes * 2.5e-6
        + (0.43839 * 8e-6 * table.payload_bytes)
    )
    value = table.accuracy - 0.05 * energy
    busy = np.ceil(want)  # the next frame starts on the first 1 ms slot after the answer
    assert a == int(np.argmax(np.where(fits, value / busy, -np.inf)))  # reward per second
    # a third measurement pushes the first one out of the window of 2
    p.act(obs, step_info(10_000, 40.0))
    assert p.predict_e2e_ms()[1][0, 0] == pytest.approx(6912 * 4e-3)
    # nothing fits: the smallest predicted e2e
    for _ in range(3):
        a = p.act(obs, step_info(100, 1000.0))
    assert a == table.index(1, 1)


def test_rate_threshold_per_row_parameters(table):
    p = RateThreshold(table, window=[1, 4], margin=[0.5, 1.0])
    assert p.n == 2
    infos = {k: np.array([v, v]) for k, v in step_info(20_000, 20.0).items()}
    a = p.act_batch(np.zeros((2, 12)), infos)
    assert table.action_table[a[0]] == (1, 1)  # margin 0.5: nothing fits -> fastest
    assert table.k[a[1]] >= 1 and a[0] != a[1]
    with pytest.raises(ValueError, match="per-row"):
        p.reset(3)


def test_oracle_picks_best_lookahead_reward_per_second(env):
    o = make_policy("oracle", env)
    obs, info = env.reset(seed=4)
    for _ in range(20):
        la = env.unwrapped.lookahead()
        a = o.act(obs, info)
        assert a == int(np.argmax((la["reward"] / la["busy_ms"]).ravel()))
        obs, r, _t, _tr, info = env.step(a)
        assert r == pytest.approx(la["reward"].ravel()[a])  # table accuracy: exact


@pytest.mark.parametrize("name", ["paper-ewma", "rate-threshold", "oracle", "static:3,2"])
def test_batch_equals_single(name):
    """The batched form over the vector env decides exactly like N single envs."""
    n, steps = 3, 120
    kw = {"scenario": "default", "split": "train", "action_space": "flat"}
    venv = SlimSplitVectorEnv(n, **kw)
    batch = make_policy(name, venv)
    obs, infos = venv.reset(seed=10)
    batch.reset(n)
    batch_actions = []
    for _ in range(steps):
        if isinstance(batch, Oracle):
            infos = {**infos, "lookahead": venv.lookahead()}
        a = batch.act_batch(obs, infos)
        batch_actions.append(a)
        obs, _r, _t, _tr, infos = venv.step(a)
    for i in range(n):
        e = gym.make("SlimSplit-v0", **kw)
        single = make_policy(name, e)
        obs, info = e.reset(seed=10 + i)
        single.reset()
        for s in range(steps):
            a = single.act(obs, info)
            assert a == batch_actions[s][i], (name, i, s)
            obs, _r, _t, tr, info = e.step(a)
            if tr:
                obs, info = e.reset()


def test_unknown_names_raise_policy_error(env, tmp_path):
    for bad in ["nope", "static:9,9", "static:x", "rate-threshold:window=0", str(tmp_path)]:
        with pytest.raises(PolicyError):
            make_policy(bad, env)
    p = make_policy("rate-threshold:window=3,margin=0.7", env)
    assert int(p.window) == 3 and float(p.margin) == 0.7


def test_parameterised_policies_keep_their_parameters_in_the_name():
    from slimrl.evaluate.api import rollout_policies

    asked = ["mpc", "mpc:window=2,margin=1.6", "rate-threshold:window=2,margin=1.0"]
    ev = rollout_policies("fmnist-iot", "val", asked, episodes=1, progress=False,
                          keep_steps=False, overrides={"episode_s": 8})  # fmt: skip
    assert list(ev.episodes.policy.unique()[:3]) == asked
