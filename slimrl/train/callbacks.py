"""Training callbacks: every info term as a TensorBoard metric, and the validation evaluation.

TensorBoard tags keep episodes and frames apart:

* ``episode/train/...`` and ``episode/val/...`` (:class:`EpisodeStats`): per episode of trace
  time, as the evaluator reports them: return and length, ``reward_per_s`` (reward per second of
  trace) and its interquartile mean over episodes, ``on_time_per_s``, ``miss_rate``;
* ``frame/train/...`` and ``frame/val/...`` (:class:`InfoStats`): per frame, every info term
  (accuracy, on-time rate, e2e p50/p95, energy, reward terms, the share of each k and bits);
* ``eval/mean_reward`` (SB3's, per episode) and ``hparams/...`` with the HParams record
  (:func:`log_hparams`) at the end of a run.

:class:`InfoMetricsCallback` logs the training side, :class:`ValidationCallback` is SB3's
``EvalCallback`` on the validation split (same episodes at every evaluation: the eval env is
reseeded) with ``best_model.zip``, ``evaluations.npz``, synced VecNormalize statistics, action
masks for MaskablePPO, and a history that survives ``--resume``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback, EvalCallback
from stable_baselines3.common.vec_env import VecEnv, sync_envs_normalization

from slimrl.env.slimsplit import FRAME_INFO_KEYS
from slimrl.errors import RunError
from slimrl.runs.files import save_model_file
from slimrl.runs.layout import BEST_MODEL_FILE
from slimrl.validate import read_npz

#: numeric info terms averaged per frame (``dropped`` is one of the frame record's)
MEAN_KEYS = (*FRAME_INFO_KEYS, "k", "bits")
#: the reward terms of a frame (the info has no ``reward`` key: it is their sum)
REWARD_TERMS = ("reward_accuracy", "reward_miss", "reward_energy")
#: TensorBoard tag prefixes
EPISODE_TAG, FRAME_TAG = "episode", "frame"


class EpisodeStats:
    """Per-episode totals from per-frame infos, summarised as the evaluator's rates.

    ``span_s``: the trace time an episode covers (``episode_s`` rounded up to the time unit);
    without it no per-second rate is reported.
    """

    def __init__(self, span_s: float | None = None) -> None:
        self.span_s = span_s
        self._open: dict[int, np.ndarray] = {}
        self.reset()

    #: running totals per env: return, frames, on time, dropped arrivals
    _FIELDS = 4

    def reset(self) -> None:
        """Forget finished episodes (episodes in progress keep their totals)."""
        self.episodes: list[tuple[float, float, float, float]] = []

    def add(self, env_index: int, info: Mapping[str, Any], done: bool) -> None:
        """One frame of env ``env_index``; ``done`` closes its episode."""
        if "e2e_ms" in info:
            acc = self._open.setdefault(env_index, np.zeros(self._FIELDS))
            acc[0] += sum(float(info.get(k, 0.0)) for k in REWARD_TERMS)
            acc[1] += 1
            acc[2] += float(info.get("on_time", 0.0))
            acc[3] += float(info.get("dropped", 0.0))
        if done and env_index in self._open:
            self.episodes.append(tuple(self._open.pop(env_index).tolist()))

    def add_step(self, infos: Iterable[Mapping[str, Any]], dones: Iterable[bool]) -> None:
        """One vector step: an info and a done flag per env."""
        for i, (info, done) in enumerate(zip(infos, dones, strict=False)):
            self.add(i, info, bool(done))

    def add_arrays(self, values: Mapping[str, np.ndarray], dones: np.ndarray) -> None:
        """One vector step from the vector env's arrays (every row a frame): the same sums as
        :meth:`add` per row, in the same order, without a dict per env."""
        n = len(dones)
        acc = getattr(self, "_acc", None)
        if acc is None or acc.shape[0] != n:
            acc = self._acc = np.zeros((n, self._FIELDS))
        r = 0.0 + np.asarray(values[REWARD_TERMS[0]], dtype=np.float64)
        for k in REWARD_TERMS[1:]:
            r = r + np.asarray(values[k], dtype=np.float64)
        acc[:, 0] += r
        acc[:, 1] += 1
        acc[:, 2] += np.asarray(values["on_time"], dtype=np.float64)
        acc[:, 3] += np.asarray(values["dropped"], dtype=np.float64)
        done = np.flatnonzero(dones)
        if done.size:
            self.episodes.extend(tuple(row) for row in acc[done].tolist())
            acc[done] = 0.0

    def summary(self) -> dict[str, float]:
        """Metric name -> value over the finished episodes (empty when there are none)."""
        if not self.episodes:
            return {}
        g, n, on_time, dropped = np.asarray(self.episodes, dtype=np.float64).T
        arrivals = n.sum() + dropped.sum()
        out = {
            "episodes": float(len(g)),
            "return_mean": float(g.mean()),
            "length_mean": float(n.mean()),
            "miss_rate": float((n.sum() - on_time.sum() + dropped.sum()) / max(arrivals, 1.0)),
        }
        if self.span_s and self.span_s > 0:
            span = float(self.span_s)
            out["reward_per_s"] = float(g.sum() / (span * len(g)))
            out["reward_per_s_iqm"] = float(_iqm(g / span))
            out["on_time_per_s"] = float(on_time.sum() / (span * len(g)))
        return out

    def record(self, logger: Any, prefix: str) -> dict[str, float]:
        """Record the summary under ``prefix/`` in an SB3 logger; returns it."""
        summary = self.summary()
        for name, value in summary.items():
            logger.record(f"{prefix}/{name}", value)
        return summary


def _iqm(x: np.ndarray) -> float:
    """Interquartile mean (25 % trimmed each side), as ``scipy.stats.trim_mean(x, 0.25)``."""
    from scipy import stats

    return float(stats.trim_mean(np.asarray(x, dtype=np.float64), 0.25))


class InfoStats:
    """Per-frame info values, summarised as metrics (means, e2e percentiles, k / bits shares)."""

    def __init__(
        self,
        keys: Iterable[str] = MEAN_KEYS,
        k_values: Iterable[int] = (),
        bits_values: Iterable[int] = (),
    ) -> None:
        self.keys = tuple(keys)
        self.values = {"k": tuple(k_values), "bits": tuple(bits_values)}
        self.reset()

    def reset(self) -> None:
        self._values: dict[str, list[float]] = {k: [] for k in self.keys}
        self._chunks: dict[str, list[np.ndarray]] = {k: [] for k in self.keys}
        self.frames = 0

    def add(self, info: Mapping[str, Any]) -> None:
        """One frame's info (ignored when it has no ``e2e_ms``: a reset info)."""
        if "e2e_ms" not in info:
            return
        self.frames += 1
        for key in self.keys:
            v = info.get(key)
            if v is not None:
                self._values[key].append(float(v))

    def add_many(self, infos: Iterable[Mapping[str, Any]]) -> None:
        for info in infos:
            self.add(info)

    def add_arrays(self, values: Mapping[str, np.ndarray]) -> None:
        """One vector step's frames, one array per key (every row a frame)."""
        n = None
        for key in self.keys:
            v = values.get(key)
            if v is not None:
                arr = np.asarray(v, dtype=np.float64)
                self._chunks[key].append(arr)
                n = arr.shape[0]
        if n is not None:
            self.frames += n

    def _array(self, key: str) -> np.ndarray:
        parts = [*self._chunks.get(key, ())]
        if self._values.get(key):
            parts.append(np.asarray(self._values[key], dtype=np.float64))
        return np.concatenate(parts) if parts else np.zeros(0)

    def summary(self) -> dict[str, float]:
        """Metric name -> value (empty when no frame was added)."""
        if not self.frames:
            return {}
        out: dict[str, float] = {"frames": float(self.frames)}
        arrays = {k: a for k in self.keys if (a := self._array(k)).size}
        for key, arr in arrays.items():
            name = {"on_time": "on_time_rate", "dropped": "drop_rate"}.get(key, key)
            out[f"{name}_mean" if key in ("k", "bits") else name] = float(arr.mean())
        if "e2e_ms" in arrays:
            p50, p95 = np.percentile(arrays["e2e_ms"], [50, 95])
            out["e2e_p50_ms"], out["e2e_p95_ms"] = float(p50), float(p95)
        parts = [
            arrays[k] for k in ("reward_accuracy", "reward_miss", "reward_energy") if k in arrays
        ]
        if len(parts) == 3 and len({len(p) for p in parts}) == 1:
            out["reward"] = float((parts[0] + parts[1] + parts[2]).mean())
        for key in ("k", "bits"):
            if key in arrays:
                chosen = arrays[key].astype(int)
                values = sorted(set(self.values[key]) | set(np.unique(chosen).tolist()))
                for v in values:
                    out[f"{key}_share/{key}={v}"] = float(np.mean(chosen == v))
        return out

    def histograms(self) -> dict[str, np.ndarray]:
        """The chosen k and bits values (for TensorBoard histograms)."""
        return {k: a for k in ("k", "bits") if k in self.keys and (a := self._array(k)).size}

    def record(self, logger: Any, prefix: str) -> dict[str, float]:
        """Record the summary under ``prefix/`` in an SB3 logger; returns it."""
        summary = self.summary()
        for name, value in summary.items():
            logger.record(f"{prefix}/{name}", value)
        try:
            import torch as th

            for name, arr in self.histograms().items():
                logger.record(
                    f"{prefix}/{name}_hist",
                    th.as_tensor(arr),
                    exclude=("stdout", "log", "json", "csv"),
                )
        except ImportError:  # pragma: no cover - torch always comes with SB3
            pass
        return summary


