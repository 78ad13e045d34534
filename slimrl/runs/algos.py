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
#: most members, largest member and largest total (bytes, decompressed) of a model zip read
MAX_MODEL_MEMBERS = 64
MAX_MODEL_MEMBER_BYTES = 1 << 30
MAX_MODEL_TOTAL_BYTES = 2 << 30
#: largest ``data`` member (the JSON of the model's settings) read to guess the algorithm
MAX_MODEL_DATA_BYTES = 16 << 20
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


def check_model_zip(path: Path, test: bool = True) -> None:
    """Raise :class:`RunError` unless ``path`` is a complete zip of bounded size with ``data``.

    Declared member sizes are checked first (a zip bomb is refused unread); ``test`` then reads
    every member and checks its CRC (a truncated or damaged file is refused).
    """
    try:
        with zipfile.ZipFile(path) as z:
            infos = z.infolist()
            if len(infos) > MAX_MODEL_MEMBERS:
                raise RunError(f"{path}: {len(infos)} members; not a Stable-Baselines3 model zip")
            if "data" not in z.namelist():
                raise RunError(f"{path}: no 'data' member; not a Stable-Baselines3 model zip")
            total = 0
            for info in infos:
                total += info.file_size
                if info.file_size > MAX_MODEL_MEMBER_BYTES or total > MAX_MODEL_TOTAL_BYTES:
                    raise RunError(
                        f"{path}: members declare more than {MAX_MODEL_TOTAL_BYTES} bytes "
                        "decompressed; refusing to read it"
                    )
            bad = z.testzip() if test else None
    except RunError:
        raise
    except (OSError, EOFError, ValueError, zipfile.BadZipFile, zipfile.LargeZipFile) as exc:
        raise RunError(f"{path}: damaged or not a zip ({exc})") from None
    if bad is not None:
        raise RunError(f"{path}: damaged member {bad!r} (CRC mismatch)")


def guess_algo(path: Path) -> str:
    """The algorithm of a model zip that has no ``args.yml``: from its saved policy class."""
    check_model_zip(path, test=False)
    try:
        with zipfile.ZipFile(path) as z:
            info = z.getinfo("data")
            if info.file_size > MAX_MODEL_DATA_BYTES:
                raise RunError(f"{path}: 'data' larger than {MAX_MODEL_DATA_BYTES} bytes")
            data = json.loads(z.read(info))
        if not isinstance(data, dict):
            raise ValueError("data is not a JSON object")
    except (OSError, KeyError, ValueError, RecursionError, zipfile.BadZipFile) as exc:
        raise RunError(f"{path}: not a Stable-Baselines3 model zip ({exc})") from exc
    policy = data.get("policy_class")
    module = str(policy.get("__module__", "")) if isinstance(policy, dict) else ""
    if "maskable" in module:
        return "maskable_ppo"
    if module.startswith("stable_baselines3.dqn"):
        return "dqn"
    if module.startswith("stable_baselines3.common.policies"):
        return "ppo" if "clip_range" in data or "n_epochs" in data else "a2c"
    raise RunError(f"{path}: cannot tell the algorithm (policy from {module!r}); pass --algo")
