"""One training run in the RL Baselines3 Zoo layout.

::

    logs/<algo>/<scenario>_<N>/
        SlimSplit-v0.zip                final model
        best_model.zip                  best model on the validation split
        evaluations.npz                 validation rewards (SB3 EvalCallback format)
        checkpoints/rl_model_<n>_steps.zip (+ rl_model_vecnormalize_<n>_steps.pkl)
        SlimSplit-v0/config.yml         hyperparameters as read (Zoo format)
        SlimSplit-v0/args.yml           run arguments (algo, env, env_kwargs, seed, ...)
        SlimSplit-v0/vecnormalize.pkl   VecNormalize statistics (when normalize is on)
        command.txt                     the command line
        scenario.yml                    the resolved scenario
        progress.csv, tb/               training log and TensorBoard events
        eval_val/                       final comparison with the heuristics and the oracle

Everything that can be wrong with the scenario or the hyperparameters is checked (envs and model
built) before the run folder is created.
"""

from __future__ import annotations

import os
import re
import shlex
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from slimrl.errors import SlimrlError
from slimrl.io import write_text
from slimrl.paths import ENVS_DIR, resolve_scenario
from slimrl.train.hyperparams import (
    ENV_ID,
    Hyperparams,
    HyperparamsError,
    algo_class,
    canonical_algo,
    load_hyperparams,
    parse_python_kwargs,
)

#: seed of the validation episodes (the same for every run, so runs compare on equal terms)
VAL_SEED = 0
#: most validation envs stepped together
MAX_EVAL_ENVS = 16
#: heuristics and references the final evaluation compares the run with
FINAL_POLICIES = ("paper-ewma", "tuned-threshold", "rate-threshold", "oracle")


@dataclass
class TrainConfig:
    """Arguments of ``slimrl train`` (defaults as the CLI's). ``n_timesteps``/``n_envs`` <= 0
    mean "from the hyperparameter file"; ``save_freq`` <= 0 disables checkpoints."""

    algo: str = "ppo"
    env: str = "default"
    n_timesteps: int = -1
    seed: int = 0
    eval_freq: int = 10_000
    eval_episodes: int = 10
    n_envs: int = -1
    conf_file: str | None = None
    log_folder: str = "logs"
    tensorboard_log: str = ""
    set: list[str] = field(default_factory=list)
    hyperparams: dict[str, Any] = field(default_factory=dict)
    save_freq: int = 50_000
    progress: bool = True
    verbose: int = 1
    device: str = "cpu"
    num_threads: int = 1
    final_eval: bool = True
    final_eval_episodes: int | None = None
    save_reference: str | None = None
    resume: str | None = None
    command: list[str] = field(default_factory=list)


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


# -- public API -----------------------------------------------------------------------------------


def train(cfg: TrainConfig, echo: Callable[[str], None] = print) -> Path:
    """Train as ``cfg`` says; returns the run folder."""
    if not cfg.command:
        cfg.command = command_line(cfg)
    if not cfg.resume:
        return run(prepare(cfg, echo), echo)
    cfg = resume_config(cfg)
    try:
        p = prepare(cfg, echo)
    finally:
        Path(cfg.conf_file).unlink(missing_ok=True)  # the saved config, as a Zoo file
    return run(p, echo)


