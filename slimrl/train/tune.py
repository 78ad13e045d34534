"""Optuna hyperparameter search in the RL Baselines3 Zoo's manner.

Each trial samples hyperparameters (the Zoo's search spaces for PPO / MaskablePPO, A2C and DQN;
the discount factor also offers the low values that suit SlimSplit's nearly independent frames),
trains on the training split and reports the validation reward after each of ``n_evaluations``
evaluations to a median pruner. The study lives in SQLite under the log folder by default
(resumable: the same ``--study-name`` continues it); ``--storage`` shares it between workers
started together on one machine (SQLite), on a shared file system (Optuna's journal file,
``FILE.log``) or across machines (a PostgreSQL / MySQL URL): see :func:`open_study`. The best
trial is written as a Zoo hyperparameter file that ``slimrl train --conf-file`` reads.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from slimrl.errors import SlimrlError
from slimrl.io import atomic_path, write_text
from slimrl.runs import ENV_ID, canonical_algo
from slimrl.scenario import load_scenario, parse_set_args
from slimrl.train.config import MAX_EVAL_ENVS, VAL_SEED, TuneConfig
from slimrl.train.hyperparams import dump_zoo_yaml, preprocess, read_hyperparams
from slimrl.train.trainer import build_model, scenario_label, set_threads

NET_ARCH = {
    "tiny": "dict(pi=[64], vf=[64])",
    "small": "dict(pi=[64, 64], vf=[64, 64])",
    "medium": "dict(pi=[256, 256], vf=[256, 256])",
}
Q_NET_ARCH = {"tiny": "[64]", "small": "[64, 64]", "medium": "[256, 256]"}
ACTIVATION = {"tanh": "nn.Tanh", "relu": "nn.ReLU"}
GAMMAS = [0.5, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999]


def require_optuna() -> Any:
    """``optuna``, or a one-line error saying how to install it."""
    try:
        import optuna
    except ImportError:
        raise SlimrlError(
            "slimrl tune needs Optuna: pip install 'slimrl[tune]' (or pip install optuna)"
        ) from None
    return optuna


# -- search spaces (strings where the Zoo YAML holds strings) -------------------------------------


def sample_ppo_params(trial: Any) -> dict[str, Any]:
    """PPO / MaskablePPO (the Zoo's space, wider gamma)."""
    n_steps = trial.suggest_categorical("n_steps", [64, 128, 256, 512, 1024, 2048])
    batch_size = trial.suggest_categorical("batch_size", [32, 64, 128, 256, 512])
    arch = trial.suggest_categorical("net_arch", list(NET_ARCH))
    act = trial.suggest_categorical("activation_fn", list(ACTIVATION))
    return {
        "n_steps": n_steps,
        "batch_size": min(batch_size, n_steps),
        "gamma": trial.suggest_categorical("gamma", GAMMAS),
        "learning_rate": trial.suggest_float("learning_rate", 1e-5, 1e-2, log=True),
        "ent_coef": trial.suggest_float("ent_coef", 1e-8, 0.1, log=True),
        "clip_range": trial.suggest_categorical("clip_range", [0.1, 0.2, 0.3, 0.4]),
        "n_epochs": trial.suggest_categorical("n_epochs", [1, 5, 10, 20]),
        "gae_lambda": trial.suggest_categorical("gae_lambda", [0.8, 0.9, 0.92, 0.95, 0.98, 1.0]),
        "max_grad_norm": trial.suggest_categorical("max_grad_norm", [0.3, 0.5, 0.7, 1.0, 2.0, 5.0]),
        "vf_coef": trial.suggest_float("vf_coef", 0.0, 1.0),
        "policy_kwargs": f"dict(net_arch={NET_ARCH[arch]}, activation_fn={ACTIVATION[act]})",
    }


def sample_a2c_params(trial: Any) -> dict[str, Any]:
    """A2C (the Zoo's space, wider gamma)."""
    lr = trial.suggest_float("learning_rate", 1e-5, 1e-2, log=True)
    schedule = trial.suggest_categorical("lr_schedule", ["linear", "constant"])
    arch = trial.suggest_categorical("net_arch", ["small", "medium"])
    act = trial.suggest_categorical("activation_fn", list(ACTIVATION))
    ortho = trial.suggest_categorical("ortho_init", [False, True])
    return {
        "n_steps": trial.suggest_categorical("n_steps", [8, 16, 32, 64, 128, 256, 512]),
        "gamma": trial.suggest_categorical("gamma", GAMMAS),
        "gae_lambda": trial.suggest_categorical("gae_lambda", [0.8, 0.9, 0.92, 0.95, 0.98, 1.0]),
        "learning_rate": f"lin_{lr:.6g}" if schedule == "linear" else lr,
        "ent_coef": trial.suggest_float("ent_coef", 1e-8, 0.1, log=True),
        "vf_coef": trial.suggest_float("vf_coef", 0.0, 1.0),
        "normalize_advantage": trial.suggest_categorical("normalize_advantage", [False, True]),
        "max_grad_norm": trial.suggest_categorical("max_grad_norm", [0.3, 0.5, 0.7, 1.0, 2.0, 5.0]),
        "use_rms_prop": trial.suggest_categorical("use_rms_prop", [False, True]),
        "policy_kwargs": (
            f"dict(net_arch={NET_ARCH[arch]}, activation_fn={ACTIVATION[act]}, ortho_init={ortho})"
        ),
    }


def sample_dqn_params(trial: Any) -> dict[str, Any]:
    """DQN (the Zoo's space, wider gamma)."""
    train_freq = trial.suggest_categorical("train_freq", [1, 4, 8, 16, 128])
    subsample = trial.suggest_categorical("subsample_steps", [1, 2, 4, 8])
    arch = trial.suggest_categorical("net_arch", list(Q_NET_ARCH))
    return {
        "gamma": trial.suggest_categorical("gamma", GAMMAS),
        "learning_rate": trial.suggest_float("learning_rate", 1e-5, 1e-2, log=True),
        "batch_size": trial.suggest_categorical("batch_size", [32, 64, 128, 256, 512]),
        "buffer_size": trial.suggest_categorical(
            "buffer_size", [10_000, 50_000, 100_000, 1_000_000]
        ),
        "exploration_final_eps": trial.suggest_float("exploration_final_eps", 0.0, 0.2),
        "exploration_fraction": trial.suggest_float("exploration_fraction", 0.0, 0.5),
        "target_update_interval": trial.suggest_categorical(
            "target_update_interval", [1, 1000, 5000, 10000]
        ),
        "learning_starts": trial.suggest_categorical("learning_starts", [0, 1000, 5000, 10000]),
        "train_freq": train_freq,
        "gradient_steps": max(train_freq // subsample, 1),
        "policy_kwargs": f"dict(net_arch={Q_NET_ARCH[arch]})",
    }


SAMPLERS: dict[str, Callable[[Any], dict[str, Any]]] = {
    "ppo": sample_ppo_params,
    "maskable_ppo": sample_ppo_params,
    "a2c": sample_a2c_params,
    "dqn": sample_dqn_params,
}


# -- the search -----------------------------------------------------------------------------------


def tune(cfg: TuneConfig, echo: Callable[[str], None] = print) -> Path:
    """Run the study; returns the Zoo YAML file of the best hyperparameters."""
    optuna = require_optuna()

    algo = canonical_algo(cfg.algo)
    base, where = read_hyperparams(algo, cfg.conf_file)
    preprocess(dict(base), algo, where)  # the base file must be valid on its own
    overrides = parse_set_args(cfg.set)
    scenario = load_scenario(cfg.env or "default", overrides or None)
    label = scenario_label(cfg.env or "default")
    if cfg.n_timesteps > 0:
        base["n_timesteps"] = cfg.n_timesteps
    n_timesteps = int(float(base["n_timesteps"]))
    if cfg.n_trials < 1 or cfg.n_evaluations < 1:
        raise SlimrlError("--n-trials and --n-evaluations must be >= 1")

    study_name = cfg.study_name or f"{algo}-{scenario.name}"
    out_dir = Path(cfg.log_folder) / algo / "optuna"
    out_dir.mkdir(parents=True, exist_ok=True)
    url = cfg.storage or f"sqlite:///{(out_dir / f'{study_name}.db').resolve()}"
    study, worker, storage = open_study(optuna, url, study_name, cfg)
    objective = _Objective(cfg, algo, base, where, scenario, n_timesteps, echo, optuna)
    echo(
        f"Study {study_name!r} ({storage}), worker {worker}: {cfg.n_trials} trials of "
        f"{n_timesteps:,} steps on {label}, {cfg.n_evaluations} validations each"
    )
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study.optimize(objective, n_trials=cfg.n_trials, timeout=cfg.timeout, catch=())

    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        raise SlimrlError(f"study {study_name!r}: no trial completed (all pruned or failed)")
    best = study.best_trial
    hp = {**base, **best.user_attrs["hyperparams"]}
    best_file = out_dir / f"{study_name}_best.yml"
    header = (
        f"# Best of Optuna study {study_name!r}: trial {best.number}, validation reward "
        f"{best.value:.3f} per episode after {n_timesteps:,} steps on {label}.\n"
    )
    write_text(best_file, header + dump_zoo_yaml(hp))
    with contextlib.suppress(Exception), atomic_path(out_dir / f"{study_name}_trials.csv") as tmp:
        study.trials_dataframe().to_csv(tmp, index=False)  # a convenience (needs pandas)
    echo(f"Best trial {best.number}: {best.value:.3f}; hyperparameters -> {best_file}")
    return best_file


# -- the study: shared safely by workers started together ------------------------------------------

#: how often a worker retries opening a study that another worker is creating at that moment
OPEN_ATTEMPTS = 12


def storage_kind(url: str) -> str:
    """``"sqlite"``, ``"journal"`` (Optuna's journal file: a path ending ``.log`` or
    ``journal:///PATH``) or ``"server"`` (another SQLAlchemy URL: PostgreSQL, MySQL, ...)."""
    if url.startswith("sqlite:///"):
        return "sqlite"
    if url.startswith("journal:///") or url.endswith(".log"):
        return "journal"
    if "://" not in url:
        raise SlimrlError(
            f"--storage {url!r}: expected an SQLAlchemy URL (sqlite:///FILE, "
            "postgresql://..., mysql://...) or a journal file (FILE.log or journal:///FILE)"
        )
    return "server"


def _storage_file(url: str) -> Path | None:
    kind = storage_kind(url)
    if kind == "sqlite":
        path = url[len("sqlite:///") :]
        return None if path in ("", ":memory:") else Path(path)
    if kind == "journal":
        return Path(url[len("journal:///") :] if url.startswith("journal:///") else url)
    return None


@contextlib.contextmanager
def _file_lock(path: Path | None):
    """An exclusive ``flock`` on ``PATH.slimrl-lock`` (no-op without a file or ``fcntl``)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        fcntl = None
    if path is None or fcntl is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    # not FILE.lock: Optuna's journal backend uses that name for its own lock
    fd = os.open(f"{path}.slimrl-lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def make_storage(optuna: Any, url: str) -> Any:
    """The Optuna storage of ``url``: SQLite waits for the file lock instead of failing with
    "database is locked" when workers write together; a journal file is Optuna's
    ``JournalFileBackend`` (for a file system several machines share)."""
    kind = storage_kind(url)
    if kind == "journal":
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        return JournalStorage(JournalFileBackend(str(_storage_file(url))))
    if kind == "sqlite":
        return optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 120}})
    return optuna.storages.RDBStorage(url, engine_kwargs={"pool_pre_ping": True})


def _transient(exc: BaseException) -> bool:
    """An error a concurrent creator causes (a table or study row made by another worker)."""
    text = f"{type(exc).__name__}: {exc}".lower()
    return any(
        s in text
        for s in ("integrityerror", "already exists", "duplicate", "database is locked",
                  "unique constraint", "operationalerror")
    )  # fmt: skip


def open_study(optuna: Any, url: str, study_name: str, cfg: TuneConfig) -> tuple[Any, int, str]:
    """Create or join study ``study_name`` at ``url``: ``(study, worker index, url shown)``.

    Workers started at the same moment on a new study must not race to create its tables or its
    row. File storages (SQLite, journal) are opened under an exclusive ``flock`` on
    ``FILE.slimrl-lock``, so one worker creates and the others load; a server database is
    retried with backoff when a concurrent creation surfaces as an integrity or "already
    exists" error. Each worker takes the next index from the study (under the lock for file
    storages) and seeds its sampler with ``--seed + index``, so workers do not propose the same
    trials.
    """
    import random
    import time

    kind = storage_kind(url)
    with _file_lock(_storage_file(url)):
        last: BaseException | None = None
        for attempt in range(OPEN_ATTEMPTS):
            try:
                storage = make_storage(optuna, url)
                # the sampler's seed is set below, once this worker's index is known
                study = optuna.create_study(
                    study_name=study_name,
                    storage=storage,
                    direction="maximize",
                    load_if_exists=True,
                )
                worker = int(study.user_attrs.get("slimrl_workers", 0))
                study.set_user_attr("slimrl_workers", worker + 1)
                break
            except Exception as exc:  # noqa: BLE001 - sorted by _transient
                if not _transient(exc) or attempt == OPEN_ATTEMPTS - 1:
                    if _transient(exc):
                        raise SlimrlError(
                            f"--storage {url}: could not open study {study_name!r} after "
                            f"{OPEN_ATTEMPTS} attempts ({type(exc).__name__}: "
                            f"{str(exc).splitlines()[0]})"
                        ) from exc
                    raise
                last = exc
                time.sleep(min(2.0, 0.05 * 2**attempt) * (0.5 + random.random()))
        else:  # pragma: no cover - the loop breaks or raises
            raise SlimrlError(f"--storage {url}: {last}")
    if kind == "server":  # no lock: two workers may share an index; their seeds must not
        worker += int.from_bytes(os.urandom(4), "little") << 8
    seed = cfg.seed + worker
    if cfg.sampler == "random":
        sampler = optuna.samplers.RandomSampler(seed=seed)
    else:
        sampler = optuna.samplers.TPESampler(
            n_startup_trials=cfg.n_startup_trials, seed=seed, multivariate=True
        )
    if cfg.pruner == "none":
        pruner = optuna.pruners.NopPruner()
    else:
        pruner = optuna.pruners.MedianPruner(
            n_startup_trials=cfg.n_startup_trials, n_warmup_steps=cfg.n_evaluations // 3
        )
    study = optuna.load_study(
        study_name=study_name, storage=storage, sampler=sampler, pruner=pruner
    )
    shown = url if kind != "server" else url.split("@")[-1]  # no password in the log
    return study, worker, shown


class _Objective:
    def __init__(self, cfg, algo, base, where, scenario, n_timesteps, echo, optuna) -> None:
        self.cfg, self.algo, self.base, self.where = cfg, algo, base, where
        self.scenario, self.n_timesteps, self.echo, self.optuna = (
            scenario,
            n_timesteps,
            echo,
            optuna,
        )

    def __call__(self, trial: Any) -> float:
        from slimrl.train.vec_env import make_vec_env, validation_kwargs, wrap_normalize

        set_threads(self.cfg.num_threads)
        sampled = SAMPLERS[self.algo](trial)
        trial.set_user_attr("hyperparams", sampled)
        raw = {**self.base, **sampled}
        hp = preprocess(raw, self.algo, f"{self.where} (trial {trial.number})")
        kw = {k: v for k, v in hp.env_kwargs.items() if k not in ("scenario", "overrides")}
        env = wrap_normalize(
            make_vec_env(self.scenario, "train", hp.n_envs, None, kw), hp.normalize
        )
        n_eval = max(1, min(self.cfg.eval_episodes, MAX_EVAL_ENVS))
        eval_env = wrap_normalize(
            make_vec_env(self.scenario, "val", n_eval, VAL_SEED, validation_kwargs(kw)),
            hp.normalize,
            eval_env=True,
        )
        model = build_model(hp, env, seed=None, device=self.cfg.device)
        cb = _TrialCallback(
            eval_env,
            trial=trial,
            optuna=self.optuna,
            eval_seed=VAL_SEED,
            use_masking=self.algo == "maskable_ppo",
            n_eval_episodes=self.cfg.eval_episodes,
            eval_freq=max(self.n_timesteps // self.cfg.n_evaluations // hp.n_envs, 1),
            deterministic=True,
            verbose=0,
        )
        try:
            model.learn(self.n_timesteps, callback=cb)
        except (AssertionError, ValueError) as exc:  # NaNs from extreme samples: prune
            self.echo(f"trial {trial.number}: pruned ({str(exc).splitlines()[0]})")
            raise self.optuna.TrialPruned() from None
        finally:
            env.close()
            eval_env.close()
        if cb.is_pruned:
            self.echo(
                f"trial {trial.number}: pruned at {cb.num_timesteps:,} steps "
                f"(validation {cb.last_mean_reward:.3f})"
            )
            raise self.optuna.TrialPruned()
        value = cb.last_mean_reward
        if not math.isfinite(value):
            raise self.optuna.TrialPruned()
        self.echo(f"trial {trial.number}: validation reward {value:.3f} per episode")
        return value


def _trial_callback_class():
    from slimrl.train.callbacks import ValidationCallback

    class TrialCallback(ValidationCallback):
        """Report each validation to the trial; stop when the pruner says so."""

        def __init__(self, eval_env: Any, *, trial: Any, optuna: Any, **kwargs: Any) -> None:
            super().__init__(eval_env, **kwargs)
            self.trial, self.optuna = trial, optuna
            self.eval_idx = 0
            self.is_pruned = False

        def _on_step(self) -> bool:
            if self.eval_freq <= 0 or self.n_calls % self.eval_freq != 0:
                return True
            rewards, _ = self.evaluate()
            self.last_mean_reward = float(sum(rewards) / len(rewards))
            self.eval_idx += 1
            self.trial.report(self.last_mean_reward, self.eval_idx)
            if self.trial.should_prune():
                self.is_pruned = True
                return False
            return True

    return TrialCallback


def _TrialCallback(eval_env: Any, **kwargs: Any) -> Any:  # noqa: N802 - a class factory
    return _trial_callback_class()(eval_env, **kwargs)


__all__ = ["TuneConfig", "tune", "SAMPLERS", "require_optuna", "ENV_ID"]
