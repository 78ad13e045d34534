"""SlimSplitEnv: API checks, determinism, hand-computed frames, outages, lookahead, masks."""

from __future__ import annotations

import copy
import math
import subprocess
import sys
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

import slimrl  # noqa: F401  (registers SlimSplit-v0)
from slimrl.env.observation import ObservationBuilder
from slimrl.env.slimsplit import INFO_KEYS, LOOKAHEAD_KEYS, SlimSplitEnv
from slimrl.errors import ScenarioError
from slimrl.paths import ENVS_DIR

PROFILE = ENVS_DIR / "profiles" / "models" / "assine2023-effdet-d2.csv"
MBPS8 = 1e6  # 8 Mbit/s in bytes/s


def write_world(tmp_path: Path, **scenario) -> Path:
    """A synthetic scenario: constant 8 Mbit/s trace and one with an outage, no jitter, no load."""
    tdir = tmp_path / "traces"
    tdir.mkdir(exist_ok=True)
    (tdir / "const.csv").write_text("time_s,mbps\n0,8\n100,\n")
    (tdir / "outage.csv").write_text("time_s,mbps\n0,8\n1,0\n3,8\n10,\n")
    dev = {
        "compute": {
            "mean_ms": {1: 100.0, 2: 173.0, 3: 246.0, 4: 321.0},
            "jitter_ms": 0.0,
            "power_w": 3.7,
        },
        "radio": {"base_w": 1.28804, "alpha_w_per_mbps": 0.43839},
    }
    (tmp_path / "dev.yaml").write_text(yaml.safe_dump(dev))
    sc = {
        "name": "synthetic",
        "traces": {"path": "traces", "pattern": "*.csv"},
        "model": {"profile": str(PROFILE)},
        "device": {"profile": "dev.yaml"},
        "edge": {"service": {"median_ms": 56, "p90_ms": 56}, "load": None},
        "link": {"base_delay_ms": 20},
        "deadline_ms": 300,
        "reward": {"accuracy": 1.0, "miss_penalty": 0.5, "energy": 0.05},
        "episode_s": 6,
    }
    for key, value in scenario.items():
        sc[key] = value
    path = tmp_path / "synthetic.yaml"
    path.write_text(yaml.safe_dump(sc))
    return path


@pytest.fixture
def synth(tmp_path):
    return write_world(tmp_path)


def test_make_registered_with_overrides():
    env = gym.make("SlimSplit-v0", scenario="default", overrides={"deadline_ms": 600})
    assert isinstance(env.unwrapped, SlimSplitEnv)
    assert env.unwrapped.scenario.deadline_ms == 600
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    assert obs.tolist() == env.unwrapped.obs_builder.initial().tolist()
    assert env.unwrapped.obs_builder.deadline_ms == 600
    env2 = gym.make("SlimSplit-v0", overrides=slimrl.env.parse_set_args(["reward.energy=0.2"]))
    assert env2.unwrapped.scenario.reward.energy == 0.2


@pytest.mark.parametrize("space", ["multidiscrete", "flat"])
def test_gymnasium_check_env(space, synth):
    from gymnasium.utils.env_checker import check_env

    env = SlimSplitEnv(synth, split=None, action_space=space)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env, skip_render_check=True)


@pytest.mark.parametrize("space", ["multidiscrete", "flat"])
def test_sb3_check_env(space):
    from stable_baselines3.common.env_checker import check_env

    env = SlimSplitEnv("default", action_space=space)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env, warn=True)


def test_spaces_and_action_table():
    env = SlimSplitEnv("default")
    assert env.action_space == gym.spaces.MultiDiscrete([4, 4])
    flat = SlimSplitEnv("default", action_space="flat")
    assert flat.action_space == gym.spaces.Discrete(16)
    assert flat.action_table[6] == (2, 3)  # k-major: a = ki * B + bi
    assert env.observation_space.shape == (len(env.obs_builder.names),)
    assert np.all(np.isfinite(env.observation_space.high))


