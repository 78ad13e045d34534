"""SlimSplitVectorEnv: registration, single/vector agreement step for step, masks, lookahead."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import yaml

import slimrl  # noqa: F401  (registers SlimSplit-v0)
from slimrl.env.slimsplit import SlimSplitEnv
from slimrl.env.vector import SlimSplitVectorEnv
from slimrl.paths import ENVS_DIR

PROFILE = ENVS_DIR / "profiles" / "models" / "assine2023-effdet-d2.csv"


def test_make_vec_vector_entry_point():
    envs = gym.make_vec(
        "SlimSplit-v0",
        num_envs=3,
        vectorization_mode="vector_entry_point",
        scenario="default",
        overrides={"deadline_ms": 600},
    )
    assert isinstance(envs, SlimSplitVectorEnv)
    assert envs.scenario.deadline_ms == 600
    obs, info = envs.reset(seed=0)
    assert obs.shape == (3, *envs.single_observation_space.shape)
    assert envs.observation_space.contains(obs)
    assert envs.action_masks().shape == (3, 8)
    obs, rew, term, trunc, info = envs.step(envs.action_space.sample())
    assert rew.shape == (3,) and info["e2e_ms"].shape == (3,) and info["_e2e_ms"].all()
    assert envs.metadata["autoreset_mode"] == gym.vector.AutoresetMode.SAME_STEP


def _scenario(tmp_path, **extra):
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "a.csv").write_text("time_s,mbps\n0,4\n2,0\n2.5,1\n6,12\n9,\n")
    (tmp_path / "t" / "b.csv").write_text("time_s,mbps\n0,0.5\n3,6\n7,\n")
    rng = np.random.default_rng(0)
    model = tmp_path / "m.csv"
    model.write_text(PROFILE.read_text())
    np.savez(
        tmp_path / "m.samples.npz",
        k=np.repeat(np.arange(1, 5), 4),
        bits=np.tile(np.arange(1, 5), 4),
        correct=(rng.random((16, 50)) < 0.4).astype(np.uint8),
    )
    sc = {
        "traces": {"path": "t"},
        "model": {"profile": "m.csv"},
        "device": {"profile": str(ENVS_DIR / "profiles" / "devices" / "rpi4.yaml")},
        "edge": {
            "service": {"median_ms": 56, "p90_ms": 75},
            "load": {
                "states": {
                    "lo": {"rate_per_s": 4, "dwell_s": 5},
                    "hi": {"rate_per_s": 15, "dwell_s": 5},
                },
                "realisations": 3,
                "duration_s": 30,
            },
        },
        "link": {"base_delay_ms": 15},
        "deadline_ms": 400,
        "episode_s": 2.5,
        "modes": {"k": [1, 2, 3], "bits": [1, 2, 4]},
        **extra,
    }
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(sc))
    return path


def _same(a, b):
    if isinstance(a, np.ndarray):
        return np.array_equal(a, b)
    return a == b


@pytest.mark.parametrize(
    "space,extra,options",
    [
        ("multidiscrete", {}, None),
        ("flat", {"arrival": {"mode": "periodic", "fps": 3}}, None),
        ("multidiscrete", {}, {"trace_index": [0, 1, 0], "start_s": 1.5, "full_trace": True}),
    ],
)
def test_vector_agrees_with_single_envs(tmp_path, space, extra, options):
    path = _scenario(tmp_path, **extra)
    N = 3
    venv = SlimSplitVectorEnv(N, path, split=None, action_space=space)
    envs = [SlimSplitEnv(path, split=None, action_space=space) for _ in range(N)]
    vobs, vinfo = venv.reset(seed=11, options=options)
    for i, env in enumerate(envs):
        opts = (
            None
            if options is None
            else {k: (v[i] if isinstance(v, list) else v) for k, v in options.items()}
        )
        obs, info = env.reset(seed=11 + i, options=opts)
        assert np.array_equal(obs, vobs[i])
        assert info["trace"] == vinfo["trace"][i] and info["t_s"] == vinfo["t_s"][i]
    rng = np.random.default_rng(2)
    dones = 0
    for _ in range(40):
        actions = rng.integers(0, 16, N) if space == "flat" else rng.integers(0, 4, (N, 2))
        vobs, vrew, vterm, vtrunc, vinfo = venv.step(actions)
        for i, env in enumerate(envs):
            obs, rew, term, trunc, info = env.step(actions[i])
            assert rew == vrew[i] and term == vterm[i] and trunc == vtrunc[i]
            if trunc:
                dones += 1
                assert np.array_equal(obs, vinfo["final_obs"][i])
                fin = vinfo["final_info"]
                assert fin["_e2e_ms"][i]
                for key, value in info.items():
                    assert _same(value, fin[key][i]), key
                obs, info = env.reset()
                assert np.array_equal(obs, vobs[i])
                assert info["trace"] == vinfo["trace"][i] and info["t_s"] == vinfo["t_s"][i]
                assert not vinfo["_e2e_ms"][i]
            else:
                assert np.array_equal(obs, vobs[i])
                for key, value in info.items():
                    assert _same(value, vinfo[key][i]), key
                assert vinfo["_e2e_ms"][i]
    assert dones > 0


def test_vector_lookahead_and_masks(tmp_path):
    path = _scenario(tmp_path)
    venv = SlimSplitVectorEnv(2, path, split=None)
    envs = [SlimSplitEnv(path, split=None) for _ in range(2)]
    venv.reset(seed=4)
    for i, env in enumerate(envs):
        env.reset(seed=4 + i)
    for _ in range(3):
        a = np.array([[1, 2], [0, 3]])
        venv.step(a)
        for i, env in enumerate(envs):
            env.step(a[i])
    vla = venv.lookahead()
    for i, env in enumerate(envs):
        la = env.lookahead()
        for key, value in la.items():
            assert vla[key].shape == (2, 4, 4)
            assert np.array_equal(value, vla[key][i]), key
    assert venv.action_masks().tolist() == [[True, True, True, False, True, True, False, True]] * 2
    # forbidden k=4 is clamped to k=3, bits=3 to bits=2 (ties: the smaller)
    _, _, _, _, info = venv.step(np.array([[3, 2], [0, 0]]))
    assert info["k"].tolist() == [3, 1] and info["bits"].tolist() == [2, 1]
    assert vla["k"][0, 3, 2] == 3 and vla["bits"][0, 3, 2] == 2


def test_piece_index_matches_bisect(tmp_path):
    from bisect import bisect_right

    from slimrl.env.dynamics import PieceIndex
    from slimrl.traces import Trace

    rng = np.random.default_rng(0)
    traces = [
        Trace(np.r_[0.0, np.cumsum(rng.uniform(0.01, 1.0, 300))], rng.uniform(0, 5e5, 301)),
        Trace([0.0, 0.5, 0.7, 3.0], [1e5, 0.0, 2e5, 5e4], 4.0),
    ]
    index = PieceIndex(traces)
    ti = rng.integers(0, 2, 5000)
    dur = np.array([tr.duration for tr in traces])[ti]
    tm = rng.random(5000) * dur
    tm[:50] = traces[1].knots[rng.integers(0, 4, 50)]  # exactly on piece starts
    ti[:50] = 1
    got = index.capacity_mbps(ti, tm)
    for i in range(5000):
        tr = traces[ti[i]]
        want = tr.capacity[bisect_right(tr.knots.tolist(), tm[i]) - 1] / 125000.0
        assert got[i] == want


def test_domain_randomisation_train_only_and_vector_agrees(tmp_path):
    extra = {
        "randomize": {"capacity_scale": [0.5, 2.0], "base_delay_ms": [5, 30],
                      "compute_jitter": [0.5, 2.0], "edge_load": [0.5, 1.5]},
    }  # fmt: skip
    path = _scenario(tmp_path, **extra)
    train = SlimSplitEnv(path, split=None, randomize=True)
    fixed = SlimSplitEnv(path, split=None)  # not the train split: the scenario's own values
    assert train.randomize and not fixed.randomize
    seen = []
    for seed in range(8):
        train.reset(seed=seed)
        st = train.episode_state()
        assert 0.5 <= st["scale"] <= 2.0 and 5 <= st["delay_ms"] <= 30
        seen.append((st["scale"], st["delay_ms"], st["jitter"], st["real"] >= train.world.n_real))
        fixed.reset(seed=seed)
        sf = fixed.episode_state()
        assert (sf["scale"], sf["delay_ms"], sf["jitter"]) == (1.0, 15.0, 1.0)
        assert sf["real"] < fixed.world.n_real
    assert len({s[0] for s in seen}) == 8 and {s[3] for s in seen} == {True, False}
    # a faster link (scale 2) moves the same payload twice as fast from the same instant
    ep = train.world.draw_episode(np.random.default_rng(0))
    slow = train.world.episode_frame(ep._replace(scale=1.0))(3, 0)
    fast = train.world.episode_frame(ep._replace(scale=2.0))(3, 0)
    assert fast[4] < slow[4] and fast[9] == pytest.approx(2 * slow[9])  # transfer, bandwidth
    # the vector env draws the same randomised episodes as single envs
    N = 3
    venv = SlimSplitVectorEnv(N, path, split=None, randomize=True, action_space="flat")
    envs = [SlimSplitEnv(path, split=None, randomize=True, action_space="flat") for _ in range(N)]
    vobs, _ = venv.reset(seed=4)
    for i, e in enumerate(envs):
        obs, _ = e.reset(seed=4 + i)
        assert np.array_equal(obs, vobs[i])
    rng = np.random.default_rng(1)
    for _ in range(60):
        a = rng.integers(0, 9, N)
        vobs, vrew, _, vtr, _ = venv.step(a)
        for i, e in enumerate(envs):
            obs, rew, _, tr, _ = e.step(int(a[i]))
            assert rew == vrew[i] and tr == vtr[i]
            if tr:
                obs, _ = e.reset()
            assert np.array_equal(obs, vobs[i])
