"""Training run folders: their layout, writing them, reading them back, the algorithm registry.

The one owner of a run folder (RL Baselines3 Zoo layout, see :mod:`slimrl.runs.layout`):
``train`` writes it through :mod:`slimrl.runs.write`; ``export``, ``evaluate`` and the policies
read it through :class:`Run` (model, normalisation, arguments and the scenario as trained).
"""

from slimrl.runs.algos import ALGOS, algo_class, algo_class_name, canonical_algo
from slimrl.runs.layout import ENV_ID, next_run_dir
from slimrl.runs.run import NormStats, Run, looks_like_run, norm_stats

__all__ = [
    "ALGOS",
    "ENV_ID",
    "NormStats",
    "Run",
    "algo_class",
    "algo_class_name",
    "canonical_algo",
    "looks_like_run",
    "next_run_dir",
    "norm_stats",
]
