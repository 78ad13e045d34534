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
from slimrl.evaluate.rollout import (
    STEP_KEYS,
    TOTAL_KEYS,
    EpisodePlan,
    plan_episodes,
    simulate,
)
from slimrl.evaluate.search import search_heuristic
from slimrl.io import atomic_dir, check_output_dir
from slimrl.parallel import chunks, run_tasks
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
    *,
    steps_path: str | os.PathLike | None = None,
    jobs: int = 1,
    ray: str | None = None,
) -> Evaluation:
    """Replay ``policies`` (plus every static mode, ``optimal`` and ``oracle``) on the same
    episodes of ``traces``; see :func:`run_evaluation` for the arguments.

    Frames are kept (``keep_steps``) for the reported policies only: the ones asked for,
    ``optimal``, ``oracle`` and the best static mode. The static modes are played first without
    keeping frames, to find the best one; the reported policies then replay with their frames
    kept in memory (``Evaluation.steps``) or streamed to the parquet file ``steps_path``
    (``Evaluation.steps`` is then None and memory does not grow with the frames). ``jobs`` > 1
    deals the policies x episodes to that many worker processes; ``ray`` to a Ray cluster
    (:mod:`slimrl.parallel`); the numbers do not depend on how the work is dealt, except
    ``random``'s draws.
    """
    if episodes is not None and int(episodes) < 1:
        raise PolicyError(f"episodes: expected an integer >= 1, got {episodes!r}")
    if not policies:
        raise PolicyError("no policies to evaluate")
    sc = load_scenario(scenario, overrides)
    trace_dir, split = resolve_traces(traces)
    where = _Where(sc, trace_dir, split, randomize)
    probe = where.make_env(1)
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
    all_names = [p.name for p in everyone]
    plan = plan_episodes(world, episodes, seed, full_trace=trace_dir is not None)
    E = len(plan)
    statics = [i for i, n in enumerate(all_names) if n.startswith("static:")]

    bar = _progress_bar(f"evaluating {len(everyone)} policies x {E} episodes") if progress else None
    totals = {"frames": np.zeros((len(everyone), E), dtype=np.int64)}
    totals["span_s"] = np.broadcast_to(np.asarray(plan.span_s), (len(everyone), E)).copy()
    totals.update({k: np.zeros((len(everyone), E)) for k in TOTAL_KEYS})
    collected: list[dict[str, np.ndarray]] = []
    try:
        if not keep_steps:  # one pass, nothing kept
            _play(where, everyone, list(range(len(everyone))), plan, totals, jobs, ray, bar)
        else:
            # the static modes first (no frames kept) to know the best one; then the reported
            # policies with their frames (the asked-for static modes play again: frames kept)
            _play(where, everyone, statics, plan, totals, jobs, ray, bar, weight=0.5)
            static_df = episode_table(
                {k: v[statics] for k, v in totals.items()},
                [all_names[i] for i in statics],
                [world.trace_names[i] for i in plan.trace_index],
            )
            best = best_static(static_df, [all_names[i] for i in statics])
            reported = [i for i, n in enumerate(all_names) if i < len(asked) or n == best
                        or n in (OPTIMAL, ORACLE)]  # fmt: skip
            sink = _ParquetSink(steps_path, all_names, plan, world.trace_names) if steps_path \
                else None  # fmt: skip
            _play(where, everyone, reported, plan, totals, jobs, ray, bar, base=0.5,
                  weight=0.5, sink=sink, collect=None if sink else collected)  # fmt: skip
            if sink is not None:
                sink.close()
    finally:
        if bar is not None:
            bar.close()
    steps = None
    if collected:
        merged = {k: np.concatenate([c[k] for c in collected]) for k in collected[0]}
        steps = _steps_frame(merged, all_names, plan, world.trace_names)
    trace_of = [world.trace_names[i] for i in plan.trace_index]
    episodes_df = episode_table(totals, all_names, trace_of)
    statics_n = [n for n in all_names if n.startswith("static:")]
    return Evaluation(
        sc, world, plan, names, everyone, episodes_df, steps, best_static(episodes_df, statics_n)
    )


