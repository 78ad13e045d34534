"""Policies behind one protocol: heuristics, the oracle, SB3 runs and exported bundles.

Actions are flat mode indices into the env's ``action_table`` (see :mod:`slimrl.policies.base`).
"""

from slimrl.policies.base import (
    POLICIES,
    BatchPolicy,
    ModeTable,
    Policy,
    PolicyContext,
    register_policy,
    to_env_action,
)
from slimrl.policies.heuristics import PaperEWMA, RandomPolicy, RateThreshold, Static
from slimrl.policies.oracle import Oracle
from slimrl.policies.registry import make_policy, policy_names, static_names

__all__ = [
    "POLICIES",
    "BatchPolicy",
    "ModeTable",
    "Oracle",
    "PaperEWMA",
    "Policy",
    "PolicyContext",
    "RandomPolicy",
    "RateThreshold",
    "Static",
    "make_policy",
    "policy_names",
    "register_policy",
    "static_names",
    "to_env_action",
]
