"""One training run: validate, build the envs and the model, train, save, compare.

Runs land in ``<log folder>/<algo>/SlimSplit-v0_<N>/``, the RL Baselines3 Zoo's name (so
``python -m rl_zoo3.enjoy`` and ``rl_zoo3.plots`` find them; layout owned by :mod:`slimrl.runs`).
The scenario stays visible in ``args.yml`` / ``scenario.yml`` and in the run's name
(``<algo>_<scenario>_<N>``: TensorBoard's run folder and a comment in ``command.txt``). Episodes
of the training envs go to ``0.monitor.csv`` (SB3 ``Monitor`` format; a resumed session adds
``1.monitor.csv``, ...). Everything that can be wrong with the scenario or the hyperparameters is
checked (envs and model built) before the run folder is created; the folder is then created
exclusively and locked while training writes it. Checkpoints are taken between rollouts with
the training state, so ``--resume`` continues bit for bit (:mod:`slimrl.runs.checkpoint`).
"""

from __future__ import annotations

import math
import re
import shlex
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import slimrl
from slimrl.errors import HyperparamsError, RunError, SlimrlError
from slimrl.evaluate import print_summary, run_evaluation
from slimrl.paths import ENVS_DIR, resolve_scenario
from slimrl.runs import ENV_ID, algo_class, canonical_algo, next_run_dir
from slimrl.runs.checkpoint import CheckpointCallback, SaveVecNormalizeCallback
from slimrl.runs.layout import (
    ARGS_FILE,
    CONFIG_FILE,
    EVALUATIONS_FILE,
    MODEL_FILE,
    PARAMS_DIR,
    VECNORMALIZE_FILE,
)
from slimrl.runs.lock import RunLock, create_run_dir, lock_run_dir
from slimrl.runs.reference import reference_dir
from slimrl.runs.resume import load_for_resume
from slimrl.runs.write import append_wall_time, save_model, write_run_files
from slimrl.runs.zoo_yaml import read_zoo_yaml
from slimrl.scenario import Scenario, load_scenario, parse_set_args, scenario_digest
from slimrl.train.callbacks import InfoMetricsCallback, ValidationCallback, log_hparams
from slimrl.train.card import save_reference_with_card
from slimrl.train.config import MAX_EVAL_ENVS, VAL_SEED, TrainConfig, command_line
from slimrl.train.hyperparams import Hyperparams, check_run_size, load_hyperparams
from slimrl.train.vec_env import (
    attach_monitor_file,
    make_vec_env,
    next_monitor_file,
    validation_kwargs,
    wrap_normalize,
)

#: heuristics the final evaluation compares the run with (optimal, oracle and the best static
#: mode are always added)
FINAL_POLICIES = ("paper-ewma", "tuned-threshold", "tuned-mpc")


@dataclass
class Prepared:
    """Everything built before training: validated inputs, envs and the model."""

    cfg: TrainConfig
    hp: Hyperparams
    scenario: Any
    scenario_label: str
    overrides: dict[str, Any]
    env_kwargs: dict[str, Any]
    n_timesteps: int
    n_envs: int
    env: Any
    eval_env: Any
    model: Any
    run_dir: Path
    resumed_from: Path | None = None
    resume_state: Any = None  # its training state (slimrl.runs.state.TrainState)
    #: the run folder's lock (held from prepare for --resume, from run for a new run)
    lock: RunLock | None = None


# -- public API -----------------------------------------------------------------------------------


def train(cfg: TrainConfig, echo: Callable[[str], None] = print) -> Path:
    """Train as ``cfg`` says; returns the run folder."""
    if not cfg.command:
        cfg.command = command_line(cfg)
    if cfg.resume:
        cfg = resume_config(cfg)
    p = prepare(cfg, echo)
    try:
        return run(p, echo)
    finally:
        if p.lock is not None:
            p.lock.release()


