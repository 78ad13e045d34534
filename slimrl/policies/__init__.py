"""Policies behind one protocol: heuristics, the oracle, SB3 runs and exported bundles.

Actions are flat mode indices into the env's ``action_table`` (see :mod:`slimrl.policies.base`).
"""

from slimrl.policies.base import BatchPolicy, ModeTable, Policy, to_env_action
from slimrl.policies.heuristics import PaperEWMA, RandomPolicy, RateThreshold, Static
from slimrl.policies.oracle import Oracle
from slimrl.policies.registry import HEURISTICS, make_policy, static_names

__all__ = [
    "HEURISTICS",
    "BatchPolicy",
    "ModeTable",
    "Oracle",
    "PaperEWMA",
    "Policy",
    "RandomPolicy",
    "RateThreshold",
    "Static",
    "make_policy",
    "static_names",
    "to_env_action",
]