@dataclass(frozen=True)
class _Where:
    """What a worker needs to build the evaluation's vector envs (picklable)."""

    scenario: Scenario
    trace_dir: Path | None
    split: str | None
    randomize: bool

    def make_env(self, n: int) -> SlimSplitVectorEnv:
        return SlimSplitVectorEnv(
            n, self.scenario, trace_dir=self.trace_dir, split=self.split, action_space="flat",
            randomize=self.randomize,
        )  # fmt: skip


def _sub_plan(plan: EpisodePlan, eps: Sequence[int]) -> EpisodePlan:
    return EpisodePlan(
        seeds=tuple(plan.seeds[e] for e in eps),
        trace_index=tuple(plan.trace_index[e] for e in eps),
        start_s=tuple(plan.start_s[e] for e in eps),
        full_trace=plan.full_trace,
        span_s=tuple(plan.span_s[e] for e in eps),
    )


def _play(
    where: _Where,
    everyone: list[BatchPolicy],
    which: list[int],
    plan: EpisodePlan,
    totals: dict[str, np.ndarray],
    jobs: int,
    ray: str | None,
    bar: Any,
    base: float = 0.0,
    weight: float = 1.0,
    sink: Any = None,
    collect: list | None = None,
) -> None:
    """Play policies ``which`` on every episode; totals into ``totals``; frames to ``sink`` or
    ``collect``. With ``jobs`` > 1 or ``ray``: tasks of (some policies, some episodes)."""
    if not which:
        return
    frames = sink is not None or collect is not None
    E = len(plan)
    if jobs <= 1 and ray is None:
        out = collect.append if collect is not None else (sink.write if sink else None)

        def report(f: float) -> None:
            if bar is not None:
                bar.update(base + weight * f)

        res = simulate(where.make_env, [everyone[i] for i in which], plan, keep_steps=frames,
                       progress=report, sink=out, index=which)  # fmt: skip
        for k, v in res.totals.items():
            totals[k][which] = v
        return
    # deal policies x episodes: about two tasks per worker, episodes split when policies are few
    n_tasks = 2 * (jobs if ray is None else max(jobs, 8))
    pol_parts = chunks(which, n_tasks)
    ep_parts = chunks(range(E), max(1, n_tasks // len(pol_parts)))
    tasks = [
        {"where": where, "policies": [everyone[i] for i in pp], "index": pp, "episodes": ep,
         "plan": _sub_plan(plan, ep), "frames": frames}
        for pp in pol_parts for ep in ep_parts
    ]  # fmt: skip
    left = [len(t["policies"]) * len(t["episodes"]) for t in tasks]
    total_work, done_work = float(sum(left)), [0.0]
    parts: dict[int, dict[str, np.ndarray] | bytes | None] = {}

    def on_result(i: int, r: tuple) -> None:
        t = tasks[i]
        sub_totals, part = r
        eps = np.asarray(t["episodes"])
        for k, v in sub_totals.items():
            totals[k][np.ix_(t["index"], eps)] = v
        parts[i] = part
        done_work[0] += left[i]
        if bar is not None:
            bar.update(base + weight * done_work[0] / total_work)

    run_tasks(_eval_task, tasks, jobs=jobs, ray=ray, on_result=on_result)
    for i in range(len(tasks)):  # in task order, so the file does not depend on timing
        part = parts.pop(i)
        if part is None:
            continue
        if sink is not None:
            sink.write_ipc(part)
        elif collect is not None:
            collect.extend(_read_ipc(part))


def _eval_task(task: dict) -> tuple[dict[str, np.ndarray], bytes | None]:
    """One worker's share: its policies on its episodes; frames as Arrow IPC bytes."""
    where, plan, frames = task["where"], task["plan"], task["frames"]
    eps = np.asarray(task["episodes"], dtype=np.int64)
    buf: list[dict[str, np.ndarray]] = []

    def out(chunk: dict[str, np.ndarray]) -> None:
        chunk["episode"] = eps[chunk["episode"]]
        buf.append(chunk)

    res = simulate(where.make_env, task["policies"], plan, keep_steps=frames,
                   sink=out if frames else None, index=range(len(task["policies"])))  # fmt: skip
    part = None
    if frames and buf:
        index = np.asarray(task["index"], dtype=np.int64)
        for c in buf:
            c["policy"] = index[c["policy"]]
        part = _to_ipc(buf)
    return res.totals, part


def _to_ipc(chunks_: list[dict[str, np.ndarray]]) -> bytes:
    import pyarrow as pa

    cols = {k: np.concatenate([c[k] for c in chunks_]) for k in chunks_[0]}
    table = pa.table(cols)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema, options=pa.ipc.IpcWriteOptions(
            compression="zstd")) as w:  # fmt: skip
        w.write_table(table)
    return sink.getvalue().to_pybytes()


def _read_ipc(data: bytes) -> list[dict[str, np.ndarray]]:
    import pyarrow as pa

    table = pa.ipc.open_stream(pa.py_buffer(data)).read_all()
    return [{name: table.column(name).to_numpy() for name in table.column_names}]


class _ParquetSink:
    """Frames streamed to ``per_step.parquet`` in row groups: memory stays bounded by one
    buffer (``rows`` frames), whatever the number of frames."""

    def __init__(
        self, path: str | os.PathLike, names: list[str], plan: EpisodePlan,
        trace_names: list[str], rows: int = 32_768,
    ) -> None:  # fmt: skip
        self.path = Path(path)
        self.names, self.plan, self.trace_names = names, plan, trace_names
        self.rows = rows
        self._buf: list[dict[str, np.ndarray]] = []
        self._n = 0
        self._writer: Any = None

    def write(self, chunk: dict[str, np.ndarray]) -> None:
        self._buf.append(chunk)
        self._n += len(chunk["policy"])
        if self._n >= self.rows:
            self._flush()

    def write_ipc(self, data: bytes) -> None:
        for c in _read_ipc(data):
            self.write(c)

    def _flush(self) -> None:
        if not self._buf:
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        merged = {k: np.concatenate([c[k] for c in self._buf]) for k in self._buf[0]}
        self._buf, self._n = [], 0
        df = _steps_frame(merged, self.names, self.plan, self.trace_names)
        table = pa.Table.from_pandas(df, preserve_index=False)
        if self._writer is None:
            self._writer = pq.ParquetWriter(self.path, table.schema)
        self._writer.write_table(table.cast(self._writer.schema))

    def close(self) -> None:
        self._flush()
        if self._writer is None:  # no frame at all: an empty file with the columns
            import pyarrow as pa

            empty = {k: np.zeros(0, dtype=np.int64) for k in ("policy", "episode", "step",
                                                               "action", "reward")}  # fmt: skip
            empty.update({k: np.zeros(0) for k in STEP_KEYS})
            df = _steps_frame(empty, self.names, self.plan, self.trace_names)
            pa.parquet.write_table(pa.Table.from_pandas(df, preserve_index=False), self.path)
        else:
            self._writer.close()


def read_steps(
    path: str | os.PathLike,
    columns: Sequence[str],
    policies: Sequence[str] | None = None,
    episode: int | None = None,
) -> pd.DataFrame:
    """Columns of ``per_step.parquet``, filtered by policy and episode while reading (only the
    matching rows are ever held)."""
    import pyarrow.parquet as pq

    filters = []
    if policies is not None:
        filters.append(("policy", "in", list(policies)))
    if episode is not None:
        filters.append(("episode", "==", int(episode)))
    table = pq.read_table(path, columns=list(columns), filters=filters or None)
    return table.to_pandas()


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
    *,
    jobs: int = 1,
    ray: str | None = None,
    num_threads: int | None = None,
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

    With ``out_dir`` the frames stream to ``per_step.parquet`` as they are played and every
    figure is a running total or read back from that file one policy at a time, so memory is
    bounded by policies x episodes. ``jobs`` / ``ray``: see :func:`rollout_policies`;
    ``num_threads``: torch threads of this process (the CLI's default is 1).
    """
    if num_threads is not None:
        limit_threads(num_threads)
    protect: list[Path] = []
    if out_dir is None:
        ev = rollout_policies(scenario, traces, policies, episodes, seed, overrides, progress,
                              notice, True, randomize, jobs=jobs, ray=ray)  # fmt: skip
        summary, _, _ = _summarise(ev, baseline, seed, ev.steps, None)
        return summary
    protect = _inputs(load_scenario(scenario, overrides), resolve_traces(traces)[0], policies)
    check_output_dir(out_dir, kind=EVALUATION_KIND, protect=protect)  # refused before the work
    with atomic_dir(out_dir, kind=EVALUATION_KIND, protect=protect) as tmp:
        path = tmp / "per_step.parquet"
        ev = rollout_policies(scenario, traces, policies, episodes, seed, overrides, progress,
                              notice, True, randomize, steps_path=path, jobs=jobs,
                              ray=ray)  # fmt: skip
        summary, reported, baseline = _summarise(ev, baseline, seed, None, path)
        sc, world, plan, names = ev.scenario, ev.world, ev.plan, ev.names
        refs = [n for n in reported if n not in names]
        asked = ev.policies[: len(names)]
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
            "best_static": ev.best_static,
            "baseline": baseline,
            "deadline_ms": sc.deadline_ms,
            "tuned": {p.name: p.params for p in asked if hasattr(p, "params")},
            "frames_all_policies": int(ev.episodes["frames"].sum()),
        }
        _write(tmp, summary, per_trace(ev.episodes, ev.best_static, OPTIMAL), path, meta, plots,
               world, plan, ModeTable.from_world(world), sc.deadline_ms, reported)  # fmt: skip
    return summary


def limit_threads(n: int) -> None:
    """At most ``n`` torch / BLAS threads in this process: a policy's forward pass on a batch
    gains little from more, and on a loaded machine several threads cost several times the
    CPU. Torch not loaded yet: through the environment it reads when it loads."""
    import sys

    if n < 1:
        raise PolicyError(f"--num-threads: expected an integer >= 1, got {n}")
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(int(n))
    else:
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(int(n))


def _summarise(
    ev: Evaluation, baseline: str | None, seed: int, steps: pd.DataFrame | None,
    path: Path | None,
) -> tuple[pd.DataFrame, list[str], str]:  # fmt: skip
    """(summary, reported policies, baseline) of an evaluation; per-frame figures from
    ``steps`` or, one policy at a time, from the parquet file ``path``."""
    names, static, episodes_df = ev.names, ev.best_static, ev.episodes
    refs = [n for n in (OPTIMAL, ORACLE, static) if n not in names]
    reported = names + refs
    if baseline is None:
        baseline = _default_baseline(episodes_df, names, static)
    elif baseline not in reported:
        raise PolicyError(f"baseline {baseline!r}: not among the evaluated policies {reported}")
    e2e = None
    if steps is None and path is not None:

        def e2e(name: str) -> pd.Series:
            return read_steps(path, ["e2e_ms"], policies=[name])["e2e_ms"]

    summary = summary_table(episodes_df, steps, reported, static, OPTIMAL, refs,
                            baseline=baseline, seed=seed, e2e=e2e)  # fmt: skip
    return summary, reported, baseline


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
    tmp: Path,
    summary: pd.DataFrame,
    traces: pd.DataFrame,
    steps_path: Path,
    meta: dict[str, Any],
    plots: bool,
    world: Any,
    plan: EpisodePlan,
    table: ModeTable,
    deadline_ms: float,
    reported: list[str],
) -> None:
    """The files of an evaluation folder (``per_step.parquet`` is there already)."""
    summary.to_csv(tmp / "summary.csv", index=False)
    pt = traces[traces["policy"].isin(reported)].copy()
    pt["policy"] = pd.Categorical(pt["policy"], categories=reported, ordered=True)
    pt.sort_values(["policy", "trace"]).to_csv(tmp / "per_trace.csv", index=False)
    (tmp / "evaluation.json").write_text(json.dumps(meta, indent=2, default=str) + "\n")
    if plots:
        P.reward_score_bars(summary, tmp / "reward_score.png")
        lat = read_steps(steps_path, ["policy", "e2e_ms"], policies=reported)
        P.latency_cdf(lat, reported, deadline_ms, tmp / "latency_cdf.png")
        del lat
        P.accuracy_energy(summary, tmp / "accuracy_energy.png")
        labels = [table.label(a) for a in range(table.M)]
        first = pq_columns(steps_path)
        ep0 = read_steps(steps_path, first, policies=reported, episode=0)
        P.timeline(ep0, reported, world, plan.trace_index[0], plan.start_s[0], labels,
                   tmp / "timeline.png")  # fmt: skip


def pq_columns(path: Path) -> list[str]:
    """The column names of a parquet file."""
    import pyarrow.parquet as pq

    return list(pq.ParquetFile(path).schema_arrow.names)


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
