"""The RL Baselines3 Zoo's own tools read slimrl runs as they are; run names, monitor files,
TensorBoard tags and HParams, command.txt, model cards (a few hundred training steps)."""

from __future__ import annotations

import importlib.util
import os
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from slimrl.cli import main
from slimrl.paths import ROOT
from slimrl.runs import ENV_ID

FAST = ["--n-envs", "4", "--eval-episodes", "2", "--set", "episode_s=16", "--no-progress"]
PPO_SMALL = ["-params", "n_steps:64", "batch_size:64", "n_epochs:2"]


def _need_zoo() -> None:
    """Skip without rl_zoo3, except in CI (the dev extra installs it there: a skip would hide a
    broken install)."""
    if importlib.util.find_spec("rl_zoo3") is None:
        if os.environ.get("CI"):
            pytest.fail("rl_zoo3 is not installed in CI (pip install -e '.[dev]' should bring it)")
        pytest.skip("rl_zoo3 is not installed")


@pytest.fixture(scope="module")
def logs(tmp_path_factory) -> Path:
    """Two tiny PPO runs in one log folder, the second with final evaluation and a reference."""
    root = tmp_path_factory.mktemp("logs")
    base = ["train", "-n", "512", "-f", str(root), "--eval-freq", "256", "--save-freq", "-1"]
    assert main([*base, "--no-final-eval", *FAST, *PPO_SMALL]) == 0
    ref = root / "ref" / "ppo-tiny"
    # typed in an order of its own, with a default spelled out: command.txt keeps it as typed
    argv = ["train", "--seed", "0", *base[1:], "--final-eval-episodes", "2",
            "--save-reference", str(ref), *FAST, *PPO_SMALL]  # fmt: skip
    assert main(argv) == 0
    (root / "argv.txt").write_text(shlex.join(["slimrl", *argv]))
    return root