class InfoMetricsCallback(BaseCallback):
    """Log the training frames (``frame/train/...``) once at least ``min_frames`` were
    collected, and the training episodes finished by then (``episode/train/...``)."""

    def __init__(self, min_frames: int = 2000, verbose: int = 0) -> None:
        super().__init__(verbose)
        self.min_frames = int(min_frames)
        self.stats = InfoStats()
        self.episodes = EpisodeStats()

    def _init_callback(self) -> None:
        _set_modes(self.stats, self.training_env)
        self.episodes.span_s = episode_span_s(self.training_env)
        self._adapter = _vector_adapter(self.training_env)

    def _on_step(self) -> bool:
        dones = self.locals.get("dones")
        if self._adapter is not None and dones is not None:  # the arrays, no dict per env
            infos = self._adapter.last_infos
            self.stats.add_arrays(infos)
            self.episodes.add_arrays(infos, np.asarray(dones, dtype=bool))
            return True
        infos = self.locals.get("infos")
        if infos:
            self.stats.add_many(infos)
            if dones is not None:
                self.episodes.add_step(infos, dones)
        return True

    def _on_rollout_end(self) -> None:
        if self.stats.frames >= self.min_frames:
            self.stats.record(self.logger, f"{FRAME_TAG}/train")
            self.stats.reset()
            self.episodes.record(self.logger, f"{EPISODE_TAG}/train")
            self.episodes.reset()