def rollout(env, actions, seed, options=None):
    obs, _ = env.reset(seed=seed, options=options)
    out = [obs]
    for a in actions:
        obs, r, term, trunc, info = env.step(a)
        out.append((obs, r, {k: v for k, v in info.items() if k != "action_mask"}))
        if trunc:
            out.append(env.reset()[0])
    return out


def test_same_seed_same_trajectory():
    rng = np.random.default_rng(0)
    acts = rng.integers(0, 4, (60, 2))
    a = rollout(SlimSplitEnv("default", overrides={"episode_s": 8}), acts, seed=3)
    b = rollout(SlimSplitEnv("default", overrides={"episode_s": 8}), acts, seed=3)
    c = rollout(SlimSplitEnv("default", overrides={"episode_s": 8}), acts, seed=4)
    assert repr(a) == repr(b)
    assert repr(a) != repr(c)


def test_hand_computed_frames(synth):
    env = SlimSplitEnv(synth, split=None)
    obs, info = env.reset(seed=0, options={"trace_index": 0, "start_s": 0.0})
    assert info["trace"] == "const.csv" and info["t_s"] == 0.0
    # k=1, bits=2: 100 ms compute, 13824 B at 1e6 B/s, 2 x 20 ms delay, 56 ms decoder
    obs, r, term, trunc, info = env.step(np.array([0, 1]))
    tx_s = 13824 / MBPS8
    e2e = 100 + tx_s * 1000 + 40 + 56
    energy = 3.7 * 0.1 + 1.28804 * tx_s + 0.43839 * 13824 * 8 / 1e6
    assert info["k"] == 1 and info["bits"] == 2 and info["bytes"] == 13824
    assert info["e2e_ms"] == pytest.approx(e2e)
    assert info["transfer_ms"] == pytest.approx(tx_s * 1000)
    assert info["edge_ms"] == pytest.approx(56) and info["edge_queue_ms"] == 0.0
    assert info["energy_j"] == pytest.approx(energy)
    assert info["bandwidth_mbps"] == pytest.approx(8.0)
    assert info["on_time"] is True and info["accuracy"] == 0.277
    assert r == pytest.approx(0.277 - 0.05 * energy)
    assert info["reward_accuracy"] + info["reward_miss"] + info["reward_energy"] == pytest.approx(r)
    assert not term and not trunc
    H = env.scenario.observation.history
    names = env.obs_builder.names
    o = dict(zip(names, obs.tolist(), strict=True))
    # predicted transfer of each payload size over the deadline, squashed: a / (D + a)
    for bits in (1, 2, 3, 4):
        a = 6912 * bits / 1e6 * 1000
        assert o[f"fit_{6912 * bits}"] == pytest.approx(a / (300 + a), rel=1e-6)
    assert [o[f"trend_{i}"] for i in range(H)] == [0.5] * H  # one transfer: as fast as the mean
    assert o["network"] == pytest.approx(40 / 340, rel=1e-6)  # the two 20 ms base delays
    assert o["e2e"] == pytest.approx(e2e / (300 + e2e), rel=1e-6)
    assert [o["queue"], o["on_time"], o["k_frac"], o["bits_frac"], o["filled"]] == pytest.approx(
        [0.0, 1.0, 0.25, 0.5, 1 / H]
    )
    assert info["busy_ms"] == math.ceil(e2e) and info["missed"] == 0
    # the next frame starts on the first 1 ms slot after the answer; k=4 misses 300 ms and
    # costs the miss penalty per deadline interval it blocked the device (e2e / deadline)
    obs, r, _, _, info = env.step(np.array([3, 3]))
    assert info["t_s"] == pytest.approx(math.ceil(e2e) / 1000)
    e2e2 = 321 + 27648 / MBPS8 * 1000 + 40 + 56
    energy2 = 3.7 * 0.321 + 1.28804 * 27648 / MBPS8 + 0.43839 * 27648 * 8 / 1e6
    assert info["e2e_ms"] == pytest.approx(e2e2)
    assert info["on_time"] is False and info["reward_accuracy"] == 0.0
    assert info["missed"] == pytest.approx(e2e2 / 300)
    assert r == pytest.approx(-0.5 * e2e2 / 300 - 0.05 * energy2)
    assert dict(zip(names, obs.tolist(), strict=True))["on_time"] == 0.0


