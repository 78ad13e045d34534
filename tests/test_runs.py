"""The runs room: a run read back with its scenario as trained, drift warnings, model files."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import pytest
import yaml

from slimrl.cli import main
from slimrl.errors import ScenarioDriftWarning
from slimrl.export import export_run
from slimrl.paths import ENVS_DIR
from slimrl.policies import make_policy
from slimrl.runs import ENV_ID, Run
from slimrl.scenario import load_scenario


@pytest.fixture(scope="module")
def run_and_scenario(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny PPO run trained on a scenario file of its own (so the test can change the file)."""
    tmp = tmp_path_factory.mktemp("runs")
    scenario = tmp / "mine.yaml"
    data = yaml.safe_load((ENVS_DIR / "default.yaml").read_text())
    data["traces"] = {
        "path": str(ENVS_DIR.parent / "traces" / "mahimahi-cellular"),
        "pattern": "*.up",
        "fractions": [0.5, 0.2, 0.3],
    }
    for key in ("model", "device"):
        data[key]["profile"] = str(ENVS_DIR / data[key]["profile"])
    data["episode_s"] = 16
    scenario.write_text(yaml.safe_dump(data))
    argv = ["train", "--env", str(scenario), "-n", "256", "-f", str(tmp / "logs"),
            "--n-envs", "4", "--eval-freq", "-1", "--save-freq", "-1", "--no-final-eval",
            "--no-progress", "-params", "n_steps:64", "batch_size:64", "n_epochs:1"]  # fmt: skip
    assert main(argv) == 0
    (run,) = (tmp / "logs" / "ppo").iterdir()
    return run, scenario


def test_saved_scenario_is_the_trained_one(run_and_scenario):
    run, scenario = run_and_scenario
    r = Run.open(run)
    assert r.args["scenario"] == str(scenario.resolve())
    with warnings.catch_warnings():
        warnings.simplefilter("error", ScenarioDriftWarning)
        sc = r.scenario()  # unchanged: no warning
    assert sc.to_dict() == load_scenario(scenario).to_dict()
    assert (run / "command.txt").read_text().startswith("slimrl train --env ")


def test_changed_scenario_file_warns_and_the_saved_one_is_used(run_and_scenario, tmp_path):
    run, scenario = run_and_scenario
    moved = tmp_path / "run"
    shutil.copytree(run, moved)
    original = scenario.read_text()
    try:
        data = yaml.safe_load(original)
        data["deadline_ms"] = 450
        scenario.write_text(yaml.safe_dump(data))
        with pytest.warns(ScenarioDriftWarning, match=r"differs now \(deadline_ms\)"):
            sc = Run.open(moved).scenario()
        assert sc.deadline_ms == 300
        # an export bundles the scenario as trained, not today's file
        with pytest.warns(ScenarioDriftWarning):
            manifest = export_run(moved, tmp_path / "bundle", n_parity=200)
        assert manifest["scenario"]["deadline_ms"] == 300
        saved = json.loads((tmp_path / "bundle" / "manifest.json").read_text())
        assert saved["scenario"]["deadline_ms"] == 300
    finally:
        scenario.write_text(original)


def test_any_model_file_of_a_run_keeps_its_normalisation(run_and_scenario):
    """``RUN/SlimSplit-v0.zip`` acts exactly like ``RUN`` (same VecNormalize statistics)."""
    import gymnasium as gym

    run, scenario = run_and_scenario
    env = gym.make(ENV_ID, scenario=str(scenario), split="val", action_space="flat")
    a = make_policy(str(run), env)
    b = make_policy(str(run / f"{ENV_ID}.zip"), env)
    assert a.vecnormalize is not None and b.vecnormalize is not None
    obs, info = env.reset(seed=3)
    for _ in range(50):
        x, y = a.act(obs, info), b.act(obs, info)
        assert x == y
        obs, _r, _t, tr, info = env.step(x)
        if tr:
            obs, info = env.reset()
