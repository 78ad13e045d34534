"""Evaluation: all policies on the same frames; summaries, plots, the tuned-threshold search."""

from slimrl.evaluate.api import DEFAULT_POLICIES, run_evaluation
from slimrl.evaluate.runner import DEFAULT_EPISODES, EpisodePlan, plan_episodes, simulate
from slimrl.evaluate.table import print_summary
from slimrl.evaluate.tuned import scenario_hash, search_threshold, tuned_params

__all__ = [
    "DEFAULT_EPISODES",
    "DEFAULT_POLICIES",
    "EpisodePlan",
    "plan_episodes",
    "print_summary",
    "run_evaluation",
    "scenario_hash",
    "search_threshold",
    "simulate",
    "tuned_params",
]
