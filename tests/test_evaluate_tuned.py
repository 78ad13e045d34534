"""Tuned heuristics: the grid search, its saved results, reuse and on-the-fly search."""

from __future__ import annotations

import json

import pytest

from slimrl.cli import main
from slimrl.errors import PolicyError
from slimrl.evaluate import run_evaluation
from slimrl.evaluate.search import search_heuristic
from slimrl.paths import ENVS_DIR
from slimrl.policies.tuned import TUNABLES, find_result, shipped_path, tuned_params
from slimrl.scenario import load_scenario, scenario_digest

FAST = {"episode_s": 12}


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))


def test_digest_is_stable_and_sees_overrides():
    a = scenario_digest(load_scenario("default"))
    assert a == scenario_digest(load_scenario("default"))
    assert a == scenario_digest(load_scenario("default", {"deadline_ms": 300}))  # same config
    assert a != scenario_digest(load_scenario("default", {"deadline_ms": 400}))
    assert a != scenario_digest(load_scenario("edge-heavy"))


@pytest.mark.parametrize("heuristic", sorted(TUNABLES))
def test_search_result_and_its_choice(heuristic):
    sc = load_scenario("default", FAST)
    grid = {"window": (1, 4), "margin": (0.6, 0.9, 1.0)}
    r = search_heuristic(sc, heuristic, episodes=3, grid=grid)
    assert r["scenario_digest"] == scenario_digest(sc) and r["split"] == "train"
    assert r["grid"] == {"window": [1, 4], "margin": [0.6, 0.9, 1.0]}
    assert len(r["candidates"]) == 6
    best = max(c["reward_per_s"] for c in r["candidates"])
    assert r["chosen"]["reward_per_s"] == best
    # a candidate equals the heuristic with those parameters on the same training episodes
    name = "rate-threshold" if heuristic == "rate-threshold" else "mpc"
    cand = next(c for c in r["candidates"] if c["window"] == 4 and c["margin"] == 0.9)
    # the search replays the training world (domain randomisation included, as PPO trains)
    df = run_evaluation(sc, "train", [f"{name}:window=4,margin=0.9"], None, episodes=3,
                        progress=False, randomize=True)  # fmt: skip
    assert df["reward_per_s"].iloc[0] == pytest.approx(cand["reward_per_s"], abs=1e-6)


def test_cli_saves_and_evaluation_reuses(tmp_path, capsys):
    out = tmp_path / "tuned.json"
    args = ["search-heuristic", "--heuristic", "mpc", "--env", "default", "--set",
            "episode_s=12", "--episodes", "2", "--grid", "window=2,3", "--grid", "margin=0.8,0.9",
            "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "chosen: window=" in printed and str(out) in printed
    data = json.loads(out.read_text())
    assert data["chosen"]["params"]["window"] in (2, 3) and data["episodes"] == 2
    # default location: the user cache, found again by digest
    assert main(args[:-2]) == 0
    sc = load_scenario("default", FAST)
    found = find_result(scenario_digest(sc), "mpc")
    assert found is not None and "xdg" in str(found[1])
    notes = []
    p = tuned_params(sc, "mpc", notice=notes.append)
    assert notes == [] and p["window"] == found[0]["chosen"]["params"]["window"]
    assert main(["search-threshold", "--env", "default", "--grid", "window=x"]) == 2


def test_unknown_digest_searches_on_the_fly_once():
    sc = load_scenario("default", {"episode_s": 10, "deadline_ms": 350})
    notes: list[str] = []
    p1 = tuned_params(sc, search=search_heuristic, notice=notes.append)
    assert len(notes) == 1 and "searching" in notes[0] and "\n" not in notes[0]
    p2 = tuned_params(sc, search=search_heuristic, notice=notes.append)
    assert len(notes) == 1 and p1["window"] == p2["window"] and p1["margin"] == p2["margin"]
    with pytest.raises(PolicyError, match="search-heuristic"):
        tuned_params(load_scenario("default", {"deadline_ms": 351}))


@pytest.mark.parametrize("heuristic", sorted(TUNABLES))
@pytest.mark.parametrize("name", sorted(p.stem for p in ENVS_DIR.glob("*.yaml")))
def test_shipped_results_match_shipped_scenarios(name, heuristic):
    """Every shipped scenario has a saved search whose digest matches (re-run it if not)."""
    path = shipped_path(name, heuristic)
    cmd = f"slimrl search-heuristic --heuristic {heuristic} --env {name} --out {path}"
    assert path.is_file(), f"missing {path}: {cmd}"
    data = json.loads(path.read_text())
    assert data["scenario_digest"] == scenario_digest(load_scenario(name)), f"stale: {cmd}"
    chosen = tuned_params(load_scenario(name), heuristic)
    assert chosen["window"] == data["chosen"]["params"]["window"]


def test_digest_sees_the_order_of_edge_load_states(tmp_path):
    import yaml

    data = load_scenario("edge-heavy").to_dict()  # as runs save it: loads from anywhere
    same = tmp_path / "same.yaml"
    same.write_text(yaml.safe_dump(data, sort_keys=False))
    assert scenario_digest(load_scenario(same)) == scenario_digest(load_scenario("edge-heavy"))
    states = data["edge"]["load"]["states"]
    data["edge"]["load"]["states"] = dict(reversed(list(states.items())))  # seeds another chain
    path = tmp_path / "edge-heavy.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    assert scenario_digest(load_scenario(path)) != scenario_digest(load_scenario("edge-heavy"))
