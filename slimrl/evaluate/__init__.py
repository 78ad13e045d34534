"""Evaluation: all policies on the same frames; summaries, plots, the tuned-threshold search."""

from slimrl.evaluate.api import DEFAULT_POLICIES, run_evaluation
from slimrl.evaluate.rollout import DEFAULT_EPISODES, EpisodePlan, plan_episodes, simulate
from slimrl.evaluate.search import search_heuristic
from slimrl.evaluate.table import print_summary

__all__ = [
    "DEFAULT_EPISODES",
    "DEFAULT_POLICIES",
    "EpisodePlan",
    "plan_episodes",
    "print_summary",
    "run_evaluation",
    "search_heuristic",
    "simulate",
]
