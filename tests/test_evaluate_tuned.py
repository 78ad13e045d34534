"""tuned-threshold: the grid search, its saved results, reuse and on-the-fly search."""

from __future__ import annotations

import json

import pytest

from slimrl.cli import main
from slimrl.evaluate.search import search_threshold
from slimrl.paths import ENVS_DIR
from slimrl.policies.tuned import SHIPPED_DIR, find_result, tuned_params
from slimrl.scenario import load_scenario
from slimrl.scenario import scenario_digest as scenario_hash

FAST = {"episode_length": 40}


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))


def test_hash_is_stable_and_sees_overrides():
    a = scenario_hash(load_scenario("default"))
    assert a == scenario_hash(load_scenario("default"))
    assert a == scenario_hash(load_scenario("default", {"deadline_ms": 300}))  # same config
    assert a != scenario_hash(load_scenario("default", {"deadline_ms": 400}))
    assert a != scenario_hash(load_scenario("edge-heavy"))


def test_search_result_and_its_choice():
    sc = load_scenario("default", FAST)
    r = search_threshold(sc, episodes=3, windows=[1, 4], margins=[0.6, 0.9, 1.0])
    assert r["scenario_hash"] == scenario_hash(sc) and r["split"] == "train"
    assert r["grid"] == {"window": [1, 4], "margin": [0.6, 0.9, 1.0]}
    scores = r["scores"]
    assert len(scores) == 2 and all(len(row) == 3 for row in scores)
    best = max(max(row) for row in scores)
    c = r["chosen"]
    assert c["reward_mean"] == best
    i, j = r["grid"]["window"].index(c["window"]), r["grid"]["margin"].index(c["margin"])
    assert scores[i][j] == best
    # each grid cell equals rate-threshold with those parameters on the same training episodes
    from slimrl.evaluate import run_evaluation

    df = run_evaluation(
        sc, "train", ["rate-threshold:window=4,margin=0.9"], None, episodes=3, progress=False
    )
    assert df["reward_mean"].iloc[0] == pytest.approx(scores[1][1], abs=1e-6)


def test_cli_saves_and_evaluation_reuses(tmp_path, capsys):
    out = tmp_path / "tuned.json"
    args = [
        "search-threshold",
        "--env",
        "default",
        "--set",
        "episode_length=40",
        "--episodes",
        "2",
        "--windows",
        "2",
        "3",
        "--margins",
        "0.8",
        "0.9",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "chosen: window=" in printed and str(out) in printed
    data = json.loads(out.read_text())
    assert data["chosen"]["window"] in (2, 3) and data["episodes"] == 2
    # default location: the user cache, found again by hash
    assert main(args[:-2]) == 0
    sc = load_scenario("default", FAST)
    found = find_result(scenario_hash(sc))
    assert found is not None and "xdg" in str(found[1])
    notes = []
    p = tuned_params(sc, notice=notes.append)
    assert notes == [] and p["window"] == found[0]["chosen"]["window"]


def test_unknown_hash_searches_on_the_fly_once(capsys):
    sc = load_scenario("default", {"episode_length": 30, "deadline_ms": 350})
    notes: list[str] = []
    p1 = tuned_params(sc, search=search_threshold, notice=notes.append)
    assert len(notes) == 1 and "searching" in notes[0] and "\n" not in notes[0]
    p2 = tuned_params(sc, search=search_threshold, notice=notes.append)
    assert len(notes) == 1 and p1["window"] == p2["window"] and p1["margin"] == p2["margin"]
    with pytest.raises(Exception, match="search-threshold"):
        tuned_params(load_scenario("default", {"deadline_ms": 351}))


@pytest.mark.parametrize("name", sorted(p.stem for p in ENVS_DIR.glob("*.yaml")))
def test_shipped_results_match_shipped_scenarios(name):
    """Every shipped scenario has a saved search whose hash matches (re-run the command if not)."""
    path = SHIPPED_DIR / f"{name}.json"
    assert path.is_file(), f"missing {path}: slimrl search-threshold --env {name} --out {path}"
    data = json.loads(path.read_text())
    assert data["scenario_hash"] == scenario_hash(load_scenario(name)), (
        f"{path} is stale: slimrl search-threshold --env {name} --out {path}"
    )
    assert tuned_params(load_scenario(name))["window"] == data["chosen"]["window"]
