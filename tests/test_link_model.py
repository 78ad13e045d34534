"""Per-transfer link latency and measured distributions (compute, service, latency samples)."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from slimrl.env.crn import LINK_SALT, LOW, mix
from slimrl.env.dynamics import Episode, World
from slimrl.env.frame import INDEX
from slimrl.env.slimsplit import SlimSplitEnv
from slimrl.env.vector import SlimSplitVectorEnv
from slimrl.errors import ScenarioError
from slimrl.paths import ENVS_DIR
from slimrl.scenario import load_scenario, scenario_digest
from slimrl.traces import TraceSet, load_trace

PROFILE = ENVS_DIR / "profiles" / "models" / "assine2023-effdet-d2.csv"
DEVICE = ENVS_DIR / "profiles" / "devices" / "rpi4.yaml"


def _write_samples(tmp_path):
    """Bimodal per-mode compute and service samples, pooled latency samples, one file."""
    rng = np.random.default_rng(3)
    rows = ["k,bits,compute_ms,service_ms,answer_ms"]
    for k in range(1, 5):
        for b in range(1, 5):
            for _ in range(7):
                c = 80 * k + rng.choice([0.0, 30.0]) + rng.normal(0, 2)
                s = rng.choice([40.0, 90.0]) + rng.normal(0, 1)
                rows.append(f"{k},{b},{c:.3f},{s:.3f},")
    for _ in range(9):
        rows.append(f",,,,{rng.uniform(3, 25):.3f}")
    path = tmp_path / "meas.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def _scenario(tmp_path, **extra):
    (tmp_path / "t").mkdir(exist_ok=True)
    (tmp_path / "t" / "a.csv").write_text("time_s,mbps\n0,1.5\n2,0\n2.5,0.6\n6,2\n9,\n")
    (tmp_path / "t" / "b.csv").write_text("time_s,mbps\n0,0.4\n3,1.2\n7,\n")
    _write_samples(tmp_path)
    sc = {
        "traces": {"path": "t"},
        "model": {"profile": str(PROFILE)},
        "device": {
            "profile": str(DEVICE),
            "compute_samples": {"path": "meas.csv", "column": "compute_ms"},
        },
        "edge": {"service": {"samples": {"path": "meas.csv", "column": "service_ms"}}},
        "link": {
            "base_delay_ms": 5,
            "latency": {"median_ms": 8, "p90_ms": 14},
            "answer_latency": {"samples": {"path": "meas.csv", "column": "answer_ms"}},
        },
        "deadline_ms": 400,
        "episode_s": 2.5,
        **extra,
    }
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(sc))
    return path


def _same(a, b):
    if isinstance(a, np.ndarray):
        return np.array_equal(a, b)
    return a == b


@pytest.mark.parametrize("extra", [{}, {"arrival": {"mode": "periodic", "fps": 3}}])
def test_vector_agrees_with_single_envs(tmp_path, extra):
    path = _scenario(tmp_path, **extra)
    N = 3
    venv = SlimSplitVectorEnv(N, path, split=None, action_space="flat")
    envs = [SlimSplitEnv(path, split=None, action_space="flat") for _ in range(N)]
    vobs, _ = venv.reset(seed=5)
    for i, env in enumerate(envs):
        obs, _ = env.reset(seed=5 + i)
        assert np.array_equal(obs, vobs[i])
    rng = np.random.default_rng(1)
    for _ in range(30):
        actions = rng.integers(0, 16, N)
        vobs, vrew, _, vtrunc, vinfo = venv.step(actions)
        for i, env in enumerate(envs):
            obs, rew, _, trunc, info = env.step(actions[i])
            assert rew == vrew[i] and trunc == vtrunc[i]
            src = vinfo["final_info"] if trunc else vinfo
            for key, value in info.items():
                assert _same(value, src[key][i]), key
            if trunc:
                env.reset()
            else:
                assert np.array_equal(obs, vobs[i])
    la = envs[0].lookahead()
    assert np.isfinite(la["e2e_ms"]).all()


def test_fixed_latency_adds_to_transfer_and_answer(tmp_path):
    path = _scenario(tmp_path)
    sc = load_scenario(  # a form replaces another: null it first (as --set does)
        path,
        {
            "link.latency": None,
            "link.latency.fixed_ms": 40,
            "link.answer_latency": {"fixed_ms": 12, "samples": None},
        },
    )
    trace = load_trace(tmp_path / "t" / "a.csv")
    world = World(sc, TraceSet([trace]))
    ep = Episode(0, 0.5, 0, 0, 1234, 1.0, world.delay_ms, 1.0)
    frame = world.episode_frame(ep)
    for m in (0, 5, 15):
        f = frame(m, 7)
        c, tx_ms, e2e, edge = (
            f[INDEX[k]] for k in ("compute_ms", "transfer_ms", "e2e_ms", "edge_ms")
        )
        t_send = 0.5 + 7 * world.unit_s + c * 0.001
        want_tx = (trace.transfer_time(t_send + 0.04, world.payload[m]) + 0.04) * 1000.0
        assert tx_ms == pytest.approx(want_tx, abs=1e-9)
        assert e2e == pytest.approx(c + tx_ms + 2 * 5 + edge + 12, abs=1e-9)


def test_draws_come_from_the_samples_and_follow_the_hash(tmp_path):
    path = _scenario(tmp_path)
    sc = load_scenario(path)
    world = World(sc, TraceSet([load_trace(tmp_path / "t" / "b.csv")]))
    meas = np.genfromtxt(tmp_path / "meas.csv", delimiter=",", names=True)
    key = 987654321
    ep = Episode(0, 0.0, 0, 0, key, 1.0, world.delay_ms, 1.0)
    n = np.arange(3000)
    f = world.frames(5, n, ep)  # mode k=2, bits=2
    mine = (meas["k"] == 2) & (meas["bits"] == 2)
    svc = np.sort(meas["service_ms"][mine])
    comp = np.sort(meas["compute_ms"][mine])
    assert np.isin(f[INDEX["edge_ms"]], svc).all()  # no other tenants: the service sample itself
    got = f[INDEX["compute_ms"]]
    assert np.abs(got[:, None] - comp[None, :]).min(axis=1).max() < 1e-9
    # every sample is drawn, about equally often
    counts = np.unique(f[INDEX["edge_ms"]], return_counts=True)[1]
    assert counts.size == svc.size and counts.min() > 3000 / svc.size * 0.7
    # the answer latency is the sample indexed by bits 16-31 of the link hash of the slot
    ans = np.sort(meas["answer_ms"][~np.isnan(meas["answer_ms"])])
    for slot in (0, 17, 2999):
        g = mix(key ^ LINK_SALT, slot)
        want = ans[(((g >> 16) & LOW) * ans.size) >> 16]
        one = world.frames(5, np.array([slot]), ep)
        rest = one[INDEX["e2e_ms"]][0] - (
            one[INDEX["compute_ms"]][0]
            + one[INDEX["transfer_ms"]][0]
            + 10
            + one[INDEX["edge_ms"]][0]
        )
        assert rest == pytest.approx(want, abs=1e-9)


def test_common_random_numbers_across_modes(tmp_path):
    """Two modes started in the same slot share the latency and the quantile of every draw."""
    sc = load_scenario(
        _scenario(tmp_path), {"link.answer_latency": {"median_ms": 5, "p90_ms": 9, "samples": None}}
    )
    world = World(sc, TraceSet([load_trace(tmp_path / "t" / "a.csv")]))
    ep = Episode(0, 1.0, 0, 0, 42, 1.0, world.delay_ms, 1.0)
    a = world.frames(np.array([0, 1]), np.array([300, 300]), ep)
    rest = (
        a[INDEX["e2e_ms"]] - a[INDEX["compute_ms"]] - a[INDEX["transfer_ms"]] - a[INDEX["edge_ms"]]
    )
    assert rest[0] == pytest.approx(rest[1])


def test_schema_forms_and_errors(tmp_path):
    path = _scenario(tmp_path)
    sc = load_scenario(path)
    again = load_scenario(sc.to_dict())
    assert (
        again.link == sc.link
        and again.device.compute_samples.path == sc.device.compute_samples.path
    )
    with pytest.raises(ScenarioError, match=r"link.latency: expected exactly one of"):
        load_scenario(path, {"link.latency.fixed_ms": 3})
    with pytest.raises(ScenarioError, match=r"link.latency.p90_ms"):
        load_scenario(path, {"link.latency": None, "link.latency.median_ms": 3})
    with pytest.raises(ScenarioError, match=r"no column 'nope'"):
        load_scenario(path, {"edge.service.samples.column": "nope"})
    with pytest.raises(ScenarioError, match=r"edge.service.median_ms \(override\): not allowed"):
        load_scenario(path, {"edge.service.median_ms": 50})
    partial = tmp_path / "partial.csv"
    partial.write_text("k,bits,compute_ms\n1,1,100\n2,1,170\n")
    with pytest.raises(ScenarioError, match=r"no samples for .*k=1 bits=2"):
        load_scenario(path, {"device.compute_samples": str(partial)})
    per_k = tmp_path / "perk.csv"
    per_k.write_text("# per k\nk,compute_ms\n1,100\n2,170\n3,240\n4,320\n4,330\n")
    assert load_scenario(path, {"device.compute_samples": str(per_k)})
    bad = tmp_path / "bad.txt"
    bad.write_text("5\n-1\n")
    with pytest.raises(ScenarioError, match=r"bad.txt:2: value: expected a time >= 0"):
        load_scenario(path, {"link.latency": None, "link.latency.samples": str(bad)})
    plain = tmp_path / "plain.txt"
    plain.write_text("5\n7.5\n")
    assert load_scenario(path, {"link.latency": None, "link.latency.samples": str(plain)})


def test_digest_counts_sample_content(tmp_path):
    path = _scenario(tmp_path)
    d1 = scenario_digest(load_scenario(path))
    meas = tmp_path / "meas.csv"
    meas.write_text(meas.read_text().replace("k,bits", "k,bits", 1) + "1,1,101,50,\n")
    assert scenario_digest(load_scenario(path)) != d1


def test_link_profile_fills_what_the_scenario_leaves(tmp_path):
    path = _scenario(tmp_path)
    prof = tmp_path / "bt.yaml"
    prof.write_text(
        "name: bt\ndescription: test\nlatency: {fixed_ms: 9}\nanswer_latency: {fixed_ms: 4}\n"
    )
    sc = load_scenario(path, {"link": {"profile": str(prof), "latency": None}})
    assert sc.link.latency.fixed_ms == 9
    assert sc.link.answer_latency.samples is not None  # the scenario's own wins
    assert load_scenario(sc.to_dict()).link == sc.link
    prof.write_text("latency: {fixed_ms: 9}\nbogus: 1\n")
    with pytest.raises(ScenarioError, match=r"link.profile.*bogus: unknown field"):
        load_scenario(path, {"link.profile": str(prof)})


def test_shipped_link_profiles_load():
    for prof in sorted((ENVS_DIR / "profiles" / "links").glob("*.yaml")):
        sc = load_scenario("default", {"link.profile": str(prof)})
        assert sc.link.latency is not None, prof.name


def test_optimum_runs_with_latency(tmp_path):
    from slimrl.env.optimum import solve_episode

    sc = load_scenario(_scenario(tmp_path))
    world = World(sc, TraceSet([load_trace(tmp_path / "t" / "a.csv")]))
    ep = Episode(0, 0.0, 0, 0, 7, 1.0, world.delay_ms, 1.0)
    plan = solve_episode(world, ep, world.horizon(0, 0.0))
    assert np.isfinite(plan.value)
