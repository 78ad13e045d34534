"""Checkpoints a run can be resumed from exactly, written atomically.

:class:`CheckpointCallback` replaces Stable-Baselines3's (which saves in place, in the middle of a
rollout, without the random generators or the env's state): it acts between rollouts only. At
the start of every rollout it keeps the training state in memory (:func:`~slimrl.runs.state.
capture`, weights included: a few copies of small arrays), and when the step count has crossed
the next multiple of ``save_freq`` it writes ``checkpoints/rl_model_<n>_steps.zip`` with its
statistics and training state (:func:`~slimrl.runs.write.save_checkpoint`). After an
interruption (Ctrl-C) :meth:`CheckpointCallback.rollback` puts the model back to the start of
the rollout in progress, so what the trainer then saves can be resumed bit for bit. That holds
for the on-policy algorithms (PPO, A2C, MaskablePPO); DQN's rollouts are a few steps and its
replay buffer is not saved, so it checkpoints the same way but is neither rolled back nor
resumed bit for bit.

:class:`SaveVecNormalizeCallback` is the validation's "new best model" hook writing the
statistics as ``.npz`` (atomically).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from stable_baselines3.common.callbacks import BaseCallback

from slimrl.runs.state import TrainState, capture, restore, restore_random
from slimrl.runs.write import save_checkpoint, save_vecnormalize


class CheckpointCallback(BaseCallback):
    """Checkpoint ``run_dir`` every ``save_freq`` steps (<= 0: never), between rollouts.

    ``resume_state``: the training state a resumed run was loaded with; its global random
    generators are restored when training starts (nothing may draw from them in between).
    """

    def __init__(
        self,
        run_dir: str | os.PathLike,
        save_freq: int,
        resume_state: TrainState | None = None,
        verbose: int = 0,
    ) -> None:
        super().__init__(verbose)
        self.run_dir = Path(run_dir)
        self.save_freq = int(save_freq)
        self.resume_state = resume_state
        self.keep_boundary = True
        self.boundary: TrainState | None = None
        self.last_saved: int | None = None
        self.saved: list[Path] = []

    def _init_callback(self) -> None:
        from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm

        # on-policy: every rollout start is a resumable boundary, kept for rollback(); off-policy
        # (DQN: a "rollout" is a few steps, the replay buffer is not saved) only when saving
        self.keep_boundary = isinstance(self.model, OnPolicyAlgorithm)
        if self.last_saved is None:
            self.last_saved = int(self.model.num_timesteps)  # where this session starts

    def _on_training_start(self) -> None:
        if self.resume_state is not None:
            restore_random(self.model, self.resume_state)
            self.resume_state = None

    def _on_rollout_start(self) -> None:
        n = int(self.model.num_timesteps)
        due = self.save_freq > 0 and n // self.save_freq > int(self.last_saved) // self.save_freq
        if self.keep_boundary:
            self.boundary = capture(self.model, weights=True)
        if due:
            state = self.boundary if self.keep_boundary else capture(self.model)
            self.saved.append(save_checkpoint(self.model, self.run_dir, state))
            self.last_saved = n

    def _on_step(self) -> bool:
        return True

    def pending_state(self) -> TrainState | None:
        """The resumed state if training never started (nothing drew from the generators it
        holds yet): what to save instead of capturing the model now. None once it started."""
        return self.resume_state

    def rollback(self) -> TrainState | None:
        """Put the model back to the start of the rollout in progress; returns that state."""
        if self.boundary is not None:
            restore(self.model, self.boundary)
        return self.boundary


class SaveVecNormalizeCallback(BaseCallback):
    """Save the VecNormalize statistics to ``path`` (``.npz``) on a new best model."""

    def __init__(self, path: str | os.PathLike, verbose: int = 0) -> None:
        super().__init__(verbose)
        self.path = Path(path)

    def _on_step(self) -> bool:
        vec: Any = self.model.get_vec_normalize_env()
        if vec is not None:
            save_vecnormalize(vec, self.path)
        return True