def prepare(cfg: TrainConfig, echo: Callable[[str], None] = print) -> Prepared:
    """Validate the scenario and hyperparameters, build the envs and the model (no folder yet)."""
    lock = lock_run_dir(cfg.resume) if cfg.resume else None  # refuse a run still training
    try:
        return _prepare(cfg, lock)
    except BaseException:
        if lock is not None:
            lock.release()
        raise


def _prepare(cfg: TrainConfig, lock: RunLock | None) -> Prepared:
    set_threads(cfg.num_threads)
    algo = canonical_algo(cfg.algo)
    if cfg.resume:
        run_dir = Path(cfg.resume)
        hp = load_hyperparams(algo, _saved_hyperparams(run_dir), cfg.hyperparams)  # as trained
    else:
        hp = load_hyperparams(algo, cfg.conf_file, cfg.hyperparams)
    scenario_arg = cfg.env or "default"
    overrides = {**(hp.env_kwargs.get("overrides") or {}), **parse_set_args(cfg.set)}
    label = scenario_label(scenario_arg)
    if cfg.resume and (Path(cfg.resume) / "scenario.yml").is_file():
        scenario = load_scenario(Path(cfg.resume) / "scenario.yml")  # as it was trained
    else:
        scenario = load_scenario(scenario_arg, overrides or None)
    # what gym.make("SlimSplit-v0", **env_kwargs) needs to rebuild this env (args.yml)
    env_kwargs = {k: v for k, v in hp.env_kwargs.items() if k not in ("scenario", "overrides")}
    env_kwargs["scenario"] = label
    if overrides:
        env_kwargs["overrides"] = overrides
    # the vector envs get the loaded scenario, overrides applied
    make_kwargs = {k: v for k, v in env_kwargs.items() if k not in ("scenario", "overrides")}

    n_timesteps = cfg.n_timesteps if cfg.n_timesteps > 0 else hp.n_timesteps
    n_envs = cfg.n_envs if cfg.n_envs > 0 else hp.n_envs
    check_run_size(hp, n_envs, n_timesteps)
    run_dir = Path(cfg.resume) if cfg.resume else next_run_dir(cfg.log_folder, algo, ENV_ID)

    env = make_vec_env(scenario, "train", n_envs, cfg.seed, make_kwargs)
    n_eval = max(1, min(cfg.eval_episodes, MAX_EVAL_ENVS))
    try:
        eval_env = make_vec_env(scenario, "val", n_eval, VAL_SEED, validation_kwargs(make_kwargs))
    except SlimrlError as exc:
        raise type(exc)(f"validation split: {exc}") from None
    resumed_from = resume_state = None
    if cfg.resume:
        env = wrap_normalize(env, hp.normalize)
        eval_env = wrap_normalize(eval_env, hp.normalize, eval_env=True)
        model, point = load_for_resume(
            run_dir,
            lambda path: algo_class(algo).load(str(path), env=env, device=cfg.device),
            eval_env,
            normalize=hp.normalize is not None,
            reseed=lambda m: env.seed(cfg.seed + m.num_timesteps),  # older runs: no saved state
        )
        resumed_from, resume_state = point.model, point.train_state
    else:
        env = wrap_normalize(env, hp.normalize)
        eval_env = wrap_normalize(eval_env, hp.normalize, eval_env=True)
        model = build_model(hp, env, cfg.seed, cfg.device)
    return Prepared(
        cfg,
        hp,
        scenario,
        label,
        overrides,
        env_kwargs,
        n_timesteps,
        n_envs,
        env,
        eval_env,
        model,
        run_dir,
        resumed_from,
        resume_state,
        lock,
    )


def build_model(hp: Hyperparams, env: Any, seed: int, device: str = "cpu") -> Any:
    """The algorithm with ``hp``'s arguments; constructor errors name the hyperparameter file."""
    cls = algo_class(hp.algo)
    try:
        return cls(env=env, seed=seed, verbose=0, device=device, **hp.model_kwargs)
    except (TypeError, ValueError, AssertionError, KeyError) as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise HyperparamsError(f"{hp.source}: {cls.__name__} rejects these values: {msg}") from None


