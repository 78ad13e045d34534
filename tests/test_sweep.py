"""``slimrl sweep``: the grid file, local processes and a Ray instance started here."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from slimrl.cli import main
from slimrl.errors import SweepError
from slimrl.train.sweep import load_grid, run_sweep

GRID = """\
scenarios: [default]
algos: [ppo]
seeds: [0, 1]
n_timesteps: 256
n_envs: 4
overrides:
  - name: short
    set: {episode_s: 8}
    hyperparams: {n_steps: 64, batch_size: 64, n_epochs: 1}
evaluate: {traces: val, episodes: 2}
"""


def _grid(tmp_path: Path, text: str = GRID) -> Path:
    p = tmp_path / "grid.yml"
    p.write_text(text)
    return p


@pytest.mark.parametrize(
    "text,match",
    [
        ("scenarios: [default]\nalgos: [ppo]\n", r"grid.yml: seeds: missing \(required\)"),
        ("scenarios: [default]\nalgos: [ppo]\nseeds: [0]\nseed: 1\n", "seed: unknown field"),
        ("scenarios: [default]\nalgos: [nope]\nseeds: [0]\n", r"algos\[0\]"),
        ("scenarios: [default]\nalgos: [ppo]\nseeds: [-1]\n", r"seeds\[0\]: expected an int"),
        ("scenarios: [default]\nalgos: [ppo]\nseeds: [0]\noverrides: [{name: a}, {name: a}]\n",
         r"overrides\[1\].name: duplicate"),
        ("scenarios: [default]\nalgos: [ppo]\nseeds: [0]\noverrides: [{name: a, "
         "set: {deadline_ms: -5}}]\n", r"scenarios\[0\] with overrides 'a'.*deadline_ms"),
        ("scenarios: [default]\nalgos: [ppo]\nseeds: [0]\nevaluate: {episodes: 0}\n",
         r"evaluate.episodes: expected an integer >= 1 and <= 100000, got 0"),
    ],
)  # fmt: skip
def test_bad_grid_names_file_and_field(tmp_path, text, match):
    with pytest.raises(SweepError, match=match):
        load_grid(_grid(tmp_path, text))
    assert main(["sweep", str(tmp_path / "grid.yml"), "--out", str(tmp_path / "o")]) == 2


def _check(out: Path, n: int = 2) -> pd.DataFrame:
    table = pd.read_csv(out / "results.csv")
    assert len(table) == n and set(table["seed"]) == {0, 1}
    for run in table["run"]:  # normal run folders
        assert (Path(run) / "SlimSplit-v0.zip").is_file()
        assert (Path(run) / "SlimSplit-v0" / "config.yml").is_file()
    assert (out / "aggregate" / "default__short" / "aggregate.csv").is_file()
    assert table["reward_per_s"].notna().all()
    return table


def test_sweep_in_local_processes_and_again_skips_done_cells(tmp_path):
    out = tmp_path / "out"
    assert main(["sweep", str(_grid(tmp_path)), "--out", str(out), "--jobs", "2",
                 "--no-plots"]) == 0  # fmt: skip
    first = _check(out)
    key = out / "cells" / "default__short__ppo__seed0.json"
    before = key.stat().st_mtime_ns
    run_sweep(_grid(tmp_path), out, plots=False, echo=lambda s: None)  # nothing left to do
    assert key.stat().st_mtime_ns == before
    pd.testing.assert_frame_equal(first, _check(out))
    assert json.loads(key.read_text())["algo"] == "ppo"


@pytest.mark.slow
def test_sweep_on_a_local_ray_instance(tmp_path):
    ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'slimrl[ray]'")
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=80 * 2**20,
             log_to_driver=False)  # fmt: skip
    try:
        out = tmp_path / "out"
        assert main(["sweep", str(_grid(tmp_path)), "--out", str(out), "--ray", "auto",
                     "--no-plots"]) == 0  # fmt: skip
        _check(out)
        # evaluation over many traces takes the same backend
        from slimrl.evaluate import run_evaluation

        kw = dict(episodes=3, seed=1, overrides={"episode_s": 8}, progress=False, plots=False)
        here = run_evaluation("default", "val", ["paper-ewma"], tmp_path / "e1", **kw)
        there = run_evaluation("default", "val", ["paper-ewma"], tmp_path / "e2", ray="auto", **kw)
        pd.testing.assert_frame_equal(here, there)
    finally:
        ray.shutdown()
