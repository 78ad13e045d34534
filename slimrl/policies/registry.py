"""``make_policy(name, env)``: heuristic names, training run folders and exported bundles.

Names:

- ``static:K,B`` one fixed mode; ``random`` (uniform over allowed modes, seeded);
- ``paper-ewma`` the founding paper's controller;
- ``rate-threshold`` (default window 5, margin 0.9; or ``rate-threshold:window=W,margin=M``);
- ``tuned-threshold`` rate-threshold with window and margin grid-searched on the scenario's
  training split (saved results reused, see :mod:`slimrl.evaluate.tuned`);
- ``oracle`` the clairvoyant reference;
- a path: a folder with ``manifest.json`` (exported bundle), or a training run folder / model
  ``.zip`` (Stable-Baselines3, RL Baselines3 Zoo layout).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from slimrl.errors import PolicyError
from slimrl.policies.base import BatchPolicy, ModeTable, world_of
from slimrl.policies.bundle import is_bundle, load_bundle_policy
from slimrl.policies.heuristics import PaperEWMA, RandomPolicy, RateThreshold, Static
from slimrl.policies.oracle import Oracle
from slimrl.policies.sb3 import load_sb3_policy, looks_like_run

#: heuristic names (``static:K,B`` stands for every mode)
HEURISTICS = ("static:K,B", "random", "paper-ewma", "rate-threshold", "tuned-threshold", "oracle")


def static_names(env: Any) -> list[str]:
    """``static:K,B`` for every allowed mode of the env's scenario, in flat-index order."""
    t = ModeTable.from_env(env)
    return [f"static:{k},{b}" for (k, b), ok in zip(t.action_table, t.allowed, strict=True) if ok]


def make_policy(
    name: str | os.PathLike,
    env: Any,
    *,
    seed: int | None = 0,
    notice: Callable[[str], None] | None = None,
) -> BatchPolicy:
    """Build the policy ``name`` for ``env`` (a SlimSplit env, wrapped or vector).

    ``seed`` seeds ``random``; ``notice`` receives one-line messages (e.g. when
    ``tuned-threshold`` has no saved search for this scenario and runs one).
    Raises :class:`PolicyError` for a name that resolves to nothing.
    """
    table = ModeTable.from_env(env)
    text = str(name).strip()
    head, _, arg = text.partition(":")
    if head == "static" and arg:
        return _static(table, text, arg)
    if text == "random":
        return RandomPolicy(table, seed=seed)
    if text == "paper-ewma":
        return PaperEWMA(table)
    if head == "rate-threshold":
        return RateThreshold(table, **_params(text, arg)) if arg else RateThreshold(table)
    if text == "tuned-threshold":
        from slimrl.evaluate.tuned import tuned_params

        p = tuned_params(world_of(env).scenario, notice=notice)
        pol = RateThreshold(table, p["window"], p["margin"], name="tuned-threshold")
        pol.params = p
        return pol
    if text == "oracle":
        return Oracle(table, env=env)

    path = Path(text).expanduser()
    obs_dim = _obs_dim(env)
    if is_bundle(path):
        return load_bundle_policy(path, table, obs_dim)
    if looks_like_run(path):
        return load_sb3_policy(path, table, obs_dim)
    if path.exists():
        raise PolicyError(
            f"policy {text!r}: {path} is neither an exported bundle (no manifest.json) nor a "
            "training run (no model .zip)"
        )
    raise PolicyError(
        f"policy {text!r}: not a heuristic ({', '.join(HEURISTICS)}) and no such run folder "
        "or bundle"
    )


def _static(table: ModeTable, text: str, arg: str) -> Static:
    try:
        k, b = (int(v) for v in arg.split(","))
        return Static(table, k, b)
    except ValueError as exc:
        modes = " ".join(
            f"{k},{b}" for (k, b), ok in zip(table.action_table, table.allowed, strict=True) if ok
        )
        detail = str(exc) if "mode" in str(exc) else "expected static:K,B"
        raise PolicyError(f"policy {text!r}: {detail} (allowed modes: {modes})") from None


def _params(text: str, arg: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in arg.split(","):
        key, _, val = item.partition("=")
        key = key.strip()
        try:
            if key == "window":
                out["window"] = int(val)
            elif key == "margin":
                out["margin"] = float(val)
            else:
                raise ValueError
            if out.get("window", 1) < 1 or out.get("margin", 1.0) <= 0:
                raise ValueError
        except ValueError:
            raise PolicyError(
                f"policy {text!r}: expected rate-threshold:window=N,margin=X (N >= 1, X > 0)"
            ) from None
    return out


def _obs_dim(env: Any) -> int | None:
    space = getattr(env, "single_observation_space", None) or getattr(
        env, "observation_space", None
    )
    shape = getattr(space, "shape", None)
    return int(shape[-1]) if shape else None
