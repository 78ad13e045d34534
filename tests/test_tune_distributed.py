"""Several ``slimrl tune`` workers started at the same moment on a new study cooperate.

Without care two workers race to create the study's tables or row (Optuna raises an
IntegrityError or "table studies already exists" in most such pairs); ``open_study`` opens file
storages under a lock and retries a server database's transient errors.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import subprocess
import sys
from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna")

from slimrl.errors import SlimrlError  # noqa: E402
from slimrl.train import tune as tune_mod  # noqa: E402
from slimrl.train.config import TuneConfig  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _open(url: str, barrier, queue, unlocked: bool) -> None:
    try:
        optuna.logging.set_verbosity(optuna.logging.ERROR)
        if unlocked:  # the path a server database takes: no file lock, retries only
            tune_mod._file_lock = lambda path: contextlib.nullcontext()
        barrier.wait()
        study, worker, _ = tune_mod.open_study(optuna, url, "s", TuneConfig(seed=0))
        queue.put(("ok", worker, study.study_name))
    except BaseException as exc:  # reported to the parent
        queue.put(("error", f"{type(exc).__name__}: {exc}", None))


def _race(url: str, unlocked: bool = False, n: int = 2) -> list:
    ctx = mp.get_context("fork")
    barrier, queue = ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=_open, args=(url, barrier, queue, unlocked)) for _ in range(n)]
    for p in procs:
        p.start()
    out = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    return out


@pytest.mark.skipif(sys.platform != "linux", reason="fork start method")
@pytest.mark.parametrize("kind", ["sqlite", "journal", "retry"])
def test_workers_started_together_on_a_new_study(tmp_path, kind):
    for rep in range(6 if kind != "retry" else 3):
        if kind == "journal":
            url = str(tmp_path / f"study{rep}.log")
        else:
            url = f"sqlite:///{tmp_path / f'study{rep}.db'}"
        out = _race(url, unlocked=kind == "retry")
        assert [o[0] for o in out] == ["ok", "ok"], out
        if kind != "retry":  # under the lock every worker gets its own index (sampler seed)
            assert sorted(o[1] for o in out) == [0, 1]
        study = optuna.load_study(study_name="s", storage=tune_mod.make_storage(optuna, url))
        assert study.user_attrs["slimrl_workers"] == 2


def test_storage_kinds():
    assert tune_mod.storage_kind("sqlite:////tmp/a.db") == "sqlite"
    assert tune_mod.storage_kind("/shared/study.log") == "journal"
    assert tune_mod.storage_kind("journal:///shared/study") == "journal"
    assert tune_mod.storage_kind("postgresql://u:p@host/db") == "server"
    with pytest.raises(SlimrlError, match="--storage 'study.db'"):
        tune_mod.storage_kind("study.db")


@pytest.mark.slow
def test_two_tune_processes_share_one_sqlite_study(tmp_path):
    """Two real ``slimrl tune`` processes started together on one SQLite file both finish."""
    db = tmp_path / "shared.db"
    conf = tmp_path / "tiny.yml"
    conf.write_text(
        "SlimSplit-v0:\n  n_timesteps: 256\n  policy: MlpPolicy\n  n_envs: 4\n  n_steps: 64\n"
        "  batch_size: 64\n  n_epochs: 1\n"
    )
    argv = [sys.executable, "-m", "slimrl.cli", "tune", "--algo", "ppo", "--n-trials", "1",
            "-n", "256", "--n-evaluations", "1", "--eval-episodes", "1", "-f", str(tmp_path),
            "--set", "episode_s=8", "--n-startup-trials", "1", "--storage", f"sqlite:///{db}",
            "--study-name", "shared", "--conf-file", str(conf)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]  # fmt: skip
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-2000:]
    study = optuna.load_study(study_name="shared", storage=f"sqlite:///{db}")
    assert len(study.trials) == 2 and study.user_attrs["slimrl_workers"] == 2
    assert sorted(w for out, _ in outs for w in ("worker 0", "worker 1") if w in out) == [
        "worker 0",
        "worker 1",
    ]