def _env() -> dict[str, str]:
    env = {**os.environ, "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def test_runs_are_named_the_zoo_way_and_keep_the_scenario(logs):
    runs = sorted(p.name for p in (logs / "ppo").iterdir())
    assert runs == [f"{ENV_ID}_1", f"{ENV_ID}_2"]
    run = logs / "ppo" / f"{ENV_ID}_2"
    args = yaml.safe_load((run / ENV_ID / "args.yml").read_text())
    assert args["env"] == ENV_ID and args["scenario"] == "default"
    assert args["env_kwargs"] == {
        "scenario": "default",
        "overrides": {"episode_s": 16},
        "action_space": "flat",  # from agents/ppo.yml
        "rate_baseline": "best-static",
    }
    assert args["run_name"] == "ppo_default_2"
    assert yaml.safe_load((run / "scenario.yml").read_text())["name"] == "default"
    # command.txt: the command as typed, then the run's name as a shell comment
    line = (run / "command.txt").read_text()
    assert line == (logs / "argv.txt").read_text() + "  # ppo_default_2\n"
    # TensorBoard shows the run by its name
    assert [p.name for p in (run / "tb").iterdir()] == ["ppo_default_2"]


def test_monitor_files_are_sb3_monitor_csv(logs):
    from stable_baselines3.common.monitor import load_results

    run = logs / "ppo" / f"{ENV_ID}_1"
    assert [p.name for p in run.glob("*.monitor.csv")] == ["0.monitor.csv"]
    first = (run / "0.monitor.csv").read_text().splitlines()[:2]
    assert first[0].startswith('#{"t_start": ') and f'"env_id": "{ENV_ID}"' in first[0]
    assert first[1] == "r,l,t"
    df = load_results(str(run))
    assert len(df) >= 4 and (df["l"] > 0).all() and np.isfinite(df["r"]).all()


def test_next_monitor_file_adds_one_per_session(tmp_path):
    from slimrl.train.vec_env import next_monitor_file

    assert next_monitor_file(tmp_path).name == "0.monitor.csv"
    (tmp_path / "0.monitor.csv").write_text("")
    assert next_monitor_file(tmp_path).name == "1.monitor.csv"


def test_tensorboard_keeps_episodes_apart_from_frames_and_has_hparams(logs):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    run = logs / "ppo" / f"{ENV_ID}_2"
    ea = EventAccumulator(str(run / "tb" / "ppo_default_2"))
    ea.Reload()
    tags = set(ea.Tags()["scalars"])
    for tag in ("episode/val/reward_per_s", "episode/val/miss_rate", "frame/val/accuracy",
                "frame/val/e2e_p95_ms", "frame/val/k_share/k=1", "eval/mean_reward"):  # fmt: skip
        assert tag in tags, tag
    assert not any(t.startswith(("val_env/", "train_env/")) for t in tags)
    content = ea.PluginTagToContent("hparams")
    exp = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"])
    metrics = {m.name.tag for m in exp.experiment.metric_infos}
    assert {"hparams/final_reward_per_s", "hparams/final_score", "hparams/val_reward_per_s"} <= (
        metrics
    )
    assert all(m in tags for m in metrics)  # each metric is also a scalar the dashboard reads
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    hp = start.session_start_info.hparams
    assert hp["algo"].string_value == "ppo" and hp["scenario"].string_value == "default"
    assert hp["gamma"].number_value == pytest.approx(0.5) and hp["n_steps"].number_value == 64
    assert hp["set.episode_s"].number_value == 16


def test_save_reference_writes_a_model_card(logs):
    ref = logs / "ref" / "ppo-tiny"
    text = (ref / "README.md").read_text()
    head = yaml.safe_load(text.split("---\n")[1])
    assert head["library_name"] == "stable-baselines3"
    assert ENV_ID in head["tags"] and "scenario-default" in head["tags"]
    results = head["model-index"][0]["results"][0]
    assert results["dataset"]["type"] == ENV_ID
    kinds = {m["type"]: m["value"] for m in results["metrics"]}
    assert {"reward_per_s", "normalised_score", "on_time_rate"} <= set(kinds)
    import pandas as pd

    summary = pd.read_csv(ref / "eval_val" / "summary.csv").set_index("policy")
    own = (
        summary.loc["agents/reference/ppo-tiny"]
        if "agents/reference/ppo-tiny" in summary.index
        else None
    )
    if own is None:
        own = summary.iloc[0]
    assert kinds["reward_per_s"] == pytest.approx(own["reward_per_s"], abs=1e-6)
    assert "slimrl train --seed 0 -n 512" in text and "episode length (s of trace): 16" in text
    # the card is part of the slimrl output: saving the reference again replaces it cleanly
    from slimrl.io import read_marker
    from slimrl.train.card import save_reference_with_card

    assert "README.md" in read_marker(ref)["folders"][0]["entries"]
    save_reference_with_card(logs / "ppo" / f"{ENV_ID}_2", ref)
    assert (ref / "README.md").read_text() == text
    assert not [p for p in ref.parent.iterdir() if p.name.startswith(".ppo-tiny.") and p.is_dir()]


def test_rl_zoo3_enjoy_and_plots_read_a_slimrl_run(logs, tmp_path):
    _need_zoo()
    # the Zoo reads only vecnormalize.pkl: `slimrl runs zoo` writes it from the .npz
    from slimrl.cli import main as slimrl_main

    assert not (logs / "ppo" / f"{ENV_ID}_2" / ENV_ID / "vecnormalize.pkl").exists()
    assert slimrl_main(["runs", "zoo", str(logs / "ppo" / f"{ENV_ID}_2")]) == 0
    # enjoy: the latest run (exp-id 0), on the validation split, one torch thread, no render
    cmd = [sys.executable, "-m", "rl_zoo3.enjoy", "--algo", "ppo", "--env", ENV_ID,
           "--gym-packages", "slimrl", "-f", str(logs), "--no-render", "-n", "400",
           "--num-threads", "1", "--device", "cpu", "--deterministic",
           "--env-kwargs", "split:'val'", "rate_baseline:None"]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=_env(), timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"{ENV_ID}_2" in out.stdout and "Loading running average" in out.stdout
    assert "Episode Reward:" in out.stdout and "Mean reward:" in out.stdout

    # plot_train reads the monitor files; all_plots reads evaluations.npz
    png = tmp_path / "train.png"
    script = (
        "import sys, matplotlib; matplotlib.use('Agg'); from matplotlib import pyplot as plt\n"
        "png, folder = sys.argv[1:3]; lines = []\n"
        "plt.show = lambda: (lines.extend(x.get_label() for x in plt.gca().get_lines()),"
        " plt.savefig(png))\n"
        "sys.argv = ['plot_train', '-a', 'ppo', '-e', 'SlimSplit-v0', '-f', folder, '-w', '2']\n"
        "from rl_zoo3.plots.plot_train import plot_train\n"
        "plot_train(); print('LINES', sorted(lines))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(png), str(logs)],
        capture_output=True, text=True, env=_env(), timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"LINES ['{ENV_ID}_1', '{ENV_ID}_2']" in out.stdout
    assert png.stat().st_size > 1000
    cmd = [sys.executable, "-m", "rl_zoo3.plots.all_plots", "-a", "ppo", "-e", ENV_ID,
           "-f", str(logs), "--no-display", "-o", str(tmp_path / "all")]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Eval not found" not in out.stdout
    import pickle

    with open(tmp_path / "all.pkl", "rb") as f:
        post = pickle.load(f)[ENV_ID][f"PPO-{logs}"]
    assert list(post["timesteps"]) == [256, 512] and post["mean_per_eval"].shape == (2, 2)
