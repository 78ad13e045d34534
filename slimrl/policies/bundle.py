"""Exported bundles (a folder with ``manifest.json``) as policies, through the numpy runtime."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from slimrl.bundle import Controller
from slimrl.errors import BundleError, PolicyError
from slimrl.policies.base import BatchPolicy, ModeTable


class BundlePolicy(BatchPolicy):
    """``slimrl.runtime.Controller`` over a batch: the device's own decision code."""

    def __init__(
        self, table: ModeTable, controller: Any, name: str = "bundle", obs_dim: int | None = None
    ) -> None:
        self.controller = controller
        self.name = name
        if tuple(controller.action_table) != table.action_table:
            raise PolicyError(
                f"{name}: the bundle's action table {controller.action_table} differs from the "
                f"scenario's {list(table.action_table)}"
            )
        if obs_dim is not None and controller.obs_dim != obs_dim:
            raise PolicyError(
                f"{name}: the bundle takes {controller.obs_dim} observation values, the env "
                f"gives {obs_dim}; was it exported from another observation layout?"
            )
        self._mask = table.action_mask(controller.kind == "multidiscrete")
        super().__init__(table)

    def act_batch(self, observations: np.ndarray, infos: Mapping[str, Any]) -> np.ndarray:
        masks = None
        if self.controller.maskable:
            masks = np.broadcast_to(self._mask, (len(observations), self._mask.size))
        return np.asarray(self.controller.act_batch(observations, masks), dtype=np.int64)


def is_bundle(path: Path) -> bool:
    return path.is_dir() and (path / "manifest.json").is_file()


def load_bundle_policy(
    path: str | os.PathLike, table: ModeTable, obs_dim: int | None = None
) -> BundlePolicy:
    """A :class:`BundlePolicy` from a bundle folder (checksums verified)."""
    try:
        ctrl = Controller.load(path)
    except BundleError as exc:
        raise PolicyError(str(exc)) from None
    return BundlePolicy(table, ctrl, name=str(path), obs_dim=obs_dim)