def test_outage_stalls_transfer(synth):
    env = SlimSplitEnv(synth, split=None)
    env.reset(seed=0, options={"trace_index": 1, "start_s": 0.95})
    _, r, _, _, info = env.step(np.array([0, 0]))  # send starts at 1.05 s, inside the outage
    assert info["bandwidth_mbps"] == 0.0
    assert info["transfer_ms"] == pytest.approx((3.0 - 1.05 + 6912 / MBPS8) * 1000)
    assert info["on_time"] is False
    # the radio draws its base power during the stall
    assert info["energy_j"] == pytest.approx(
        0.37 + 1.28804 * info["transfer_ms"] / 1000 + 0.43839 * 6912 * 8e-6
    )


def test_periodic_arrivals_drop_frames(tmp_path):
    path = write_world(tmp_path, arrival={"mode": "periodic", "fps": 4})
    env = SlimSplitEnv(path, split=None)
    env.reset(seed=0, options={"trace_index": 0, "start_s": 0.0})
    _, _, _, _, info = env.step(np.array([0, 0]))  # e2e 202.9 ms < 250 ms period
    assert info["dropped"] == 0
    _, r, _, _, info = env.step(np.array([3, 3]))  # e2e 444.6 ms: one arrival dropped
    assert info["t_s"] == pytest.approx(0.25)
    assert info["dropped"] == 1 and info["missed"] == 2  # the late frame and the dropped one
    assert info["busy_ms"] == 500.0 and info["reward_miss"] == -1.0
    _, _, _, _, info = env.step(np.array([0, 0]))
    assert info["t_s"] == pytest.approx(0.75)


def test_info_keys_and_masks_clamp(synth):
    env = SlimSplitEnv(synth, split=None, overrides={"modes": {"k": [1, 2], "bits": [2, 3]}})
    obs, info = env.reset(seed=1)
    assert env.action_masks().tolist() == [True, True, False, False, False, True, True, False]
    assert info["action_mask"].tolist() == env.action_masks().tolist()
    _, _, _, _, info = env.step(np.array([3, 0]))
    assert set(INFO_KEYS) <= set(info)
    assert (info["k"], info["bits"]) == (2, 2)
    _, _, _, _, info = env.step(np.array([0, 3]))
    assert (info["k"], info["bits"]) == (1, 3)
    flat = SlimSplitEnv(synth, split=None, action_space="flat", overrides={"modes.k": [2]})
    flat.reset(seed=0)
    assert flat.action_masks().reshape(4, 4).any(axis=1).tolist() == [False, True, False, False]
    _, _, _, _, info = flat.step(15)
    assert (info["k"], info["bits"]) == (2, 4)


def test_lookahead_matches_stepping():
    env = SlimSplitEnv("edge-heavy", overrides={"episode_s": 20})
    env.reset(seed=5)
    rng = np.random.default_rng(0)
    for _ in range(8):
        env.step(rng.integers(0, 4, 2))
    state = repr(env.np_random.bit_generator.state)
    la = env.lookahead()
    assert repr(env.np_random.bit_generator.state) == state  # no randomness consumed
    assert set(LOOKAHEAD_KEYS) <= set(la)
    for ki in range(4):
        for bi in range(4):
            probe = copy.deepcopy(env)
            _, r, _, _, info = probe.step(np.array([ki, bi]))
            for key in ("e2e_ms", "compute_ms", "transfer_ms", "edge_ms", "energy_j", "on_time"):
                assert la[key][ki, bi] == info[key], key
            assert la["reward"][ki, bi] == pytest.approx(r)