class ValidationCallback(EvalCallback):
    """``EvalCallback`` on the validation split, reseeded to ``eval_seed`` before each evaluation.

    Logs ``eval/mean_reward`` (per episode, as SB3), ``episode/val/...`` (per episode: reward per
    second of trace, ...) and ``frame/val/...`` (per frame); ``last_summary`` and
    ``last_episodes`` hold the latest of each. ``use_masking`` evaluates MaskablePPO with its
    action masks.
    """

    def __init__(
        self,
        eval_env: VecEnv,
        *,
        eval_seed: int = 0,
        use_masking: bool = False,
        print_fn: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(eval_env, **kwargs)
        self.eval_seed = int(eval_seed)
        self.use_masking = bool(use_masking)
        self.print_fn = print_fn
        self.stats = InfoStats()
        self.episodes = EpisodeStats()
        self.last_summary: dict[str, float] = {}
        self.last_episodes: dict[str, float] = {}

    def _init_callback(self) -> None:
        super()._init_callback()
        _set_modes(self.stats, self.eval_env)
        self.episodes.span_s = episode_span_s(self.eval_env)

    def load_history(self, npz_path: str | os.PathLike, until: int | None = None) -> None:
        """Continue a previous run's ``evaluations.npz`` (resume): keep its best reward.

        ``until``: the step count resumed from; validations after it (of the run that went on
        past its last checkpoint) are dropped, as they will be run again.
        """
        path = Path(npz_path)
        if not path.is_file():
            return
        data = read_npz(path, RunError, str(path))
        try:
            steps = [int(t) for t in data["timesteps"]]
            results = [list(map(float, r)) for r in data["results"]]
            lengths = [list(map(int, r)) for r in data["ep_lengths"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise RunError(f"{path}: not a validation history ({exc})") from None
        keep = [i for i, t in enumerate(steps) if until is None or t <= until]
        self.evaluations_timesteps = [steps[i] for i in keep]
        self.evaluations_results = [results[i] for i in keep]
        self.evaluations_length = [lengths[i] for i in keep]
        if self.evaluations_results:
            self.best_mean_reward = max(float(np.mean(r)) for r in self.evaluations_results)

    def evaluate(self) -> tuple[list[float], list[int]]:
        """Run the validation episodes now (same episodes every time); log the info terms."""
        if self.model.get_vec_normalize_env() is not None:
            sync_envs_normalization(self.training_env, self.eval_env)
        self.eval_env.seed(self.eval_seed)
        self.stats.reset()
        self.episodes = EpisodeStats(self.episodes.span_s)  # drop episodes cut short last time
        if self.use_masking:
            from sb3_contrib.common.maskable.evaluation import evaluate_policy

            extra = {"use_masking": True}
        else:
            from stable_baselines3.common.evaluation import evaluate_policy

            extra = {}
        rewards, lengths = evaluate_policy(
            self.model,
            self.eval_env,
            n_eval_episodes=self.n_eval_episodes,
            deterministic=self.deterministic,
            return_episode_rewards=True,
            warn=self.warn,
            callback=self._collect,
            **extra,
        )
        self.last_summary = self.stats.record(self.logger, f"{FRAME_TAG}/val")
        self.last_episodes = self.episodes.record(self.logger, f"{EPISODE_TAG}/val")
        return list(map(float, rewards)), list(map(int, lengths))

    def _collect(self, locals_: dict[str, Any], globals_: dict[str, Any]) -> None:
        info = locals_["info"]
        self.stats.add(info)
        self.episodes.add(int(locals_.get("i", 0)), info, bool(locals_.get("done", False)))

    def _on_step(self) -> bool:
        if self.eval_freq <= 0 or self.n_calls % self.eval_freq != 0:
            return True
        rewards, lengths = self.evaluate()
        self.evaluations_timesteps.append(self.num_timesteps)
        self.evaluations_results.append(rewards)
        self.evaluations_length.append(lengths)
        if self.log_path is not None:
            np.savez(
                self.log_path,
                timesteps=self.evaluations_timesteps,
                results=self.evaluations_results,
                ep_lengths=self.evaluations_length,
            )
        mean_reward = float(np.mean(rewards))
        self.last_mean_reward = mean_reward
        self.logger.record("eval/mean_reward", mean_reward)
        self.logger.record("eval/mean_ep_length", float(np.mean(lengths)))
        self.logger.record("time/total_timesteps", self.num_timesteps, exclude="tensorboard")
        self.logger.dump(self.num_timesteps)

        new_best = mean_reward > self.best_mean_reward
        if self.print_fn is not None:
            s, e = self.last_summary, self.last_episodes
            self.print_fn(
                f"eval {self.num_timesteps:>9,d} steps:"
                f" reward/s {e.get('reward_per_s', np.nan):+.4f}"
                f"  on-time {100 * s.get('on_time_rate', np.nan):5.1f}%"
                f"  accuracy {s.get('accuracy', np.nan):.3f}"
                f"  e2e p95 {s.get('e2e_p95_ms', np.nan):4.0f} ms"
                + ("  (new best)" if new_best else "")
            )
        continue_training = True
        if new_best:
            self.best_mean_reward = mean_reward
            if self.best_model_save_path is not None:
                save_model_file(self.model, Path(self.best_model_save_path) / BEST_MODEL_FILE)
            if self.callback_on_new_best is not None:
                continue_training = self.callback_on_new_best.on_step()
        if self.callback is not None:
            continue_training = continue_training and self._on_event()
        return continue_training


def episode_span_s(env: VecEnv) -> float | None:
    """The trace time one (non full-trace) episode of ``env`` covers, in seconds, or None."""
    try:
        world = env.get_attr("world")[0]
        return float(world.horizon(0, 0.0) * world.unit_s)
    except (AttributeError, IndexError, TypeError):
        return None


def hparam_value(value: Any) -> bool | int | float | str:
    """A value TensorBoard's HParams accept (numbers, strings, booleans; the rest as text)."""
    if isinstance(value, bool | str):
        return value
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value)
    return "None" if value is None else str(value)


def log_hparams(
    logger: Any, hparams: Mapping[str, Any], metrics: Mapping[str, float], step: int = 0
) -> dict[str, float]:
    """Write the run's HParams record: ``hparams`` (flat) against ``metrics`` (name -> value).

    Each metric is also written as the scalar ``hparams/<name>``, the tag the HParams dashboard
    reads; NaN or missing metrics are left out. Returns the metrics written."""
    from stable_baselines3.common.logger import HParam

    values = {
        f"hparams/{k}": float(v)
        for k, v in metrics.items()
        if v is not None and math.isfinite(float(v))
    }
    if not values:
        values = {"hparams/num_timesteps": float(step)}
    skip = ("stdout", "log", "json", "csv")
    for tag, value in values.items():
        logger.record(tag, value, exclude=skip)
    flat = {str(k): hparam_value(v) for k, v in hparams.items()}
    logger.record("hparams", HParam(flat, values), exclude=skip)
    logger.dump(step)
    return values


def _set_modes(stats: InfoStats, env: VecEnv) -> None:
    """Report a share for every k and bits value of the env's mode table, chosen or not."""
    try:
        world = env.get_attr("world")[0]
    except (AttributeError, IndexError):
        return
    stats.values = {"k": tuple(world.ks), "bits": tuple(world.bits)}


def _vector_adapter(env: Any) -> Any:
    """The :class:`~slimrl.train.vec_env.GymVectorToSB3` under ``env``'s wrappers, if any."""
    from slimrl.train.vec_env import GymVectorToSB3

    while env is not None:
        if isinstance(env, GymVectorToSB3):
            return env
        env = getattr(env, "venv", None)
    return None
