"""Crash-safe, exact training runs: --resume gives the weights of an uninterrupted run, picks the
newest save, falls back past a damaged one, saves atomically, one writer per run folder, and bad
hyperparameter values fail before the run folder exists."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from slimrl.cli import main
from slimrl.errors import RunError
from slimrl.runs import ENV_ID

# (what the fix added is imported inside the tests, so that each test fails on its own defect)
CHECKPOINTS_DIR = "checkpoints"

# 4 envs x n_steps 32: a rollout is 128 steps; checkpoints every 128 steps, validation every 256
COMMON = ["--n-envs", "4", "--set", "episode_s=16", "--no-progress", "--no-final-eval",
          "--eval-freq", "256", "--eval-episodes", "2", "--save-freq", "128"]  # fmt: skip
PARAMS = ["n_steps:32", "batch_size:64", "n_epochs:2"]


def _train(folder: Path, steps: int, *extra: str, params: tuple[str, ...] = ()) -> Path:
    argv = ["train", "-n", str(steps), "-f", str(folder), *COMMON, *extra]
    assert main([*argv, "-params", *PARAMS, *params]) == 0
    return sorted((folder / "ppo").iterdir())[-1]


def _resume(run: Path, steps: int) -> int:
    return main(["train", "--resume", str(run), "-n", str(steps), "--no-progress",
                 "--no-final-eval"])  # fmt: skip


def _weights(run: Path) -> dict[str, torch.Tensor]:
    from stable_baselines3 import PPO

    model = PPO.load(run / f"{ENV_ID}.zip", device="cpu")
    assert model.num_timesteps == 512
    state = dict(model.policy.state_dict())
    state.update({f"opt.{k}": v for k, v in _flat(model.policy.optimizer.state_dict()).items()})
    return state


def _flat(d: dict, prefix: str = "") -> dict[str, torch.Tensor]:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        elif isinstance(v, torch.Tensor):
            out[f"{prefix}{k}"] = v
    return out


def _assert_identical(a: Path, b: Path) -> None:
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    diff = {k: float((wa[k].double() - wb[k].double()).abs().max()) for k in wa}
    assert all(torch.equal(wa[k], wb[k]) for k in wa), diff
    from slimrl.runs.stats import read_stats

    sa, sb = (
        read_stats(a / ENV_ID / "vecnormalize.npz"),
        read_stats(b / ENV_ID / "vecnormalize.npz"),
    )
    assert all(np.array_equal(sa[k], sb[k]) for k in sa)


def _crash_after(run: Path, steps: int) -> None:
    """Leave ``run`` as a crash right after its checkpoint at ``steps`` would."""
    for p in (run / CHECKPOINTS_DIR).iterdir():
        n = int(p.name.split("_")[-2])
        if n > steps:
            p.unlink()
    (run / f"{ENV_ID}.zip").unlink()
    (run / ENV_ID / "train_state.npz").unlink(missing_ok=True)


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> Path:
    """An uninterrupted run of 512 steps."""
    return _train(tmp_path_factory.mktemp("straight"), 512)


def test_resume_after_a_crash_gives_the_uninterrupted_weights(straight, tmp_path):
    run = _train(tmp_path, 512)
    _crash_after(run, 256)
    assert _resume(run, 512) == 0
    _assert_identical(run, straight)


def test_a_resume_with_nothing_left_to_train_keeps_the_state_exact(straight, tmp_path):
    run = _train(tmp_path, 512)
    _crash_after(run, 256)
    assert _resume(run, 256) == 0  # already there: saves the final model, trains nothing
    assert _resume(run, 512) == 0
    _assert_identical(run, straight)


def test_interrupt_mid_rollout_then_resume_gives_the_uninterrupted_weights(
    straight, tmp_path, monkeypatch
):
    from slimrl.train.callbacks import InfoMetricsCallback

    original = InfoMetricsCallback._on_step

    def interrupt(self):
        if self.num_timesteps == 300:  # in the middle of the rollout 256 -> 384
            raise KeyboardInterrupt
        return original(self)

    monkeypatch.setattr(InfoMetricsCallback, "_on_step", interrupt)
    assert main(["train", "-n", "512", "-f", str(tmp_path), *COMMON, "-params", *PARAMS]) == 130
    monkeypatch.setattr(InfoMetricsCallback, "_on_step", original)
    (run,) = (tmp_path / "ppo").iterdir()
    from slimrl.runs.resume import resume_points

    points = resume_points(run)
    assert points[0].steps == 256 and points[0].state is not None  # rolled back to the boundary
    assert _resume(run, 512) == 0
    _assert_identical(run, straight)


def test_extending_a_finished_run_gives_the_longer_runs_weights(tmp_path):
    constant = ("learning_rate:0.0003",)  # a schedule would depend on the total
    longer = _train(tmp_path / "a", 512, params=constant)
    run = _train(tmp_path / "b", 256, params=constant)
    assert _resume(run, 512) == 0
    _assert_identical(run, longer)


def test_resume_takes_the_newest_save_final_model_included(tmp_path, capsys):
    run = _train(tmp_path, 384, "--save-freq", "256")  # checkpoint at 256, final model at 384
    capsys.readouterr()
    assert _resume(run, 512) == 0
    assert f"from {ENV_ID}.zip at 384 steps" in capsys.readouterr().out
    from slimrl.runs.resume import resume_points

    assert [p.steps for p in resume_points(run)] == [512, 256]  # the final model, then 256


def test_a_damaged_checkpoint_is_skipped_with_a_warning(tmp_path, capsys):
    run = _train(tmp_path, 512)
    _crash_after(run, 384)
    newest = run / CHECKPOINTS_DIR / "rl_model_384_steps.zip"
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])  # truncated
    capsys.readouterr()
    with pytest.warns(UserWarning, match=r"skipping checkpoints/rl_model_384_steps\.zip"):
        assert _resume(run, 512) == 0
    assert "from rl_model_256_steps.zip at 256 steps" in capsys.readouterr().out


def test_no_usable_save_is_a_one_line_error(tmp_path, capsys):
    run = _train(tmp_path, 256, "--save-freq", "-1")
    final = run / f"{ENV_ID}.zip"
    final.write_bytes(b"")  # a 0-byte model under its final name
    capsys.readouterr()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        assert _resume(run, 512) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no usable checkpoint or final model" in err


def test_a_state_of_another_model_is_not_used(tmp_path):
    run = _train(tmp_path, 384, "--save-freq", "256")
    # the final model from another session, its state from this one: they do not belong together
    other = _train(tmp_path / "other", 384, "--seed", "1", "--save-freq", "256")
    (run / f"{ENV_ID}.zip").write_bytes((other / f"{ENV_ID}.zip").read_bytes())
    with pytest.warns(UserWarning, match="belongs to another model file"):
        assert _resume(run, 512) == 0


def test_saves_are_atomic(tmp_path):
    from slimrl.runs.files import save_model_file

    class Failing:
        def save(self, f):
            f.write(b"partial")
            raise OSError("disk full")

    target = tmp_path / "rl_model_8_steps.zip"
    with pytest.raises(OSError, match="disk full"):
        save_model_file(Failing(), target)
    assert not target.exists() and list(tmp_path.iterdir()) == []
    target.write_bytes(b"old complete model")
    with pytest.raises(OSError):
        save_model_file(Failing(), target)
    assert target.read_bytes() == b"old complete model" and list(tmp_path.iterdir()) == [target]


def test_checkpoints_are_taken_between_rollouts_with_their_state(straight):
    from slimrl.runs.layout import checkpoint_steps

    files = sorted(p.name for p in (straight / CHECKPOINTS_DIR).iterdir())
    steps = sorted({checkpoint_steps(f) for f in files} - {None})
    assert steps == [128, 256, 384]  # multiples of the 128-step rollout
    for n in steps:
        assert f"rl_model_state_{n}_steps.npz" in files
        assert f"rl_model_vecnormalize_{n}_steps.npz" in files
    assert not [f for f in files if f.startswith(".") or f.endswith((".tmp", ".pkl"))]


def test_run_folders_are_created_exclusively(tmp_path):
    from slimrl.runs.lock import create_run_dir

    base = tmp_path / "ppo"
    (base / "default_1").mkdir(parents=True)
    path, lock = create_run_dir(base / "default_1")  # taken meanwhile: the next one
    try:
        assert path == base / "default_2" and path.is_dir()
    finally:
        lock.release()


def test_two_runs_started_together_get_their_own_folders(tmp_path):
    from slimrl.train.config import TrainConfig
    from slimrl.train.trainer import prepare, run

    def cfg() -> TrainConfig:
        return TrainConfig(n_timesteps=64, log_folder=str(tmp_path), n_envs=4, eval_freq=-1,
                           save_freq=-1, final_eval=False, progress=False, set=["episode_s=16"],
                           hyperparams={"n_steps": 16, "batch_size": 64, "n_epochs": 1},
                           command=["slimrl", "train"])  # fmt: skip

    first, second = prepare(cfg(), echo=lambda _: None), prepare(cfg(), echo=lambda _: None)
    assert first.run_dir == second.run_dir  # both chose SlimSplit-v0_1
    try:
        a, b = run(first, echo=lambda _: None), run(second, echo=lambda _: None)
    finally:
        for p in (first, second):
            if p.lock is not None:
                p.lock.release()
    assert a != b and {a.name, b.name} == {"SlimSplit-v0_1", "SlimSplit-v0_2"}


def test_resuming_a_run_in_use_is_refused(tmp_path, capsys):
    from slimrl.runs.lock import RunLock

    run = _train(tmp_path, 128, "--save-freq", "-1", "--eval-freq", "-1")
    with RunLock(run):  # another slimrl train holds it
        capsys.readouterr()
        assert _resume(run, 256) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "in use by another slimrl train" in err
        with pytest.raises(RunError, match="in use"):
            RunLock(run).acquire()
    assert _resume(run, 256) == 0  # free again


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (["-params", "gamma:2.0"], "gamma (-params): expected a number >= 0 and <= 1, got 2.0"),
        (["-params", "gamma:.nan"], "gamma (-params): expected a number >= 0 and <= 1, got nan"),
        (["-params", "gae_lambda:-0.1"], "gae_lambda"),
        (["-params", "learning_rate:0"], "learning_rate"),
        (["-params", "learning_rate:lin_-3e-4"], "learning_rate"),
        (["-params", "n_epochs:0"], "n_epochs"),
        (["-params", "ent_coef:.nan"], "ent_coef"),
        (["-params", "clip_range:.inf"], "clip_range"),
        (["-params", "n_steps:100000", "--n-envs", "1024"], "n_steps x n_envs"),
        (["-params", "normalize:dict(clip_obs=-1)"], "normalize.clip_obs"),
        (["-params", "policy_kwargs:dict(net_arch=[100000000])"], "net_arch[0]"),
    ],
)
def test_bad_hyperparameter_values_fail_before_the_run_folder(tmp_path, capsys, extra, match):
    code = main(["train", "-n", "256", "-f", str(tmp_path), "--no-progress", *extra])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and match in err and "agents/ppo.yml" in err
    assert not (tmp_path / "ppo").exists()


def test_a_nan_in_the_hyperparameter_file_names_file_and_key(tmp_path, capsys):
    conf = tmp_path / "mine.yml"
    conf.write_text("SlimSplit-v0:\n  n_timesteps: 256\n  policy: MlpPolicy\n  gamma: .nan\n")
    assert main(["train", "--conf-file", str(conf), "-f", str(tmp_path / "logs")]) == 2
    err = capsys.readouterr().err.strip()
    assert "mine.yml" in err and "gamma: expected a number >= 0 and <= 1, got nan" in err
    assert not (tmp_path / "logs").exists()


def test_resumed_history_drops_validations_after_the_checkpoint(tmp_path):
    from types import SimpleNamespace

    from slimrl.train.callbacks import ValidationCallback

    path = tmp_path / "evaluations.npz"
    np.savez(path, timesteps=np.array([100, 200, 300]), results=np.array([[1.0], [5.0], [9.0]]),
             ep_lengths=np.array([[10], [10], [10]]))  # fmt: skip
    cb = SimpleNamespace()
    ValidationCallback.load_history(cb, path, until=200)
    assert cb.evaluations_timesteps == [100, 200] and cb.best_mean_reward == 5.0
    (tmp_path / "bad.npz").write_bytes(b"not an npz")
    with pytest.raises(RunError, match="bad.npz"):
        ValidationCallback.load_history(cb, tmp_path / "bad.npz")