def test_full_trace_replay(synth):
    env = SlimSplitEnv(synth, split=None)
    frames = {}
    for mode in ([0, 0], [1, 3]):
        env.reset(seed=0, options={"trace_index": 1, "start_s": 2.0, "full_trace": True})
        n, trunc, starts = 0, False, []
        while not trunc:
            _, _, term, trunc, info = env.step(np.array(mode))
            assert not term
            n += 1
            starts.append(info["t_s"])
        frames[tuple(mode)] = (n, starts[0], starts[-1])
        assert info["t_s"] < 10.0 <= env.sim_time_s
    assert frames[(0, 0)][1] == frames[(1, 3)][1] == 2.0
    assert frames[(0, 0)][0] > frames[(1, 3)][0] > 20  # the episode length does not apply


def test_per_sample_accuracy(tmp_path):
    mdir = tmp_path / "model"
    mdir.mkdir()
    csv = mdir / "m.csv"
    csv.write_text(PROFILE.read_text())
    rng = np.random.default_rng(0)
    ks, bits = np.repeat(np.arange(1, 5), 4), np.tile(np.arange(1, 5), 4)
    correct = (rng.random((16, 200)) < 0.3).astype(np.uint8)
    np.savez(mdir / "m.samples.npz", k=ks, bits=bits, correct=correct)
    path = write_world(tmp_path, model={"profile": str(csv)})
    env = SlimSplitEnv(path, split=None)
    env.reset(seed=0)
    accs = [env.step(np.array([0, 1]))[4]["accuracy"] for _ in range(15)]
    assert set(accs) <= {0.0, 1.0} and 0 < sum(accs) < 15
    assert env.lookahead()["accuracy"][0, 1] == 0.277  # expected accuracy = table value
    off = SlimSplitEnv(write_world(tmp_path, model={"profile": str(csv), "per_sample": False}))
    off.reset(seed=0)
    assert off.step(np.array([0, 1]))[4]["accuracy"] == 0.277


def test_observation_builder_one_and_batch():
    ob = ObservationBuilder(3, 4, 4, 300.0, payload_bytes=[1000, 4000, 1000])
    assert ob.names[:2] == ("fit_1000", "fit_4000") and ob.dim == 2 + 3 + 7
    # inverse goodputs (ms per byte) newest first, two of three valid
    args = ([0.05, 0.15, 9.0], 2, 120.0, 100.0, 60.0, 5.0, 300.0, True, 2, 3)
    one = ob.build_one(*args)
    mean = 0.1
    want = [
        100 / 400, 400 / 700,  # payload * mean / (D + payload * mean)
        mean / (mean + 0.05), mean / (mean + 0.15), 0.5,  # trend; the third is not valid yet
        5 / 305, 20 / 320, 300 / 600,  # queue, network (300 - 100 - 120 - 60), e2e
        1.0, 0.5, 0.75, 2 / 3,
    ]  # fmt: skip
    assert one.dtype == np.float32 and one.tolist() == pytest.approx(want, rel=1e-6)
    batch = ob.build(
        *(
            np.array([a, b])
            for a, b in zip(
                args, ([1.0, 2.0, 3.0], 5, 10.0, 10.0, 10.0, 0.0, 10.0, False, 1, 1), strict=True
            )
        )
    )
    assert batch.shape == (2, ob.dim) and np.array_equal(batch[0], one)
    assert ob.space.contains(batch[1]) and ob.space.contains(ob.initial())
    # scale-free: a link 100 times faster moves the fits towards 0, never out of [0, 1]
    fast = ob.build_one([x / 100 for x in args[0]], *args[1:])
    assert (fast[:2] < one[:2]).all() and (fast[:2] > 0).all()
    assert ObservationBuilder.from_spec(ob.spec()).names == ob.names


