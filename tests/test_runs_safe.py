"""Run folders are read without running code (statistics as .npz; an older run's pickle only when
trusted, or converted once), the shipped references load, and evaluate / export / reference
copies write only outputs of their own kind, outside their inputs, refused before the work."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import slimrl  # noqa: F401  (registers SlimSplit-v0)
from slimrl.cli import main
from slimrl.errors import SlimrlError
from slimrl.paths import AGENTS_DIR
from slimrl.runs import ENV_ID, Run

REFERENCES = sorted(p for p in (AGENTS_DIR / "reference").iterdir() if p.is_dir())
EVAL = ["--traces", "val", "--episodes", "1", "--set", "episode_s=8", "--no-plots", "--no-progress"]


class Evil:
    """Unpickling it creates ``path``: a stand-in for any command a crafted pickle runs."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """A finished 256-step PPO run (VecNormalize on) with a checkpoint at 128 steps."""
    tmp = tmp_path_factory.mktemp("tiny")
    argv = ["train", "-n", "256", "-f", str(tmp), "--n-envs", "4", "--eval-freq", "-1",
            "--save-freq", "128", "--no-final-eval", "--no-progress", "--set", "episode_s=8",
            "-params", "n_steps:32", "batch_size:64", "n_epochs:1"]  # fmt: skip
    assert main(argv) == 0
    (run,) = (tmp / "ppo").iterdir()
    return run


@pytest.fixture
def evil_run(tiny_run, tmp_path) -> tuple[Path, Path]:
    """``tiny_run`` as an older slimrl wrote it, its statistics a crafted pickle."""
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    marker = tmp_path / "pwned"
    for stats in [run / ENV_ID / "vecnormalize.npz", *run.glob("checkpoints/*vecnormalize*")]:
        stats.with_suffix(".pkl").write_bytes(pickle.dumps(Evil(marker)))
        if stats.suffix == ".npz":
            stats.unlink(missing_ok=True)
    for state in [run / ENV_ID / "train_state.npz", *run.glob("checkpoints/*state*.npz")]:
        state.unlink(missing_ok=True)
    return run, marker


@pytest.fixture
def old_run(tiny_run, tmp_path) -> Path:
    """``tiny_run`` as an older slimrl wrote it: genuine pickled statistics (VecNormalize.save)."""
    run = tmp_path / "old"
    shutil.copytree(tiny_run, run)
    vec = Run.open(tiny_run).load_vecnormalize()
    for npz in [run / ENV_ID / "vecnormalize.npz", *run.glob("checkpoints/*vecnormalize*.npz")]:
        vec.save(str(npz.with_suffix(".pkl")))
        npz.unlink()
    return run


# -- statistics that cannot run code ------------------------------------------------------------
def test_opening_an_old_pickle_is_refused_without_running_it(evil_run):
    run, marker = evil_run
    r = Run.open(run)
    assert r.vecnormalize.name == "vecnormalize.pkl"
    with pytest.raises(SlimrlError, match=r"slimrl runs convert .*--trust-pickle"):
        r.load_vecnormalize()
    assert not marker.exists()


def test_evaluate_and_export_refuse_the_pickle(evil_run, tmp_path, capsys):
    run, marker = evil_run
    assert main(["evaluate", "--policies", str(run), "--out", str(tmp_path / "ev"), *EVAL]) == 2
    assert "vecnormalize.pkl" in _one_line_error(capsys)
    assert main(["export", str(run), "--out", str(tmp_path / "b"), "--parity", "0"]) == 2
    assert "--trust-pickle" in _one_line_error(capsys)
    assert not marker.exists() and not (tmp_path / "ev").exists()


def test_resume_refuses_the_pickle(evil_run, capsys):
    run, marker = evil_run
    argv = ["train", "--resume", str(run), "-n", "256", "--no-progress", "--no-final-eval"]
    assert main(argv) == 2
    assert "slimrl runs convert" in _one_line_error(capsys)
    assert not marker.exists()


def test_trust_pickle_reads_an_old_run_for_one_command(old_run, tmp_path, capsys):
    from slimrl.runs.stats import trust_pickle_default

    out = tmp_path / "ev"
    assert main(["evaluate", "--policies", str(old_run), "--out", str(out), *EVAL]) == 2
    capsys.readouterr()
    assert main(["evaluate", "--trust-pickle", "--policies", str(old_run), "--out", str(out),
                 *EVAL]) == 0  # fmt: skip
    assert (out / "summary.csv").is_file()
    assert not trust_pickle_default()  # the switch lasts one command
    dim = Run.open(old_run).load_agent().observation_space.shape
    assert Run.open(old_run, trust_pickle=True).load_vecnormalize().obs_rms.mean.shape == dim


def test_convert_once_then_no_pickle_is_read(old_run, tiny_run, capsys):
    assert main(["runs", "convert", str(old_run), "--remove-pickle"]) == 0
    assert not list(old_run.rglob("*.pkl"))
    a, b = Run.open(old_run).load_vecnormalize(), Run.open(tiny_run).load_vecnormalize()
    assert np.array_equal(a.obs_rms.mean, b.obs_rms.mean)
    assert np.array_equal(a.obs_rms.var, b.obs_rms.var) and a.clip_obs == b.clip_obs
    ck = Run.open(next(old_run.glob("checkpoints/rl_model_*_steps.zip")))
    assert ck.vecnormalize.suffix == ".npz"


def test_a_statistics_file_holds_plain_arrays_only(tiny_run, tmp_path):
    from slimrl.runs.stats import read_stats

    path = tiny_run / ENV_ID / "vecnormalize.npz"
    with np.load(path, allow_pickle=False) as z:
        assert {z[k].dtype.kind for k in z.files} <= {"f", "b", "i"}
    bad = tmp_path / "vecnormalize.npz"
    arrays = dict(read_stats(path))
    np.savez(bad, **{**arrays, "obs_mean": np.array([object()], dtype=object)})
    with pytest.raises(SlimrlError, match="obs_mean.*not allowed"):
        read_stats(bad)
    np.savez(bad, **{**arrays, "obs_var": np.full_like(arrays["obs_var"], np.nan)})
    with pytest.raises(SlimrlError, match="obs_var: not finite"):
        read_stats(bad)


def test_shipped_references_load_without_pickles():
    from slimrl.bundle import Controller
    from slimrl.policies.sb3 import load_sb3_policy

    assert REFERENCES
    for ref in REFERENCES:
        assert not list(ref.rglob("*.pkl")), ref
        r = Run.open(ref)
        assert r.vecnormalize.name == "vecnormalize.npz" and r.load_vecnormalize() is not None
    bundle = AGENTS_DIR / "reference" / "ppo-fmnist-iot" / "bundle"
    ctrl = Controller.load(bundle)
    env = gym.make(ENV_ID, scenario="fmnist-iot", action_space="flat")
    from slimrl.policies import ModeTable

    table = ModeTable.from_world(env.unwrapped.world)
    pol = load_sb3_policy(bundle.parent, table, obs_dim=ctrl.obs_dim)
    obs = np.random.default_rng(0).uniform(0, 1, (256, ctrl.obs_dim)).astype(np.float32)
    assert np.mean(pol.act_batch(obs, {}) == ctrl.act_batch(obs)) > 0.99


# -- output folders -----------------------------------------------------------------------------
def test_a_refused_evaluation_output_fails_before_the_work(tiny_run, monkeypatch, capsys):
    import slimrl.evaluate.api as api

    def no_work(*a, **k):
        raise AssertionError("the evaluation ran before its output was checked")

    monkeypatch.setattr(api, "simulate", no_work)
    assert main(["evaluate", "--policies", str(tiny_run), "--out", str(tiny_run), *EVAL]) == 2
    err = _one_line_error(capsys)
    assert "is the input" in err and str(tiny_run) in err


def test_an_evaluation_never_replaces_its_inputs(tiny_run, tmp_path, capsys):
    out = tmp_path / "ev"
    assert main(["evaluate", "--policies", "paper-ewma", "--out", str(out), *EVAL]) == 0
    assert json.loads((out.parent / f".{out.name}.slimrl-output").read_text())["kind"] == (
        "evaluation"
    )
    bundle = out / "bundle"  # an exported bundle kept inside the evaluation folder
    assert main(["export", str(tiny_run), "--out", str(bundle), "--parity", "0"]) == 0
    capsys.readouterr()
    assert main(["evaluate", "--policies", str(bundle), "--out", str(out), *EVAL]) == 2
    assert "contains the input" in _one_line_error(capsys)
    assert (bundle / "manifest.json").is_file()


def test_outputs_of_another_kind_are_not_replaced(tiny_run, tmp_path, capsys):
    ev, b = tmp_path / "ev", tmp_path / "b"
    assert main(["evaluate", "--policies", "paper-ewma", "--out", str(ev), *EVAL]) == 0
    assert main(["export", str(tiny_run), "--out", str(b), "--parity", "0"]) == 0
    capsys.readouterr()
    assert main(["export", str(tiny_run), "--out", str(ev), "--parity", "0"]) == 2
    assert "'evaluation' output, not 'bundle'" in _one_line_error(capsys)
    assert main(["evaluate", "--policies", "paper-ewma", "--out", str(b), *EVAL]) == 2
    assert "'bundle' output, not 'evaluation'" in _one_line_error(capsys)
    assert (ev / "summary.csv").is_file() and (b / "manifest.json").is_file()
    assert main(["export", str(tiny_run), "--out", str(b), "--parity", "0"]) == 0  # its own kind


def test_export_checks_its_output_before_loading(tiny_run, monkeypatch):
    from slimrl.export import export_run

    def no_load(*a, **k):
        raise AssertionError("the model was loaded before the output was checked")

    monkeypatch.setattr(Run, "load_agent", no_load)
    with pytest.raises(SlimrlError, match="is the input"):
        export_run(tiny_run, tiny_run, n_parity=0)
    with pytest.raises(SlimrlError, match="contains the input"):
        export_run(tiny_run, tiny_run.parent, n_parity=0)


def test_reference_copies_replace_only_references(tiny_run, tmp_path):
    from slimrl.io import output_kind
    from slimrl.runs.reference import save_reference

    shipped = tmp_path / "ppo-fmnist-iot"  # as shipped: no output marker, a bundle inside
    shutil.copytree(AGENTS_DIR / "reference" / "ppo-fmnist-iot", shipped)
    save_reference(tiny_run, shipped)
    assert output_kind(shipped) == "reference"
    files = sorted(p.relative_to(shipped).as_posix() for p in shipped.rglob("*") if p.is_file())
    assert files == [f"{ENV_ID}.zip", f"{ENV_ID}/args.yml", f"{ENV_ID}/config.yml",
                     f"{ENV_ID}/vecnormalize.npz", "command.txt", "scenario.yml",
                     "train_time.yml"]  # fmt: skip
    save_reference(tiny_run, shipped)  # its own output now: replaced again

    notes = tmp_path / "mine"  # a folder with something else in it is not a reference
    shutil.copytree(AGENTS_DIR / "reference" / "ppo-default", notes)
    (notes / "notes.txt").write_text("my notes")
    with pytest.raises(SlimrlError, match="slimrl did not create it"):
        save_reference(tiny_run, notes)
    assert (notes / "notes.txt").read_text() == "my notes"
    with pytest.raises(SlimrlError, match="is the input"):
        save_reference(tiny_run, tiny_run)


def test_a_reference_with_its_bundle_and_cards_is_replaced_again(tiny_run, tmp_path):
    """The shipped way: copy a run, export its bundle into the copy, write the model cards; a
    later copy of the same name replaces all of it (the cards were recorded as slimrl's)."""
    from slimrl.io import output_kind
    from slimrl.runs.reference import save_reference
    from slimrl.train.card import write_model_cards

    ref = tmp_path / "ppo-mine"
    save_reference(tiny_run, ref)
    assert main(["export", str(ref), "--out", str(ref / "bundle"), "--parity", "64"]) == 0
    write_model_cards(ref)
    assert (ref / "bundle" / "README.md").is_file()
    save_reference(tiny_run, ref)
    assert output_kind(ref) == "reference" and not (ref / "bundle").exists()
