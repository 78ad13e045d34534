"""The SlimSplit Gymnasium environment, its vector form, scenarios and the observation builder."""

from typing import Any

from slimrl.env.observation import ObservationBuilder
from slimrl.scenario import Scenario, load_scenario, parse_set_args

__all__ = [
    "ObservationBuilder",
    "Scenario",
    "SlimSplitEnv",
    "SlimSplitVectorEnv",
    "load_scenario",
    "parse_set_args",
]


def __getattr__(name: str) -> Any:  # lazy: the envs pull in the trace library
    if name == "SlimSplitEnv":
        from slimrl.env.slimsplit import SlimSplitEnv

        return SlimSplitEnv
    if name == "SlimSplitVectorEnv":
        from slimrl.env.vector import SlimSplitVectorEnv

        return SlimSplitVectorEnv
    raise AttributeError(f"module 'slimrl.env' has no attribute {name!r}")
