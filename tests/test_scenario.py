"""Scenario schema: loading, validation errors, overrides, --set parsing, edge-load bank."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from slimrl.env.edge import (
    arrival_work,
    backlog_bank,
    generate_backlog,
    lindley_backlog,
)
from slimrl.errors import ScenarioError
from slimrl.paths import ENVS_DIR, TRACES_DIR, shipped_scenarios
from slimrl.scenario import (
    EdgeLoadSpec,
    JobSize,
    LoadState,
    Scenario,
    load_scenario,
    parse_set_args,
    with_overrides,
)

SHIPPED = shipped_scenarios()  # every scenario in envs/


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_scenarios_load_and_round_trip(name, tmp_path):
    sc = load_scenario(name)
    assert isinstance(sc, Scenario) and sc.name == name
    assert sc.path == ENVS_DIR / f"{name}.yaml"
    d = sc.to_dict()
    assert load_scenario(d).to_dict() == d
    (tmp_path / "saved.yaml").write_text(yaml.safe_dump(d))
    assert load_scenario(tmp_path / "saved.yaml").to_dict() == d


def test_default_scenario_facts():
    sc = load_scenario("default")
    assert sc.deadline_ms == 300
    sets = {d.name: d for d in sc.traces.datasets}
    assert list(sets) == ["mahimahi", "norway-3g", "fcc", "oboe", "puffer"]
    assert sets["mahimahi"].path == TRACES_DIR / "mahimahi-cellular"
    assert sets["mahimahi"].pattern == "*.up" and sc.traces.holdout == ("puffer",)
    assert sc.randomize.capacity_scale == (0.1, 10.0) and sc.randomize.edge_load == (0.5, 1.0, 1.5)
    assert sc.model.profile.name == "assine2023-effdet-d2.csv"
    assert sc.device_profile.name == "rpi4"
    assert sc.edge.service.median_ms == 56 and sc.edge.service.p90_ms == 75
    assert sc.arrival.mode == "closed"


def base(tmp_path) -> dict:
    (tmp_path / "tr").mkdir(exist_ok=True)
    (tmp_path / "tr" / "a.csv").write_text("time_s,mbps\n0,5\n10,\n")
    return {
        "traces": {"path": "tr"},
        "model": {"profile": str(ENVS_DIR / "profiles/models/assine2023-effdet-d2.csv")},
        "device": {"profile": str(ENVS_DIR / "profiles/devices/rpi4.yaml")},
        "edge": {"service": {"median_ms": 56, "p90_ms": 75}},
        "deadline_ms": 300,
    }


def write(tmp_path, data) -> str:
    p = tmp_path / "x.yaml"
    p.write_text(yaml.safe_dump(data))
    return str(p)


def test_minimal_scenario_defaults(tmp_path):
    sc = load_scenario(write(tmp_path, base(tmp_path)))
    assert sc.name == "x" and sc.reward.miss_penalty == 1.0 and sc.edge.load is None
    assert sc.modes.k == (1, 2, 3, 4) and sc.observation.history == 4
    assert sc.traces.path == (tmp_path / "tr").resolve()


BAD = [
    (
        "reward.miss_penalty",
        "abc",
        r"x\.yaml: reward\.miss_penalty: expected a number >= 0, got 'abc'",
    ),
    ("reward.energy", -1, r"reward\.energy: expected a number >= 0, got -1"),
    ("reward.bonus", 1, r"reward\.bonus: unknown field \(known: accuracy, miss_penalty, energy\)"),
    ("deadline_ms", 0, r"deadline_ms: expected a number > 0, got 0"),
    ("deadline_ms", True, r"deadline_ms: expected a number > 0, got True"),
    ("episode_s", 0, r"episode_s: expected a number > 0 and <= 86400, got 0"),
    ("colour", "red", r"colour: unknown field"),
    ("traces.path", "nowhere", r"traces\.path: path not found"),
    ("traces.holdout", ["x"], r"traces\.holdout: only valid with sets"),
    ("traces.sets", {"a": {"path": "tr"}}, r"traces: expected either path"),
    ("randomize.capacity_scale", [2, 1], r"randomize\.capacity_scale\[1\]: expected a number >= 2"),
    ("randomize.edge_load", [], r"randomize\.edge_load: expected a list of 1 to 16"),
    ("traces.pattern", "*.up", r"traces\.pattern: no file in .* matches '\*\.up'"),
    ("traces.fractions", [0.5, 0.5], r"traces\.fractions: expected 3 numbers"),
    ("traces.fractions", [0.5, 0.4, 0.4], r"traces\.fractions: expected fractions that sum to 1"),
    ("traces.scale", 0, r"traces\.scale: expected a number > 0, got 0"),
    ("model.profile", "missing.csv", r"model\.profile: file not found"),
    ("device", None, r"device: missing \(required\)"),
    ("device.profile", 3, r"device\.profile: expected a non-empty string, got 3"),
    ("edge.service.p90_ms", 10, r"edge\.service\.p90_ms: expected a number >= 56, got 10"),
    ("edge.service.from_model", "edge_ms_gpu", r"edge\.service\.median_ms: not allowed with"),
    ("edge.load", {"states": {}}, r"edge\.load\.states: expected a mapping name"),
    (
        "edge.load",
        {"states": {"hi": {"rate_per_s": -1, "dwell_s": 1}}},
        r"edge\.load\.states\.hi\.rate_per_s: expected a number >= 0",
    ),
    (
        "edge.load",
        {"states": {"hi": {"rate_per_s": 1}}},
        r"edge\.load\.states\.hi\.dwell_s: missing",
    ),
    (
        "edge.load",
        {"states": {"hi": {"rate_per_s": 1, "dwell_s": 1}}, "seed": "x"},
        r"edge\.load\.seed: expected an integer",
    ),
    ("link.base_delay_ms", -5, r"link\.base_delay_ms: expected a number >= 0, got -5"),
    ("arrival.mode", "burst", r"arrival\.mode: expected one of closed, periodic, got 'burst'"),
    (
        "arrival",
        {"mode": "periodic"},
        r"arrival\.fps: missing \(required when arrival\.mode is periodic\)",
    ),
    ("observation.history", 0, r"observation\.history: expected an integer >= 1 and <= 64, got 0"),
    ("modes.k", [1, 5], r"modes\.k\[1\]: expected one of \[1, 2, 3, 4\]"),
    ("modes.bits", [], r"modes\.bits: expected a non-empty list"),
    ("model.per_sample", "yes", r"model\.per_sample: expected true or false, got 'yes'"),
]


@pytest.mark.parametrize("field,value,match", BAD, ids=[f"{f}={v!r}" for f, v, _ in BAD])
def test_bad_field_errors(tmp_path, field, value, match):
    data = base(tmp_path)
    cur = data
    *parents, last = field.split(".")
    for part in parents:
        cur = cur.setdefault(part, {})
    cur[last] = value
    with pytest.raises(ScenarioError, match=match):
        load_scenario(write(tmp_path, data))


def test_not_a_mapping_and_bad_yaml(tmp_path):
    p = tmp_path / "x.yaml"
    p.write_text("- 1\n- 2\n")
    with pytest.raises(ScenarioError, match="expected a mapping"):
        load_scenario(p)
    p.write_text("a: [1, 2\n")
    with pytest.raises(ScenarioError, match="not valid YAML"):
        load_scenario(p)
    with pytest.raises(ScenarioError, match="no such file"):
        load_scenario("no-such-scenario")


def test_overrides_dotted_and_nested():
    sc = load_scenario("default", {"deadline_ms": 600, "reward.energy": 0.1})
    assert sc.deadline_ms == 600 and sc.reward.energy == 0.1 and sc.reward.accuracy == 1.0
    sc = load_scenario("default", {"reward": {"miss_penalty": 2}, "edge.load": None})
    assert sc.reward.miss_penalty == 2 and sc.reward.energy == 0.05 and sc.edge.load is None
    sc2 = with_overrides(sc, {"modes.k": [1]})
    assert sc2.modes.k == (1,) and sc2.reward.miss_penalty == 2 and sc2.path == sc.path
    with pytest.raises(ScenarioError, match=r"reward\.energyy \(override\): unknown field"):
        load_scenario("default", {"reward.energyy": 1})
    with pytest.raises(ScenarioError, match=r"reward\.energy \(override\): expected a number >= 0"):
        load_scenario("default", {"reward.energy": "lots"})
    with pytest.raises(ScenarioError, match=r"deadline_ms is not a mapping"):
        load_scenario("default", {"deadline_ms.x": 1})


def test_parse_set_args():
    got = parse_set_args(
        ["reward.energy=0.1", "deadline_ms=600", "edge.load=null", "modes.k=[1, 2]", "name=x=y"]
    )
    assert got == {
        "reward.energy": 0.1,
        "deadline_ms": 600,
        "edge.load": None,
        "modes.k": [1, 2],
        "name": "x=y",
    }
    assert load_scenario("default", got).modes.k == (1, 2)
    with pytest.raises(ScenarioError, match="expected key=value"):
        parse_set_args(["deadline_ms"])
    with pytest.raises(ScenarioError, match="bad field path"):
        parse_set_args(["reward..energy=1"])
    with pytest.raises(ScenarioError, match="cannot parse value"):
        parse_set_args(["modes.k=[1, 2"])


def _spec(**kw) -> EdgeLoadSpec:
    states = (LoadState("lo", 5.0, 2.0), LoadState("hi", 20.0, 1.0))
    args = {"states": states, "job": JobSize(median_ms=50.0, p90_ms=70.0), "realisations": 3,
            "duration_s": 20.0, "resolution_ms": 10.0, "seed": 7}  # fmt: skip
    args.update(kw)
    return EdgeLoadSpec(**args)


def test_backlog_closed_form_matches_lindley_loop():
    spec = _spec()
    work = arrival_work(spec)
    w = generate_backlog(spec)
    assert w.shape == (3, 2000) and (w >= 0).all() and w.max() > 0
    assert work.sum() > 0 and (work >= 0).all()
    for r in range(3):
        prev = 0.0
        for n in range(2000):
            prev = max(0.0, prev + work[r, n] - spec.resolution_ms)
            assert abs(prev - w[r, n]) < 1e-6
    assert np.array_equal(generate_backlog(spec), w)  # seeded
    assert backlog_bank(spec) is backlog_bank(_spec())  # cached per spec
    assert not np.array_equal(generate_backlog(_spec(seed=8)), w)
    # the high state brings more work per slot than the low one
    assert work.mean() == pytest.approx(_spec().utilisation * spec.resolution_ms, rel=0.3)


def test_backlog_lindley_small_example():
    # the closed form on a hand-made input: W_n = max(0, W_{n-1} + X_n)
    work = np.array([15.0, 8.0, 6.0, 13.0, 9.0, 0.0, 12.0])  # X_n = work_n - 10
    w = lindley_backlog(work, 10.0)
    assert w.tolist() == [5.0, 3.0, 0.0, 3.0, 2.0, 0.0, 2.0]


def test_zero_load_and_utilisation():
    assert not backlog_bank(None).any()
    spec = _spec(states=(LoadState("idle", 0.0, 1.0),))
    assert not generate_backlog(spec).any()
    assert 0.0 < _spec().utilisation < 1.0
