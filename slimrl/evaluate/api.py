"""``run_evaluation``: every policy on the same frames of a trace split or folder, with outputs.

Rows of the summary: the asked-for policies in the order given, then, flagged
``reference=True``, the oracle and the best static mode when they were not asked for (both are
always evaluated: the score needs them). Every static mode is evaluated internally to find the
best one on these frames.

Output folder (written atomically: built in a temporary folder next to it, renamed at the end):
``summary.csv``, ``per_trace.csv``, ``per_step.parquet`` (every frame of every reported policy,
every info term), ``evaluation.json`` (what was run), and the plots ``reward_score.png``,
``latency_cdf.png``, ``accuracy_energy.png``, ``timeline.png``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from slimrl.env.vector import SlimSplitVectorEnv
from slimrl.errors import PolicyError
from slimrl.evaluate import plots as P
from slimrl.evaluate.metrics import best_static, episode_table, per_trace, summary_table
from slimrl.evaluate.rollout import EpisodePlan, plan_episodes, simulate
from slimrl.evaluate.search import search_heuristic
from slimrl.io import atomic_dir, check_output_dir
from slimrl.policies import BatchPolicy, ModeTable, make_policy, static_names
from slimrl.scenario import Scenario, load_scenario, scenario_digest
from slimrl.traces import SPLITS
from slimrl.traces.errors import TraceNotFoundError

DEFAULT_POLICIES = ("paper-ewma", "tuned-threshold", "tuned-mpc", "random")
OPTIMAL = "optimal"
ORACLE = "oracle"
#: the output kind of an evaluation folder (:func:`slimrl.io.atomic_dir`)
EVALUATION_KIND = "evaluation"
#: heuristics the default baseline of paired comparisons is chosen among
BASELINE_CANDIDATES = ("tuned-mpc", "mpc", "tuned-threshold", "rate-threshold", "paper-ewma")


def resolve_traces(traces: str | os.PathLike) -> tuple[Path | None, str | None]:
    """(trace folder or None, split or None) for a split name or a path."""
    text = str(traces)
    if text in SPLITS or text == "holdout" or text.partition(":")[0] in SPLITS:
        return None, text
    path = Path(text).expanduser()
    if not path.exists():
        raise TraceNotFoundError(
            f"--traces {text!r}: no such folder or file, and not a split ({', '.join(SPLITS)})"
        )
    return path.resolve(), None


@dataclass
class Evaluation:
    """Every policy replayed on the same episodes: per-episode totals and (optionally) frames."""

    scenario: Scenario
    world: Any
    plan: EpisodePlan
    names: list[str]  # the policies asked for, in order
    policies: list[BatchPolicy]  # the asked ones, then the static modes, optimal and oracle
    episodes: pd.DataFrame  # one row per (policy, episode): see metrics.episode_table
    steps: pd.DataFrame | None  # one row per frame, or None
    best_static: str


def rollout_policies(
    scenario: Any,
    traces: str | os.PathLike = "test",
    policies: Sequence[str | os.PathLike | BatchPolicy] = DEFAULT_POLICIES,
    episodes: int | None = None,
    seed: int = 0,
    overrides: Mapping[str, Any] | None = None,
    progress: bool = True,
    notice: Callable[[str], None] | None = None,
    keep_steps: bool = True,
    randomize: bool = False,
) -> Evaluation:
    """Replay ``policies`` (plus every static mode, ``optimal`` and ``oracle``) on the same
    episodes of ``traces``; see :func:`run_evaluation` for the arguments."""
    if episodes is not None and int(episodes) < 1:
        raise PolicyError(f"episodes: expected an integer >= 1, got {episodes!r}")
    if not policies:
        raise PolicyError("no policies to evaluate")
    sc = load_scenario(scenario, overrides)
    trace_dir, split = resolve_traces(traces)

    def make_env(n: int) -> SlimSplitVectorEnv:
        return SlimSplitVectorEnv(
            n, sc, trace_dir=trace_dir, split=split, action_space="flat", randomize=randomize
        )

    probe = make_env(1)
    world = probe.world
    asked: list[BatchPolicy] = []
    for item in policies:
        pol = (
            item
            if isinstance(item, BatchPolicy)
            else make_policy(item, probe, seed=seed, search=search_heuristic, notice=notice)
        )
        if any(p.name == pol.name for p in asked):
            continue
        asked.append(pol)
    names = [p.name for p in asked]
    internal = [make_policy(s, probe) for s in static_names(probe) if s not in names]
    internal += [make_policy(n, probe) for n in (OPTIMAL, ORACLE) if n not in names]
    everyone = asked + internal
    plan = plan_episodes(world, episodes, seed, full_trace=trace_dir is not None)

    bar = (
        _progress_bar(f"evaluating {len(everyone)} policies x {len(plan)} episodes")
        if progress
        else None
    )
    try:
        out = simulate(
            make_env, everyone, plan, keep_steps=keep_steps, progress=bar.update if bar else None
        )
    finally:
        if bar is not None:
            bar.close()
    all_names = [p.name for p in everyone]
    steps = _steps_frame(out.steps, all_names, plan, world.trace_names) if keep_steps else None
    trace_of = [world.trace_names[i] for i in plan.trace_index]
    episodes_df = episode_table(out.totals, all_names, trace_of)
    statics = [n for n in all_names if n.startswith("static:")]
    return Evaluation(
        sc, world, plan, names, everyone, episodes_df, steps, best_static(episodes_df, statics)
    )


def run_evaluation(
    scenario: Any,
    traces: str | os.PathLike = "test",
    policies: Sequence[str | os.PathLike | BatchPolicy] = DEFAULT_POLICIES,
    out_dir: str | os.PathLike | None = None,
    episodes: int | None = None,
    seed: int = 0,
    overrides: Mapping[str, Any] | None = None,
    progress: bool = True,
    plots: bool = True,
    notice: Callable[[str], None] | None = None,
    baseline: str | None = None,
    randomize: bool = False,
) -> pd.DataFrame:
    """Evaluate ``policies`` on ``traces`` of ``scenario``; write ``out_dir``; return the summary.

    ``scenario``: a shipped name, a YAML path or a Scenario; ``overrides``: scenario fields to
    change (``{"deadline_ms": 600}``). ``traces``: a split of the scenario (``train``, ``val``,
    ``test``, ``holdout``, or ``PART:DATASET`` such as ``test:oboe``: ``episodes`` episodes,
    default 32, spread over the datasets, from seeded random start offsets) or a folder/file of
    traces (each trace once from start to end, unless ``episodes`` asks for random start
    offsets). ``policies``: names for :func:`slimrl.policies.make_policy` (heuristics, run
    folders, bundle folders) or policy objects. Every policy replays the same episodes, in the
    scenario's own world (``randomize=True``: with the scenario's domain randomisation). The
    summary always adds, as reference rows, ``optimal`` (the score's ceiling), ``oracle`` and the
    best static mode. ``baseline``: the policy every row is compared with, paired (default: the
    best of the heuristics evaluated, else the best static mode).
    """
    protect: list[Path] = []
    if out_dir is not None:  # a refused --out fails before the work
        protect = _inputs(load_scenario(scenario, overrides), resolve_traces(traces)[0], policies)
        check_output_dir(out_dir, kind=EVALUATION_KIND, protect=protect)
    ev = rollout_policies(
        scenario, traces, policies, episodes, seed, overrides, progress, notice, True, randomize
    )
    sc, world, plan, names, steps = ev.scenario, ev.world, ev.plan, ev.names, ev.steps
    episodes_df, static = ev.episodes, ev.best_static
    table = ModeTable.from_world(world)
    asked = ev.policies[: len(names)]
    refs = [n for n in (OPTIMAL, ORACLE, static) if n not in names]
    reported = names + refs
    if baseline is None:
        baseline = _default_baseline(episodes_df, names, static)
    elif baseline not in reported:
        raise PolicyError(f"baseline {baseline!r}: not among the evaluated policies {reported}")
    summary = summary_table(
        episodes_df, steps, reported, static, OPTIMAL, refs, baseline=baseline, seed=seed
    )

    if out_dir is not None:
        meta = {
            "scenario": sc.name,
            "scenario_path": str(sc.path) if sc.path else None,
            "scenario_digest": scenario_digest(sc),
            "overrides": dict(overrides or {}),
            "traces": str(traces),
            "trace_names": list(world.trace_names),
            "split": resolve_traces(traces)[1],
            "seed": int(seed),
            "episodes": len(plan),
            "full_trace": plan.full_trace,
            "span_s": list(plan.span_s),
            "plan": {
                "seeds": list(plan.seeds),
                "trace_index": list(plan.trace_index),
                "start_s": list(plan.start_s),
            },
            "policies": names,
            "references": refs,
            "best_static": static,
            "baseline": baseline,
            "deadline_ms": sc.deadline_ms,
            "tuned": {p.name: p.params for p in asked if hasattr(p, "params")},
        }
        _write(
            Path(out_dir),
            summary,
            per_trace(episodes_df, static, OPTIMAL),
            steps[steps["policy"].isin(reported)],
            meta,
            plots,
            world,
            plan,
            table,
            sc.deadline_ms,
            reported,
            protect,
        )
    return summary


def _inputs(sc: Any, trace_dir: Path | None, policies: Sequence[Any]) -> list[Path]:
    """What an evaluation reads and its output must not replace: the run and bundle folders
    named as policies, the trace folder or file, the scenario file."""
    out = [Path(p) for p in policies if isinstance(p, str | os.PathLike) and Path(p).exists()]
    if trace_dir is not None:
        out.append(trace_dir)
    if sc.path is not None:
        out.append(Path(sc.path))
    return out


def _steps_frame(
    steps: dict[str, np.ndarray], names: list[str], plan: EpisodePlan, trace_names: list[str]
) -> pd.DataFrame:
    ep = steps["episode"]
    ti = np.asarray(plan.trace_index)[ep]
    cols: dict[str, Any] = {
        "policy": np.asarray(names, dtype=object)[steps["policy"]],
        "episode": ep,
        "trace": np.asarray(trace_names, dtype=object)[ti],
        "step": steps["step"],
        "action": steps["action"],
        "reward": steps["reward"],
    }
    for k, v in steps.items():
        if k not in cols and k != "policy":
            cols[k] = v
    df = pd.DataFrame(cols)
    df["on_time"] = df["on_time"].astype(bool)
    return df


def _default_baseline(episodes: pd.DataFrame, names: list[str], static: str) -> str:
    """The best (reward per second) of the evaluated heuristics, else the best static mode."""
    cands = [n for n in names if n in BASELINE_CANDIDATES]
    if not cands:
        return static
    g = episodes[episodes["policy"].isin(cands)].groupby("policy")
    return str((g["reward"].sum() / g["span_s"].sum()).idxmax())


def _write(
    out_dir: Path,
    summary: pd.DataFrame,
    traces: pd.DataFrame,
    steps: pd.DataFrame,
    meta: dict[str, Any],
    plots: bool,
    world: Any,
    plan: EpisodePlan,
    table: ModeTable,
    deadline_ms: float,
    reported: list[str],
    protect: Sequence[Path] = (),
) -> None:
    with atomic_dir(out_dir, kind=EVALUATION_KIND, protect=protect) as tmp:
        summary.to_csv(tmp / "summary.csv", index=False)
        pt = traces[traces["policy"].isin(reported)].copy()
        pt["policy"] = pd.Categorical(pt["policy"], categories=reported, ordered=True)
        pt.sort_values(["policy", "trace"]).to_csv(tmp / "per_trace.csv", index=False)
        steps.to_parquet(tmp / "per_step.parquet", index=False)
        (tmp / "evaluation.json").write_text(json.dumps(meta, indent=2, default=str) + "\n")
        if plots:
            P.reward_score_bars(summary, tmp / "reward_score.png")
            P.latency_cdf(steps, reported, deadline_ms, tmp / "latency_cdf.png")
            P.accuracy_energy(summary, tmp / "accuracy_energy.png")
            labels = [table.label(a) for a in range(table.M)]
            P.timeline(
                steps,
                reported,
                world,
                plan.trace_index[0],
                plan.start_s[0],
                labels,
                tmp / "timeline.png",
            )


class _progress_bar:  # noqa: N801 (used like a function)
    """A rich progress bar on stderr driven by a fraction."""

    def __init__(self, description: str) -> None:
        from rich.console import Console
        from rich.errors import LiveError
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self._p = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self._task = self._p.add_task(description, total=1000)
        try:
            self._p.start()
        except LiveError:  # another live display (e.g. the caller's) is active: stay silent
            self._p = None

    def update(self, fraction: float) -> None:
        if self._p is not None:
            self._p.update(self._task, completed=int(1000 * min(max(fraction, 0.0), 1.0)))

    def close(self) -> None:
        if self._p is not None:
            self._p.stop()
