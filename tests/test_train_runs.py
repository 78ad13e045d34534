"""Short ``slimrl train`` runs: every algorithm, the Zoo layout, --resume, early errors (fast)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from slimrl.cli import main
from slimrl.paths import ROOT
from slimrl.runs import ENV_ID, Run
from slimrl.scenario import load_scenario

# small and quick: 4 envs, short episodes, a few validations of 2 short episodes
FAST = ["--n-envs", "4", "--eval-episodes", "2", "--set", "episode_s=16", "--no-progress"]
SMALL = {
    "ppo": ["-params", "n_steps:64", "batch_size:64", "n_epochs:2"],
    "maskable_ppo": ["-params", "n_steps:64", "batch_size:64", "n_epochs:2"],
    "a2c": ["-params", "n_steps:8"],
    "dqn": ["-params", "learning_starts:256", "buffer_size:5000", "train_freq:4"],
}


def _train(tmp_path: Path, algo: str, steps: int, *extra: str) -> Path:
    argv = [
        "train",
        "--algo",
        algo,
        "-n",
        str(steps),
        "-f",
        str(tmp_path),
        "--eval-freq",
        "512",
        "--save-freq",
        "512",
        "--no-final-eval",
        *FAST,
        *SMALL[algo],
        *extra,
    ]
    assert main(argv) == 0
    runs = sorted(
        (tmp_path / algo).glob(f"{ENV_ID}_*"), key=lambda d: int(d.name.rsplit("_", 1)[1])
    )
    assert runs, "no run folder"
    return runs[-1]


def _load(run: Path):
    files = Run.open(run)
    return files, files.load_agent()


@pytest.mark.parametrize("algo", ["ppo", "a2c", "dqn", "maskable_ppo"])
def test_short_run_writes_the_zoo_layout(tmp_path, algo):
    run = _train(tmp_path, algo, 1024)
    assert run.name == f"{ENV_ID}_1"  # the Zoo's name; the scenario is in args.yml
    for rel in (
        f"{ENV_ID}.zip",
        "best_model.zip",
        "evaluations.npz",
        f"{ENV_ID}/config.yml",
        f"{ENV_ID}/args.yml",
        f"{ENV_ID}/vecnormalize.npz",
        "command.txt",
        "scenario.yml",
    ):
        assert (run / rel).is_file(), rel
    assert list((run / "checkpoints").glob("rl_model_*_steps.zip"))
    files, model = _load(run)
    assert files.algo == algo
    assert model.num_timesteps >= 1024
    assert files.args["env_kwargs"]["scenario"] == "default"
    assert files.args["env_kwargs"]["overrides"] == {"episode_s": 16}
    if algo == "dqn":
        assert files.env_kwargs["action_space"] == "flat"
    with np.load(run / "evaluations.npz") as ev:
        assert len(ev["timesteps"]) >= 1 and ev["results"].shape[1] == 2
    assert "slimrl train" in (run / "command.txt").read_text()
    # the saved scenario is loadable as is
    from slimrl.scenario import load_scenario

    assert load_scenario(run / "scenario.yml").episode_s == 16
    # a second run takes the next id
    if algo == "ppo":
        assert _train(tmp_path, algo, 256).name == f"{ENV_ID}_2"


def test_evaluate_lists_the_trained_run(tmp_path):
    run = _train(tmp_path, "ppo", 512)
    out = tmp_path / "eval"
    code = main(
        [
            "evaluate",
            "--env",
            "default",
            "--traces",
            "val",
            "--policies",
            str(run),
            "paper-ewma",
            "--out",
            str(out),
            "--episodes",
            "2",
            "--set",
            "episode_s=16",
        ]
    )
    assert code == 0
    import pandas as pd

    summary = pd.read_csv(out / "summary.csv")
    assert str(run) in set(summary["policy"])
    # the end-of-training comparison (RUN/eval_val), and the slim reference copy of the run
    from slimrl.runs.reference import save_reference
    from slimrl.train.trainer import final_evaluation

    df = final_evaluation(
        run, load_scenario("default", {"episode_s": 16}), episodes=2, progress=False,
        policies=("paper-ewma", "oracle"),
    )  # fmt: skip
    assert str(run) in set(df["policy"]) and (run / "eval_val" / "summary.csv").is_file()
    ref = save_reference(run, tmp_path / "ref" / "ppo-test")
    assert sorted(p.relative_to(ref).as_posix() for p in ref.rglob("*") if p.is_file()) == [
        f"{ENV_ID}.zip", f"{ENV_ID}/args.yml", f"{ENV_ID}/config.yml",
        f"{ENV_ID}/vecnormalize.npz", "command.txt", "eval_val/summary.csv", "scenario.yml",
        "train_time.yml",
    ]  # fmt: skip
    out2 = tmp_path / "eval_ref"
    assert main(["evaluate", "--env", "default", "--traces", "val", "--policies", str(ref),
                 "--out", str(out2), "--episodes", "2", "--set", "episode_s=16",
                 "--no-plots", "--no-progress"]) == 0  # fmt: skip
    assert str(ref) in set(pd.read_csv(out2 / "summary.csv")["policy"])


def test_resume_continues_from_the_latest_checkpoint(tmp_path):
    run = _train(tmp_path, "ppo", 1024)
    # pretend the run stopped at 512 steps: drop the later checkpoint and the final model
    for p in (run / "checkpoints").glob("rl_model*1024_steps*"):
        p.unlink()
    (run / f"{ENV_ID}.zip").unlink()
    before = np.load(run / "evaluations.npz")["timesteps"].tolist()
    assert (
        main(["train", "--resume", str(run), "-n", "2048", "--no-progress", "--no-final-eval"]) == 0
    )
    assert sorted((tmp_path / "ppo").iterdir()) == [run]  # same folder, no new run
    _, model = _load(run)
    assert model.num_timesteps == 2048
    after = np.load(run / "evaluations.npz")["timesteps"].tolist()
    assert after[: len(before)] == before and after[-1] == 2048
    args = yaml.safe_load((run / ENV_ID / "args.yml").read_text())
    assert args["n_timesteps"] == 2048 and args["trained_agent"].endswith("rl_model_512_steps.zip")
    assert len((run / "command.txt").read_text().strip().splitlines()) == 2


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (["--set", "deadline_ms=abc"], "deadline_ms"),
        (["--env", "no-such-scenario"], "no-such-scenario"),
        (["-params", "n_stepz:8"], "n_stepz"),
        (["-params", "learning_rate:fast"], "learning_rate"),
    ],
)
def test_bad_inputs_fail_before_training(tmp_path, capsys, extra, match):
    code = main(["train", "-n", "256", "-f", str(tmp_path), "--no-progress", *extra])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and match in err and err.startswith("slimrl train: error:")
    assert not (tmp_path / "ppo").exists()


def test_bad_hyperparameter_file_fails_before_training(tmp_path, capsys):
    conf = tmp_path / "bad.yml"
    conf.write_text("SlimSplit-v0:\n  n_timesteps: 100\n  policy: MlpPolicy\n  n_steps: [\n")
    assert main(["train", "--conf-file", str(conf), "-f", str(tmp_path / "logs")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "bad.yml" in err and "YAML" in err
    conf.write_text("CartPole-v1:\n  n_timesteps: 100\n  policy: MlpPolicy\n")
    assert main(["train", "--conf-file", str(conf), "-f", str(tmp_path / "logs")]) == 2
    assert "no hyperparameters for SlimSplit-v0" in capsys.readouterr().err
    conf.write_text("SlimSplit-v0:\n  n_timesteps: 100\n  policy: MlpPolicy\n  batch_size: 0\n")
    assert main(["train", "--conf-file", str(conf), "-f", str(tmp_path / "logs")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "bad.yml" in err
    assert not (tmp_path / "logs").exists()


@pytest.mark.parametrize("algo", ["ppo", "a2c", "dqn", "maskable_ppo"])
def test_shipped_hyperparameters_are_valid(algo):
    from slimrl.train.hyperparams import load_hyperparams

    hp = load_hyperparams(algo)
    assert hp.n_timesteps > 0 and hp.model_kwargs["policy"] == "MlpPolicy"


def test_rl_zoo3_trains_with_the_documented_command(tmp_path):
    """The ``rl_zoo3.train`` command of agents/README.md, shortened (-n, -f, eval settings)."""
    import os
    import shlex

    if importlib.util.find_spec("rl_zoo3") is None:
        if os.environ.get("CI"):
            pytest.fail("rl_zoo3 is not installed in CI (the dev extra brings it)")
        pytest.skip("rl_zoo3 is not installed")
    doc = (ROOT / "agents" / "README.md").read_text()
    line = next(x.strip() for x in doc.splitlines() if "python -m rl_zoo3.train" in x)
    words = shlex.split(line)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    while "=" in words[0]:  # leading VAR=value assignments
        key, _, value = words.pop(0).partition("=")
        env[key] = value
    assert env.get("OMP_NUM_THREADS") == "1" and words[:3] == ["python", "-m", "rl_zoo3.train"]
    assert "--num-threads" in words and "split:'val'" in words
    words[words.index("--conf-file") + 1] = str(ROOT / "agents" / "ppo.yml")
    cmd = [sys.executable, *words[1:], "-n", "2048", "-f", str(tmp_path), "--eval-freq", "1024",
           "--eval-episodes", "1"]  # fmt: skip
    out = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "eval_env_kwargs={'split': 'val', 'action_space': 'flat'}" in out.stdout
    assert list((tmp_path / "ppo").glob(f"{ENV_ID}_1/{ENV_ID}.zip"))
    assert (tmp_path / "ppo" / f"{ENV_ID}_1" / "evaluations.npz").is_file()


def test_tune_writes_a_study_and_best_params(tmp_path):
    pytest.importorskip("optuna")
    argv = ["tune", "--algo", "ppo", "--n-trials", "2", "-n", "512", "--n-evaluations", "2",
            "--eval-episodes", "2", "-f", str(tmp_path), "--set", "episode_s=16",
            "--n-startup-trials", "1"]  # fmt: skip
    assert main(argv) == 0
    out = tmp_path / "ppo" / "optuna"
    assert (out / "ppo-default.db").is_file()
    best = yaml.safe_load((out / "ppo-default_best.yml").read_text())
    from slimrl.train.hyperparams import preprocess

    hp = preprocess(best[ENV_ID], "ppo")  # a valid Zoo file for slimrl train --conf-file
    assert hp.n_timesteps == 512 and "gamma" in hp.model_kwargs


def test_tune_without_optuna_is_a_one_line_error(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "optuna", None)
    assert main(["tune", "--n-trials", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pip install 'slimrl[tune]'" in err
