"""``make_policy(name, env)``: registered policy names, training run folders and bundles.

Names (the table :data:`~slimrl.policies.base.POLICIES`, filled by the modules that define the
policies): ``static:K,B``, ``random``, ``paper-ewma``, ``rate-threshold[:window=W,margin=M]``,
``tuned-threshold``, ``oracle``. A path names a folder with ``manifest.json`` (an exported
bundle) or a training run folder / model ``.zip`` (Stable-Baselines3, RL Baselines3 Zoo layout).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from slimrl.errors import PolicyError

# the modules below register their policies in POLICIES when imported
from slimrl.policies import heuristics, mpc, optimal, oracle, tuned  # noqa: F401
from slimrl.policies.base import POLICIES, BatchPolicy, ModeTable, PolicyContext
from slimrl.policies.bundle import is_bundle, load_bundle_policy
from slimrl.policies.sb3 import load_sb3_policy
from slimrl.runs import looks_like_run


def policy_names() -> list[str]:
    """Usage strings of every registered policy (``static:K,B`` stands for every mode)."""
    return [e.usage for e in POLICIES.values()]


def static_names(env: Any) -> list[str]:
    """``static:K,B`` for every allowed mode of the env's scenario, in flat-index order."""
    t = ModeTable.from_env(env)
    return [f"static:{k},{b}" for (k, b), ok in zip(t.action_table, t.allowed, strict=True) if ok]


def make_policy(
    name: str | os.PathLike,
    env: Any,
    *,
    seed: int | None = 0,
    search: Callable[[Any], dict] | None = None,
    notice: Callable[[str], None] | None = None,
) -> BatchPolicy:
    """Build the policy ``name`` for ``env`` (a SlimSplit env, wrapped or vector).

    ``seed`` seeds ``random``; ``search`` runs the tuned-threshold search for a scenario with no
    saved one; ``notice`` receives one-line messages. Raises :class:`PolicyError` for a name that
    resolves to nothing.
    """
    table = ModeTable.from_env(env)
    text = str(name).strip()
    head, _, arg = text.partition(":")
    entry = POLICIES.get(head)
    if entry is not None:
        ctx = PolicyContext(table, env, seed=seed, search=search, notice=notice)
        policy = entry.factory(arg, ctx)
        if arg and policy.name == head:  # parameters in the name: mpc and mpc:window=2 differ
            policy.name = text
        return policy

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
        f"policy {text!r}: not a known policy ({', '.join(policy_names())}) and no such run "
        "folder or bundle"
    )


def _obs_dim(env: Any) -> int | None:
    space = getattr(env, "single_observation_space", None) or getattr(
        env, "observation_space", None
    )
    shape = getattr(space, "shape", None)
    return int(shape[-1]) if shape else None