def test_bad_reset_options(synth):
    env = SlimSplitEnv(synth, split=None)
    with pytest.raises(ValueError, match="trace_index"):
        env.reset(options={"trace_index": 5})
    with pytest.raises(ValueError, match="start_s"):
        env.reset(options={"trace_index": 0, "start_s": 1000.0})
    with pytest.raises(ValueError, match="unknown"):
        env.reset(options={"bogus": 1})


def test_import_is_cheap():
    code = (
        "import sys, slimrl, gymnasium; "
        "assert 'SlimSplit-v0' in gymnasium.registry; "
        "bad = [m for m in ('torch', 'stable_baselines3', 'slimrl.env.slimsplit') "
        "if m in sys.modules]; assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_trace_dir_and_split(synth, tmp_path):
    # the default scenario's "*.up" matches nothing here, so every trace file is used
    env = SlimSplitEnv("default", trace_dir=tmp_path / "traces", split=None)
    assert env.world.trace_names == ["const.csv", "outage.csv"]
    one = SlimSplitEnv("default", trace_dir=tmp_path / "traces" / "const.csv")
    assert one.world.trace_names == ["const.csv"]
    names = {
        s: set(SlimSplitEnv("default", split=s).world.trace_names)
        for s in ("train", "val", "test", "holdout")
    }
    assert not names["train"] & names["test"] and not names["train"] & names["val"]
    # the held-out dataset joins the test split only
    assert names["holdout"] <= names["test"] and all(
        n.startswith("puffer/") for n in names["holdout"]
    )
    assert not any(n.startswith("puffer/") for n in names["train"] | names["val"])
    with pytest.raises(ScenarioError, match="split 'test:nope'"):
        SlimSplitEnv("default", split="test:nope")


def test_edge_service_from_model_column(tmp_path):
    rows = ["k,bits,accuracy,payload_bytes,edge_ms_gpu"]
    rows += [f"{k},{b},0.{k}{b},{1000 * b},{10 * k + b}" for k in (1, 2) for b in (1, 2)]
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    path = write_world(
        tmp_path,
        model={"profile": str(tmp_path / "m.csv")},
        edge={"service": {"from_model": "edge_ms_gpu"}, "load": None},
    )
    env = SlimSplitEnv(path, split=None)
    env.reset(seed=0, options={"trace_index": 0})
    for action, edge_ms in (([0, 0], 11.0), ([1, 1], 22.0), ([1, 0], 21.0)):
        info = env.step(np.array(action))[4]
        assert info["edge_ms"] == edge_ms and info["edge_queue_ms"] == 0.0


def test_common_random_numbers_follow_time_not_frame_count(tmp_path):
    """Two policies that start a frame at the same instant of an episode see the same draws,
    whatever the number of frames each has played before."""
    path = write_world(tmp_path, arrival={"mode": "periodic", "fps": 4})
    data = yaml.safe_load(path.read_text())
    (tmp_path / "dev.yaml").write_text(
        yaml.safe_dump(
            {
                "compute": {"mean_ms": {1: 100.0, 2: 173.0, 3: 246.0, 4: 321.0}, "jitter_ms": 5.0,
                            "power_w": 3.7},
                "radio": {"base_w": 1.28804, "alpha_w_per_mbps": 0.43839},
            }
        )
    )  # fmt: skip
    data["edge"]["service"] = {"median_ms": 56, "p90_ms": 75}
    path.write_text(yaml.safe_dump(data))
    draws = []
    # k=1 answers within a tick; k=4 takes two ticks (one dropped), so it plays half the frames
    for action in ([0, 0], [3, 0]):
        env = SlimSplitEnv(path, split=None)
        env.reset(seed=7, options={"trace_index": 0, "start_s": 0.0})
        seen, tr = {}, False
        while not tr:
            _, _, _, tr, info = env.step(np.array(action))
            jitter = info["compute_ms"] - (100.0 if action[0] == 0 else 321.0)
            seen[round(info["t_s"] * 1000)] = (jitter, info["edge_ms"])
        draws.append(seen)
    common = sorted(set(draws[0]) & set(draws[1]))
    assert len(common) >= 10 and len(draws[1]) < 0.6 * len(draws[0])
    for t in common:
        assert draws[0][t][0] == pytest.approx(draws[1][t][0], abs=1e-9)  # same jitter
        assert draws[0][t][1] == draws[1][t][1]  # the same service time
    assert len({round(v[0], 9) for v in draws[0].values()}) > 5  # and the jitter varies


@settings(max_examples=200, deadline=None)
@given(
    short=st.lists(st.floats(min_value=300.5, max_value=3000.0), min_size=2, max_size=6),
    deadline=st.floats(min_value=50.0, max_value=300.0),
)
def test_one_long_miss_is_never_cheaper_than_several_short_ones(short, deadline):
    """The required property of the objective: replacing several short misses by one long miss of
    the same total time never raises the return."""
    from slimrl.env.frame import CostModel

    cost = CostModel(3.7, 1.3, 0.4, deadline, 1.0, 0.5, 0.0)
    short = [max(s, deadline * 1.0001) for s in short]
    many = sum(cost.terms(False, 0.3, s, 100.0, 0.1, 0.01)[-1] for s in short)
    one = cost.terms(False, 0.3, sum(short), 100.0, 0.1, 0.01)[-1]
    assert one <= many + 1e-9


def test_cost_model_scalar_and_array_forms_agree():
    from slimrl.env.frame import CostModel

    rng = np.random.default_rng(0)
    e2e = rng.uniform(10, 2000, 500)
    on = e2e <= 300.0
    acc, c, tx, rb = rng.random(500), rng.uniform(0, 300, 500), rng.random(500), rng.random(500)
    for periodic, unit in ((False, 1.0), (True, 250.0)):
        cost = CostModel(3.7, 1.3, 0.4, 300.0, 1.0, 0.5, 0.05, periodic, unit)
        arr = cost.terms_array(on, acc, e2e, c, tx, rb)
        for i in range(500):
            one = cost.terms(bool(on[i]), acc[i], e2e[i], c[i], tx[i], rb[i])
            assert one == tuple(np.asarray(a)[i] for a in arr)


def test_rate_baseline_charges_each_frame_its_busy_time():
    from slimrl.env.vector import SlimSplitVectorEnv

    over = {"episode_s": 4}
    plain = SlimSplitVectorEnv(3, "fmnist-iot", overrides=over, action_space="flat")
    shaped = SlimSplitVectorEnv(3, "fmnist-iot", overrides=over, action_space="flat",
                                rate_baseline="best-static")  # fmt: skip
    rate = shaped.rate_baseline
    assert rate > 0 and SlimSplitEnv("fmnist-iot", overrides=over).rate_baseline == 0.0
    single = SlimSplitEnv("fmnist-iot", overrides=over, action_space="flat", rate_baseline=rate)
    plain.reset(seed=5), shaped.reset(seed=5), single.reset(seed=5)
    for a in (0, 3, 7, 15, 1):
        actions = np.full(3, a)
        _, r0, _, _, i0 = plain.step(actions)
        _, r1, _, _, i1 = shaped.step(actions)
        _, r2, _, _, i2 = single.step(a)
        np.testing.assert_allclose(r1, r0 - rate * i0["busy_ms"] / 1000.0)
        assert r2 == pytest.approx(float(r1[0]))
        np.testing.assert_array_equal(i1["reward_accuracy"], i0["reward_accuracy"])  # true terms
    # computed once per scenario, split and randomisation, then cached
    again = SlimSplitEnv("fmnist-iot", overrides=over, rate_baseline="best-static")
    assert again.rate_baseline == rate
    with pytest.raises(ValueError, match="rate_baseline"):
        SlimSplitEnv("fmnist-iot", rate_baseline="oracle")


def test_a_negative_best_static_rate_gives_no_baseline():
    env = SlimSplitEnv("default", rate_baseline="best-static")  # its static modes lose reward
    assert env.rate_baseline == 0.0
