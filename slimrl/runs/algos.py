"""The algorithm registry: slimrl's names for the SB3 / sb3-contrib algorithms it trains."""

from __future__ import annotations

import importlib
import json
import zipfile
from pathlib import Path

from slimrl.errors import HyperparamsError, RunError

#: slimrl algorithm name -> (module, class)
ALGOS: dict[str, tuple[str, str]] = {
    "ppo": ("stable_baselines3", "PPO"),
    "a2c": ("stable_baselines3", "A2C"),
    "dqn": ("stable_baselines3", "DQN"),
    "maskable_ppo": ("sb3_contrib", "MaskablePPO"),
}
#: other spellings (the Zoo calls MaskablePPO ``ppo_mask``)
ALIASES = {"ppo_mask": "maskable_ppo", "maskableppo": "maskable_ppo"}


def canonical_algo(name: str) -> str:
    """``"PPO"``, ``"ppo_mask"``, ``"MaskablePPO"`` ... -> a key of :data:`ALGOS`."""
    key = str(name).strip().lower().replace("-", "_")
    key = ALIASES.get(key, key)
    if key not in ALGOS:
        by_class = {cls.lower(): k for k, (_, cls) in ALGOS.items()}
        if key.replace("_", "") in by_class:
            return by_class[key.replace("_", "")]
        raise HyperparamsError(f"unknown algorithm {name!r} (known: {', '.join(ALGOS)})")
    return key


def algo_class_name(name: str) -> str:
    """The SB3 class name of ``name`` (``"maskable_ppo"`` -> ``"MaskablePPO"``)."""
    return ALGOS[canonical_algo(name)][1]


def algo_class(name: str) -> type:
    """The SB3 / sb3-contrib class of ``name`` (imports it)."""
    module, cls = ALGOS[canonical_algo(name)]
    return getattr(importlib.import_module(module), cls)


def guess_algo(path: Path) -> str:
    """The algorithm of a model zip that has no ``args.yml``: from its saved policy class."""
    try:
        with zipfile.ZipFile(path) as z:
            data = json.loads(z.read("data"))
    except (OSError, KeyError, zipfile.BadZipFile, json.JSONDecodeError) as exc:
        raise RunError(f"{path}: not a Stable-Baselines3 model zip ({exc})") from exc
    module = str((data.get("policy_class") or {}).get("__module__", ""))
    if "maskable" in module:
        return "maskable_ppo"
    if module.startswith("stable_baselines3.dqn"):
        return "dqn"
    if module.startswith("stable_baselines3.common.policies"):
        return "ppo" if "clip_range" in data or "n_epochs" in data else "a2c"
    raise RunError(f"{path}: cannot tell the algorithm (policy from {module!r}); pass --algo")
