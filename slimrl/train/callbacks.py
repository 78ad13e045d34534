"""Training callbacks: every info term as a TensorBoard metric, and the validation evaluation.

* :class:`InfoStats` summarises per-frame infos (accuracy, on-time rate, e2e p50/p95, energy,
  reward terms, the share of each k and bits value).
* :class:`InfoMetricsCallback` logs that summary of the training frames (``train_env/...``).
* :class:`ValidationCallback` is SB3's ``EvalCallback`` on the validation split (same episodes
  at every evaluation: the eval env is reseeded), with the same summary (``val_env/...``),
  ``best_model.zip``, ``evaluations.npz``, synced VecNormalize statistics, action masks for
  MaskablePPO, and a history that survives ``--resume``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback, EvalCallback
from stable_baselines3.common.vec_env import VecEnv, sync_envs_normalization

from slimrl.env.slimsplit import FRAME_INFO_KEYS

#: numeric info terms averaged per frame
MEAN_KEYS = (*(k for k in FRAME_INFO_KEYS if k != "t_s"), "dropped")


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

    def summary(self) -> dict[str, float]:
        """Metric name -> value (empty when no frame was added)."""
        if not self.frames:
            return {}
        out: dict[str, float] = {"frames": float(self.frames)}
        arrays = {k: np.asarray(v) for k, v in self._values.items() if v}
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
        return {k: np.asarray(self._values[k]) for k in ("k", "bits") if self._values.get(k)}

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
    """Log the info terms of the training frames once at least ``min_frames`` were collected."""

    def __init__(self, min_frames: int = 2000, verbose: int = 0) -> None:
        super().__init__(verbose)
        self.min_frames = int(min_frames)
        self.stats = InfoStats()

    def _init_callback(self) -> None:
        _set_modes(self.stats, self.training_env)

    def _on_step(self) -> bool:
        infos = self.locals.get("infos")
        if infos:
            self.stats.add_many(infos)
        return True

    def _on_rollout_end(self) -> None:
        if self.stats.frames >= self.min_frames:
            self.stats.record(self.logger, "train_env")
            self.stats.reset()


class SaveVecNormalizeCallback(BaseCallback):
    """Save the VecNormalize statistics to ``path`` (called on a new best model, as the Zoo)."""

    def __init__(self, path: str | os.PathLike, verbose: int = 0) -> None:
        super().__init__(verbose)
        self.path = Path(path)

    def _on_step(self) -> bool:
        vec_normalize = self.model.get_vec_normalize_env()
        if vec_normalize is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            vec_normalize.save(str(self.path))
        return True


class ValidationCallback(EvalCallback):
    """``EvalCallback`` on the validation split, reseeded to ``eval_seed`` before each evaluation.

    Logs ``eval/mean_reward`` (per episode, as SB3), ``val_env/...`` (per frame) and keeps
    ``self.history`` (timesteps, mean episode reward, per-frame summary). ``use_masking``
    evaluates MaskablePPO with its action masks.
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
        self.last_summary: dict[str, float] = {}

    def _init_callback(self) -> None:
        super()._init_callback()
        _set_modes(self.stats, self.eval_env)

    def load_history(self, npz_path: str | os.PathLike) -> None:
        """Continue a previous run's ``evaluations.npz`` (resume): keep its best reward."""
        path = Path(npz_path)
        if not path.is_file():
            return
        with np.load(path) as data:
            self.evaluations_timesteps = [int(t) for t in data["timesteps"]]
            self.evaluations_results = [list(map(float, r)) for r in data["results"]]
            self.evaluations_length = [list(map(int, r)) for r in data["ep_lengths"]]
        if self.evaluations_results:
            self.best_mean_reward = max(float(np.mean(r)) for r in self.evaluations_results)

    def evaluate(self) -> tuple[list[float], list[int]]:
        """Run the validation episodes now (same episodes every time); log the info terms."""
        if self.model.get_vec_normalize_env() is not None:
            sync_envs_normalization(self.training_env, self.eval_env)
        self.eval_env.seed(self.eval_seed)
        self.stats.reset()
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
        self.last_summary = self.stats.record(self.logger, "val_env")
        return list(map(float, rewards)), list(map(int, lengths))

    def _collect(self, locals_: dict[str, Any], globals_: dict[str, Any]) -> None:
        self.stats.add(locals_["info"])

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
            s = self.last_summary
            self.print_fn(
                f"eval {self.num_timesteps:>9,d} steps: reward/frame {s.get('reward', np.nan):+.4f}"
                f"  on-time {100 * s.get('on_time_rate', np.nan):5.1f}%"
                f"  accuracy {s.get('accuracy', np.nan):.3f}"
                f"  e2e p95 {s.get('e2e_p95_ms', np.nan):4.0f} ms"
                + ("  (new best)" if new_best else "")
            )
        continue_training = True
        if new_best:
            self.best_mean_reward = mean_reward
            if self.best_model_save_path is not None:
                self.model.save(os.path.join(self.best_model_save_path, "best_model"))
            if self.callback_on_new_best is not None:
                continue_training = self.callback_on_new_best.on_step()
        if self.callback is not None:
            continue_training = continue_training and self._on_event()
        return continue_training


def _set_modes(stats: InfoStats, env: VecEnv) -> None:
    """Report a share for every k and bits value of the env's mode table, chosen or not."""
    try:
        world = env.get_attr("world")[0]
    except (AttributeError, IndexError):
        return
    stats.values = {"k": tuple(world.ks), "bits": tuple(world.bits)}