def run(p: Prepared, echo: Callable[[str], None] = print) -> Path:
    """Train a prepared run, save it, evaluate it on the validation split."""
    from stable_baselines3.common.callbacks import ProgressBarCallback

    if p.lock is None:  # a new run: its folder, created exclusively (next N if taken), locked
        p.run_dir, p.lock = create_run_dir(p.run_dir)
    cfg, model, run_dir = p.cfg, p.model, p.run_dir
    params_dir = run_dir / PARAMS_DIR
    write_files(p)
    attach_monitor_file(p.env, next_monitor_file(run_dir), ENV_ID)
    model.set_logger(_make_logger(run_dir, cfg.tensorboard_log, run_name(p)))

    algo = canonical_algo(cfg.algo)
    callbacks: list[Any] = []
    if cfg.progress:
        callbacks.append(ProgressBarCallback())
    callbacks.append(InfoMetricsCallback(min_frames=max(2000, 2 * p.n_envs)))
    # checkpoints between rollouts (cfg.save_freq <= 0: none); keeps the rollout start for Ctrl-C
    checkpoints = CheckpointCallback(run_dir, cfg.save_freq, p.resume_state)
    callbacks.append(checkpoints)
    validation = None
    if cfg.eval_freq > 0:
        validation = ValidationCallback(
            p.eval_env,
            eval_seed=VAL_SEED,
            use_masking=algo == "maskable_ppo",
            print_fn=echo if cfg.verbose >= 1 else None,
            callback_on_new_best=SaveVecNormalizeCallback(params_dir / VECNORMALIZE_FILE),
            n_eval_episodes=cfg.eval_episodes,
            eval_freq=max(cfg.eval_freq // p.n_envs, 1),
            log_path=str(run_dir),
            best_model_save_path=str(run_dir),
            deterministic=True,
            verbose=0,
        )
        if p.resumed_from is not None:
            validation.load_history(run_dir / EVALUATIONS_FILE, until=model.num_timesteps)
        callbacks.append(validation)

    remaining = p.n_timesteps - (model.num_timesteps if p.resumed_from else 0)
    if p.resumed_from is not None:
        for cb in callbacks:  # step-count cadences continue where the run stopped
            cb.n_calls = model.num_timesteps // p.n_envs
        echo(f"Resuming {run_dir} from {p.resumed_from.name} at {model.num_timesteps:,} steps")
    echo(
        f"Training {type(model).__name__} on {p.scenario_label} ({p.n_envs} envs, "
        f"{p.n_timesteps:,} steps) -> {run_dir}"
    )
    t0 = time.perf_counter()
    interrupted = False
    try:
        if remaining > 0:
            model.learn(
                total_timesteps=remaining,
                callback=callbacks,
                reset_num_timesteps=p.resumed_from is None,
                progress_bar=False,
            )
    except KeyboardInterrupt:
        interrupted = True
        checkpoints.rollback()  # back to the start of the rollout in progress: resumable exactly
        for cb in callbacks:
            if isinstance(cb, ProgressBarCallback) and hasattr(cb, "pbar"):
                cb.pbar.close()
    wall = time.perf_counter() - t0
    save_model(model, run_dir, checkpoint=interrupted, state=checkpoints.pending_state())
    append_wall_time(run_dir, wall, model.num_timesteps)
    p.env.close()
    if interrupted:
        write_hparams(p, validation)
        echo(
            f"Interrupted; saved the state at {model.num_timesteps:,} steps (the last rollout "
            f"boundary). Continue with: slimrl train --resume {run_dir}"
        )
        raise KeyboardInterrupt
    echo(f"Saved {run_dir / MODEL_FILE} ({model.num_timesteps:,} steps, {wall:.0f} s)")
    if validation is not None and validation.evaluations_results:
        echo(f"Best validation reward: {validation.best_mean_reward:.2f} per episode")

    final = None
    if cfg.final_eval:
        final = final_evaluation(
            run_dir,
            p.scenario,
            episodes=cfg.final_eval_episodes,
            progress=cfg.progress,
            echo=echo,
        )
    write_hparams(p, validation, final)
    if cfg.save_reference:
        out = save_reference_with_card(run_dir, reference_dir(cfg.save_reference))
        echo(f"Reference copy: {out} (model card: {out / 'README.md'})")
    return run_dir


def final_evaluation(
    run_dir: Path,
    scenario: Scenario | str,
    episodes: int | None = None,
    progress: bool = True,
    echo: Callable[[str], None] = print,
    policies: Sequence[str] = FINAL_POLICIES,
    split: str = "val",
) -> Any:
    """Compare the run with the heuristics and the oracle on ``split`` (table: RUN/eval_<split>)."""
    out = Path(run_dir) / f"eval_{split}"
    df = run_evaluation(
        scenario,
        split,
        [str(run_dir), *policies],
        out,
        episodes=episodes,
        seed=0,
        progress=progress,
    )
    echo(f"\nValidation split ({split}), {out}:")
    print_summary(df)
    return df


# -- run folder -----------------------------------------------------------------------------------


def run_name(p: Prepared) -> str:
    """``<algo>_<scenario>_<N>``, ``N`` the run folder's: the name TensorBoard and
    ``command.txt`` show."""
    algo = canonical_algo(p.cfg.algo)
    scenario = re.sub(r"[^A-Za-z0-9.-]+", "-", p.scenario.name).strip("-") or "scenario"
    return f"{algo}_{scenario}_{p.run_dir.name.rsplit('_', 1)[-1]}"


def scenario_label(name_or_path: str) -> str:
    """A shipped scenario's name (portable), else the scenario file's absolute path."""
    path = resolve_scenario(name_or_path)
    if path.parent == ENVS_DIR.resolve():
        return path.stem
    return str(path)


def write_files(p: Prepared) -> None:
    """The run's ``config.yml``, ``args.yml``, ``command.txt`` and ``scenario.yml``."""
    config = dict(p.hp.raw)
    config["n_timesteps"] = p.n_timesteps
    config["n_envs"] = p.n_envs
    cfg = p.cfg
    args = {k: v for k, v in asdict(cfg).items() if k not in ("command", "env", "resume")}
    args.update(
        algo=canonical_algo(cfg.algo),
        env=ENV_ID,
        scenario=p.scenario_label,
        scenario_digest=scenario_digest(p.scenario),
        env_kwargs=p.env_kwargs,
        n_timesteps=p.n_timesteps,
        n_envs=p.n_envs,
        conf_file=str(cfg.conf_file) if cfg.conf_file else None,
        hyperparams=cfg.hyperparams or None,
        log_folder=str(cfg.log_folder),
        trained_agent=str(p.resumed_from) if p.resumed_from else "",
        slimrl_version=slimrl.__version__,
    )
    args["run_name"] = run_name(p)
    write_run_files(
        p.run_dir,
        config,
        args,
        f"{shlex.join(cfg.command or command_line(cfg))}  # {run_name(p)}",
        p.scenario,
        append_command=p.resumed_from is not None,
    )


#: columns of the final comparison's row for the run that become HParams metrics
HPARAM_METRICS = (
    "reward_per_s",
    "score",
    "diff_per_s",
    "reward_per_s_iqm",
    "on_time_rate",
    "miss_rate",
    "accuracy_mean",
    "e2e_p95_ms",
    "energy_j_mean",
)


def write_hparams(p: Prepared, validation: Any = None, final: Any = None) -> dict[str, float]:
    """The TensorBoard HParams record: hyperparameters and run settings against the final
    validation metrics (``final_<column>`` of the end-of-training comparison, when it ran, and
    ``val_<metric>`` of the last validation)."""
    hp: dict[str, Any] = {
        "algo": canonical_algo(p.cfg.algo),
        "scenario": p.scenario_label,
        "seed": p.cfg.seed,
        "n_envs": p.n_envs,
        "n_timesteps": p.n_timesteps,
        "run": run_name(p),
    }
    hp.update({k: v for k, v in p.hp.raw.items() if k not in ("n_envs", "n_timesteps")})
    for key, value in p.overrides.items():
        hp[f"set.{key}"] = value
    metrics: dict[str, float] = {}
    if validation is not None:
        for key in ("reward_per_s", "on_time_per_s", "miss_rate"):
            if key in validation.last_episodes:
                metrics[f"val_{key}"] = validation.last_episodes[key]
        if validation.evaluations_results:
            metrics["val_best_mean_reward"] = float(validation.best_mean_reward)
    if final is not None:
        rows = final[final["policy"] == str(p.run_dir)]
        if len(rows):
            row = rows.iloc[0]
            for key in HPARAM_METRICS:
                value = row.get(key)
                if value is not None and not (isinstance(value, float) and math.isnan(value)):
                    metrics[f"final_{key}"] = float(value)
    return log_hparams(p.model.logger, hp, metrics, step=int(p.model.num_timesteps))


def resume_config(cfg: TrainConfig) -> TrainConfig:
    """The saved arguments of the run in ``cfg.resume``, with the total steps ``cfg`` asks for."""
    run_dir = Path(cfg.resume)
    args_file = run_dir / PARAMS_DIR / ARGS_FILE
    if not args_file.is_file():
        raise RunError(f"--resume {run_dir}: not a slimrl run folder (no {ENV_ID}/{ARGS_FILE})")
    try:
        args = read_zoo_yaml(args_file)
    except SlimrlError as exc:
        raise RunError(f"--resume {run_dir}: {exc}") from None
    keys = ("algo", "seed", "eval_freq", "eval_episodes", "n_envs", "log_folder", "save_freq")
    saved = {k: args[k] for k in keys if args.get(k) is not None}
    return _resumed(cfg, args, saved)


def _resumed(cfg: TrainConfig, args: Mapping[str, Any], saved: Mapping[str, Any]) -> TrainConfig:
    values = {**asdict(cfg), **saved}
    values.update(
        env=str(args.get("scenario", cfg.env)),
        n_timesteps=cfg.n_timesteps if cfg.n_timesteps > 0 else int(args.get("n_timesteps", -1)),
        conf_file=None,
        tensorboard_log=cfg.tensorboard_log or str(args.get("tensorboard_log") or ""),
        set=list(args.get("set") or []),
        hyperparams={},
        resume=str(cfg.resume),
    )
    return TrainConfig(**values)


def _saved_hyperparams(run_dir: Path) -> dict[str, Any]:
    """A resumed run's ``config.yml`` (one env's hyperparameters)."""
    config = run_dir / PARAMS_DIR / CONFIG_FILE
    if not config.is_file():
        raise RunError(f"--resume {run_dir}: no {ENV_ID}/{CONFIG_FILE}")
    return read_zoo_yaml(config)


def _make_logger(run_dir: Path, tensorboard_log: str, name: str) -> Any:
    """progress.csv in the run folder; TensorBoard events in ``<-tb DIR>/SlimSplit-v0/<name>``
    (the Zoo's folder per env id) or ``<run>/tb/<name>``: the run shows as ``name``."""
    from stable_baselines3.common.logger import Logger, make_output_format

    tb_dir = Path(tensorboard_log) / ENV_ID / name if tensorboard_log else run_dir / "tb" / name
    tb_dir.mkdir(parents=True, exist_ok=True)
    formats = [
        make_output_format("csv", str(run_dir)),
        make_output_format("tensorboard", str(tb_dir)),
    ]
    return Logger(folder=str(run_dir), output_formats=formats)


def set_threads(n: int) -> None:
    """Torch's intra-op threads (``n <= 0``: leave torch's default)."""
    if n and n > 0:
        import torch

        torch.set_num_threads(int(n))