def prepare(cfg: TrainConfig, echo: Callable[[str], None] = print) -> Prepared:
    """Validate the scenario and hyperparameters, build the envs and the model (no folder yet)."""
    from slimrl.env.scenario import load_scenario, parse_set_args
    from slimrl.train.vec_env import make_vec_env, wrap_normalize

    _set_threads(cfg.num_threads)
    algo = canonical_algo(cfg.algo)
    hp = load_hyperparams(algo, cfg.conf_file, cfg.hyperparams)
    scenario_arg = cfg.env or "default"
    overrides = {**(hp.env_kwargs.get("overrides") or {}), **parse_set_args(cfg.set)}
    scenario = load_scenario(scenario_arg, overrides or None)
    label = scenario_label(scenario_arg)
    # what gym.make("SlimSplit-v0", **env_kwargs) needs to rebuild this env (args.yml)
    env_kwargs = {k: v for k, v in hp.env_kwargs.items() if k not in ("scenario", "overrides")}
    env_kwargs["scenario"] = label
    if overrides:
        env_kwargs["overrides"] = overrides
    # the vector envs get the loaded scenario, overrides applied
    make_kwargs = {k: v for k, v in env_kwargs.items() if k not in ("scenario", "overrides")}

    n_timesteps = cfg.n_timesteps if cfg.n_timesteps > 0 else hp.n_timesteps
    n_envs = cfg.n_envs if cfg.n_envs > 0 else hp.n_envs
    run_dir = Path(cfg.resume) if cfg.resume else next_run_dir(cfg.log_folder, algo, scenario.name)

    env = make_vec_env(scenario, "train", n_envs, cfg.seed, make_kwargs)
    n_eval = max(1, min(cfg.eval_episodes, MAX_EVAL_ENVS))
    try:
        eval_env = make_vec_env(scenario, "val", n_eval, VAL_SEED, make_kwargs)
    except SlimrlError as exc:
        raise type(exc)(f"validation split: {exc}") from None
    resumed_from = None
    if cfg.resume:
        ckpt, stats = latest_checkpoint(run_dir)
        env = wrap_normalize(env, hp.normalize, stats_path=stats)
        eval_env = wrap_normalize(eval_env, hp.normalize, eval_env=True, stats_path=stats)
        model = algo_class(algo).load(str(ckpt), env=env, device=cfg.device)
        env.seed(cfg.seed + model.num_timesteps)
        resumed_from = ckpt
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
    from stable_baselines3.common.callbacks import CheckpointCallback, ProgressBarCallback

    from slimrl.train.callbacks import (
        InfoMetricsCallback,
        SaveVecNormalizeCallback,
        ValidationCallback,
    )

    cfg, model, run_dir = p.cfg, p.model, p.run_dir
    params_dir = run_dir / ENV_ID
    params_dir.mkdir(parents=True, exist_ok=True)
    write_run_files(p)
    model.set_logger(_make_logger(run_dir, cfg.tensorboard_log, p.scenario.name))

    algo = canonical_algo(cfg.algo)
    callbacks: list[Any] = []
    if cfg.progress:
        callbacks.append(ProgressBarCallback())
    callbacks.append(InfoMetricsCallback(min_frames=max(2000, 2 * p.n_envs)))
    if cfg.save_freq > 0:
        callbacks.append(
            CheckpointCallback(
                save_freq=max(cfg.save_freq // p.n_envs, 1),
                save_path=str(run_dir / "checkpoints"),
                name_prefix="rl_model",
                save_vecnormalize=True,
            )
        )
    validation = None
    if cfg.eval_freq > 0:
        validation = ValidationCallback(
            p.eval_env,
            eval_seed=VAL_SEED,
            use_masking=algo == "maskable_ppo",
            print_fn=echo if cfg.verbose >= 1 else None,
            callback_on_new_best=SaveVecNormalizeCallback(params_dir / "vecnormalize.pkl"),
            n_eval_episodes=cfg.eval_episodes,
            eval_freq=max(cfg.eval_freq // p.n_envs, 1),
            log_path=str(run_dir),
            best_model_save_path=str(run_dir),
            deterministic=True,
            verbose=0,
        )
        if p.resumed_from is not None:
            validation.load_history(run_dir / "evaluations.npz")
        callbacks.append(validation)

    remaining = p.n_timesteps - (model.num_timesteps if p.resumed_from else 0)
    if p.resumed_from is not None:
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
        for cb in callbacks:
            if isinstance(cb, ProgressBarCallback) and hasattr(cb, "pbar"):
                cb.pbar.close()
    wall = time.perf_counter() - t0
    save_model(model, run_dir, checkpoint=interrupted)
    _append_wall_time(run_dir, wall, model.num_timesteps)
    p.env.close()
    if interrupted:
        echo(
            f"Interrupted at {model.num_timesteps:,} steps; saved. Continue with: "
            f"slimrl train --resume {run_dir}"
        )
        raise KeyboardInterrupt
    echo(f"Saved {run_dir / (ENV_ID + '.zip')} ({model.num_timesteps:,} steps, {wall:.0f} s)")
    if validation is not None and validation.evaluations_results:
        echo(f"Best validation reward: {validation.best_mean_reward:.2f} per episode")

    if cfg.final_eval:
        final_evaluation(
            run_dir,
            p.scenario_label,
            p.env_kwargs.get("overrides"),
            episodes=cfg.final_eval_episodes,
            progress=cfg.progress,
            echo=echo,
        )
    if cfg.save_reference:
        from slimrl.train.reference import reference_dir, save_reference

        out = save_reference(run_dir, reference_dir(cfg.save_reference))
        echo(f"Reference copy: {out}")
    return run_dir


def final_evaluation(
    run_dir: Path,
    scenario: str,
    overrides: Mapping[str, Any] | None = None,
    episodes: int | None = None,
    progress: bool = True,
    echo: Callable[[str], None] = print,
    policies: Sequence[str] = FINAL_POLICIES,
    split: str = "val",
) -> Any:
    """Compare the run with the heuristics and the oracle on ``split`` (table: RUN/eval_<split>)."""
    try:
        from slimrl.evaluate import print_summary, run_evaluation
    except ImportError as exc:
        echo(f"(final evaluation skipped: slimrl.evaluate is not available: {exc})")
        return None
    out = Path(run_dir) / f"eval_{split}"
    df = run_evaluation(
        scenario,
        split,
        [str(run_dir), *policies],
        out,
        episodes=episodes,
        seed=0,
        overrides=dict(overrides) if overrides else None,
        progress=progress,
    )
    echo(f"\nValidation split ({split}), {out}:")
    print_summary(df)
    return df


# -- run folder -----------------------------------------------------------------------------------


def scenario_label(name_or_path: str) -> str:
    """A shipped scenario's name (portable), else the scenario file's absolute path."""
    path = resolve_scenario(name_or_path)
    if path.parent == ENVS_DIR.resolve():
        return path.stem
    return str(path)


def next_run_dir(log_folder: str | os.PathLike, algo: str, name: str) -> Path:
    """``<log_folder>/<algo>/<name>_<N>`` with N one more than the highest existing (the Zoo's)."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "scenario"
    base = Path(log_folder) / algo
    ids = [0]
    if base.is_dir():
        pat = re.compile(rf"^{re.escape(safe)}_(\d+)$")
        ids += [int(m.group(1)) for d in base.iterdir() if (m := pat.match(d.name))]
    return base / f"{safe}_{max(ids) + 1}"


def write_run_files(p: Prepared) -> None:
    """``config.yml``, ``args.yml``, ``command.txt`` and ``scenario.yml`` (the Zoo's plus ours)."""
    params_dir = p.run_dir / ENV_ID
    config = dict(p.hp.raw)
    config["n_timesteps"] = p.n_timesteps
    config["n_envs"] = p.n_envs
    write_text(params_dir / "config.yml", _dump(config))
    cfg = p.cfg
    args = {
        "algo": canonical_algo(cfg.algo),
        "env": ENV_ID,
        "scenario": p.scenario_label,
        "env_kwargs": p.env_kwargs,
        "n_timesteps": p.n_timesteps,
        "n_envs": p.n_envs,
        "seed": cfg.seed,
        "eval_freq": cfg.eval_freq,
        "eval_episodes": cfg.eval_episodes,
        "save_freq": cfg.save_freq,
        "conf_file": str(cfg.conf_file) if cfg.conf_file else None,
        "hyperparams": cfg.hyperparams or None,
        "log_folder": str(cfg.log_folder),
        "tensorboard_log": cfg.tensorboard_log,
        "set": list(cfg.set),
        "device": cfg.device,
        "num_threads": cfg.num_threads,
        "trained_agent": str(p.resumed_from) if p.resumed_from else "",
    }
    import slimrl

    args["slimrl_version"] = slimrl.__version__
    write_text(params_dir / "args.yml", _dump(args))
    line = shlex.join(cfg.command or command_line(cfg))
    if p.resumed_from is not None and (p.run_dir / "command.txt").is_file():
        line = (p.run_dir / "command.txt").read_text().rstrip("\n") + "\n" + line
    write_text(p.run_dir / "command.txt", line + "\n")
    write_text(p.run_dir / "scenario.yml", _dump(p.scenario.to_dict()))


def save_model(model: Any, run_dir: Path, checkpoint: bool = False) -> None:
    """The final model and VecNormalize statistics; also a checkpoint (after an interruption)."""
    model.save(str(run_dir / ENV_ID))
    vec = model.get_vec_normalize_env()
    if vec is not None:
        vec.save(str(run_dir / ENV_ID / "vecnormalize.pkl"))
    if checkpoint:
        ck = run_dir / "checkpoints"
        ck.mkdir(exist_ok=True)
        model.save(str(ck / f"rl_model_{model.num_timesteps}_steps"))
        if vec is not None:
            vec.save(str(ck / f"rl_model_vecnormalize_{model.num_timesteps}_steps.pkl"))


def latest_checkpoint(run_dir: str | os.PathLike) -> tuple[Path, Path | None]:
    """The checkpoint with the most steps (else the final model) and its VecNormalize stats."""
    run_dir = Path(run_dir)
    best: tuple[int, Path] | None = None
    for path in (run_dir / "checkpoints").glob("rl_model_*_steps.zip"):
        m = re.fullmatch(r"rl_model_(\d+)_steps\.zip", path.name)
        if m and (best is None or int(m.group(1)) > best[0]):
            best = (int(m.group(1)), path)
    if best is not None:
        stats = run_dir / "checkpoints" / f"rl_model_vecnormalize_{best[0]}_steps.pkl"
        return best[1], stats if stats.is_file() else None
    final = run_dir / f"{ENV_ID}.zip"
    if final.is_file():
        stats = run_dir / ENV_ID / "vecnormalize.pkl"
        return final, stats if stats.is_file() else None
    raise SlimrlError(
        f"--resume {run_dir}: no checkpoint (checkpoints/rl_model_*_steps.zip) "
        f"and no final model ({ENV_ID}.zip)"
    )


def resume_config(cfg: TrainConfig) -> TrainConfig:
    """The saved arguments of the run in ``cfg.resume``, with the total steps ``cfg`` asks for."""
    from slimrl.export.run_dir import read_zoo_yaml

    run_dir = Path(cfg.resume)
    args_file = run_dir / ENV_ID / "args.yml"
    if not args_file.is_file():
        raise SlimrlError(f"--resume {run_dir}: not a slimrl run folder (no {ENV_ID}/args.yml)")
    try:
        args = read_zoo_yaml(args_file)
    except SlimrlError as exc:
        raise SlimrlError(f"--resume {run_dir}: {exc}") from None
    config = run_dir / ENV_ID / "config.yml"
    saved = TrainConfig(
        algo=str(args.get("algo", cfg.algo)),
        env=str(args.get("scenario", cfg.env)),
        n_timesteps=cfg.n_timesteps if cfg.n_timesteps > 0 else int(args.get("n_timesteps", -1)),
        seed=int(args.get("seed", cfg.seed)),
        eval_freq=int(args.get("eval_freq", cfg.eval_freq)),
        eval_episodes=int(args.get("eval_episodes", cfg.eval_episodes)),
        n_envs=int(args.get("n_envs", cfg.n_envs)),
        conf_file=None,
        log_folder=str(args.get("log_folder", cfg.log_folder)),
        tensorboard_log=cfg.tensorboard_log or str(args.get("tensorboard_log") or ""),
        set=list(args.get("set") or []),
        hyperparams={},
        save_freq=int(args.get("save_freq", cfg.save_freq)),
        progress=cfg.progress,
        verbose=cfg.verbose,
        device=cfg.device,
        num_threads=cfg.num_threads,
        final_eval=cfg.final_eval,
        final_eval_episodes=cfg.final_eval_episodes,
        save_reference=cfg.save_reference,
        resume=str(run_dir),
        command=cfg.command,
    )
    # the saved config.yml is the hyperparameter file of a resumed run
    saved.conf_file = str(_config_as_zoo_file(config, run_dir))
    return saved


# -- internals ------------------------------------------------------------------------------------


def _config_as_zoo_file(config: Path, run_dir: Path) -> Path:
    """``config.yml`` holds one env's hyperparameters; wrap them as a Zoo file keyed by env id."""
    from slimrl.export.run_dir import read_zoo_yaml

    if not config.is_file():
        raise SlimrlError(f"--resume {run_dir}: no {ENV_ID}/config.yml")
    hp = read_zoo_yaml(config)
    fd, name = tempfile.mkstemp(prefix="slimrl-resume-", suffix=".yml")
    os.close(fd)
    write_text(name, _dump({ENV_ID: hp}))
    return Path(name)


def _make_logger(run_dir: Path, tensorboard_log: str, name: str) -> Any:
    from stable_baselines3.common.logger import Logger, make_output_format

    tb_dir = Path(tensorboard_log) / ENV_ID / run_dir.name if tensorboard_log else run_dir / "tb"
    tb_dir.mkdir(parents=True, exist_ok=True)
    formats = [
        make_output_format("csv", str(run_dir)),
        make_output_format("tensorboard", str(tb_dir)),
    ]
    return Logger(folder=str(run_dir), output_formats=formats)


def _append_wall_time(run_dir: Path, wall_s: float, steps: int) -> None:
    path = run_dir / "train_time.yml"
    data: dict[str, Any] = {}
    if path.is_file():
        data = yaml.safe_load(path.read_text()) or {}
    sessions = list(data.get("sessions", []))
    sessions.append({"wall_s": round(wall_s, 2), "num_timesteps": int(steps)})
    data = {"wall_s": round(sum(s["wall_s"] for s in sessions), 2), "sessions": sessions}
    write_text(path, yaml.safe_dump(data, sort_keys=False))


def _set_threads(n: int) -> None:
    if n and n > 0:
        import torch

        torch.set_num_threads(int(n))


def _dump(data: Mapping[str, Any]) -> str:
    def plain(v: Any) -> Any:
        if isinstance(v, Mapping):
            return {str(k): plain(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [plain(x) for x in v]
        if isinstance(v, Path):
            return str(v)
        if hasattr(v, "item") and callable(v.item):
            return v.item()
        return v

    return yaml.safe_dump(plain(dict(data)), sort_keys=True, default_flow_style=False)


def parse_hyperparams_args(items: Sequence[str] | None) -> dict[str, Any]:
    """Zoo ``-params key:value ...`` (values as YAML; ``policy_kwargs`` strings kept)."""
    out: dict[str, Any] = {}
    for item in items or ():
        key, sep, raw = str(item).partition(":")
        if not sep or not key.strip():
            raise HyperparamsError(f"-params {item!r}: expected key:value (e.g. gamma:0.9)")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            value = raw
        if isinstance(value, str) and value.startswith("dict("):
            parse_python_kwargs(value, f"-params {key}")  # validate early
        out[key.strip()] = value
    return out


#: TrainConfig field -> its ``slimrl train`` flag
_FLAGS = {
    "algo": "--algo",
    "env": "--env",
    "n_timesteps": "-n",
    "seed": "--seed",
    "eval_freq": "--eval-freq",
    "eval_episodes": "--eval-episodes",
    "n_envs": "--n-envs",
    "conf_file": "--conf-file",
    "log_folder": "-f",
    "tensorboard_log": "--tensorboard-log",
    "save_freq": "--save-freq",
    "device": "--device",
    "num_threads": "--num-threads",
    "verbose": "--verbose",
    "final_eval_episodes": "--final-eval-episodes",
    "save_reference": "--save-reference",
    "resume": "--resume",
}


def command_line(cfg: TrainConfig) -> list[str]:
    """The ``slimrl train`` command that reproduces ``cfg`` (options that differ from defaults)."""
    default = TrainConfig()
    cmd = ["slimrl", "train"]
    for name, flag in _FLAGS.items():
        value = getattr(cfg, name)
        if value != getattr(default, name):
            cmd += [flag, str(value)]
    for item in cfg.set:
        cmd += ["--set", item]
    if cfg.hyperparams:
        cmd += ["-params", *(f"{k}:{_flow(v)}" for k, v in cfg.hyperparams.items())]
    if not cfg.progress:
        cmd.append("--no-progress")
    if not cfg.final_eval:
        cmd.append("--no-final-eval")
    return cmd


def _flow(value: Any) -> str:
    if isinstance(value, str):
        return value
    return (
        yaml.safe_dump(value, default_flow_style=True, width=10_000)
        .strip()
        .removesuffix("...")
        .strip()
    )
