"""Replaying the same frames for every policy through the vector env.

Episode ``e`` is the same for every policy: its sub-env is seeded with ``plan.seeds[e]`` (so
compute jitter, edge service draws, edge-load realisation and test samples are the same draws)
and reset with the same ``trace_index``, ``start_s`` and ``full_trace`` options. Policies run in
one :class:`~slimrl.env.vector.SlimSplitVectorEnv` with one sub-env per (policy, episode); the
clairvoyant ones (``needs_lookahead``) get their own vector env so that ``lookahead()`` is only
computed where it is used.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from slimrl.env.slimsplit import FRAME_INFO_KEYS
from slimrl.policies.base import BatchPolicy

#: default number of episodes on a split (random start offsets)
DEFAULT_EPISODES = 32

#: per-frame info terms recorded for every frame
STEP_KEYS = (*FRAME_INFO_KEYS, "k", "bits", "t_s")

#: per-(policy, episode) sums kept for every evaluation
TOTAL_KEYS = ("reward", "on_time", "accuracy", "energy_j", "missed", "dropped")


@dataclass(frozen=True)
class EpisodePlan:
    """What every episode replays: seed, trace, start offset; ``full_trace`` runs to its end.

    ``span_s``: the trace time each episode covers (``episode_s``, or to the trace's end), the
    denominator of reward per second.
    """

    seeds: tuple[int, ...]
    trace_index: tuple[int, ...]
    start_s: tuple[float, ...]
    full_trace: bool
    span_s: tuple[float, ...]

    def __len__(self) -> int:
        return len(self.seeds)

    def reset_kwargs(self, n_policies: int) -> dict[str, Any]:
        """``reset(seed=..., options=...)`` of a vector env with ``n_policies * len(self)`` rows."""
        return {
            "seed": list(self.seeds) * n_policies,
            "options": {
                "trace_index": list(self.trace_index) * n_policies,
                "start_s": list(self.start_s) * n_policies,
                "full_trace": self.full_trace,
            },
        }


def episode_seed(seed: int, e: int) -> int:
    """The env seed of episode ``e`` of an evaluation seeded with ``seed``."""
    return int(np.random.SeedSequence([int(seed), int(e)]).generate_state(1)[0])


def plan_episodes(
    world: Any, episodes: int | None, seed: int = 0, full_trace: bool = False
) -> EpisodePlan:
    """The episodes of an evaluation on ``world``'s traces.

    ``full_trace`` and no ``episodes``: each trace once from its start to its end. Otherwise
    ``episodes`` (default :data:`DEFAULT_EPISODES`) of ``episode_s`` seconds of trace time, spread
    over the datasets in turn (episode ``e`` takes dataset ``e mod D``, then that dataset's
    traces in turn), each from a start offset drawn uniformly over its trace (seeded by
    ``(seed, e)``).
    """
    n = int(world.n_traces)
    durations = [float(d) for d in world.durations]
    if full_trace and episodes is None:
        ti, starts = list(range(n)), [0.0] * n
        full = True
    else:
        E = DEFAULT_EPISODES if episodes is None else int(episodes)
        if E < 1:
            raise ValueError(f"episodes must be >= 1, got {episodes}")
        labels = list(world.traces.datasets)
        groups = [[i for i in range(n) if labels[i] == d] for d in dict.fromkeys(labels)]
        ti = [groups[e % len(groups)][(e // len(groups)) % len(groups[e % len(groups)])]
              for e in range(E)]  # fmt: skip
        starts = [
            min(
                float(np.random.default_rng([int(seed), e, 1]).random()) * durations[ti[e]],
                float(np.nextafter(durations[ti[e]], 0.0)),
            )
            for e in range(E)
        ]
        full = False
    return EpisodePlan(
        seeds=tuple(episode_seed(seed, e) for e in range(len(ti))),
        trace_index=tuple(ti),
        start_s=tuple(starts),
        full_trace=full,
        span_s=tuple(
            world.horizon(i, t0, full) * world.unit_s for i, t0 in zip(ti, starts, strict=True)
        ),
    )


@dataclass
class Rollout:
    """Results of :func:`simulate`.

    ``steps``: one entry per recorded frame (``policy`` index, ``episode``, ``step``, ``action``,
    ``reward`` and :data:`STEP_KEYS`), or None. ``totals``: (P, E) arrays ``frames``, ``span_s``
    and the sums of :data:`TOTAL_KEYS`.
    """

    steps: dict[str, np.ndarray] | None
    totals: dict[str, np.ndarray]


class _Rows(Mapping):
    """A lazy row slice of a vector env's infos (dict of (N, ...) arrays)."""

    def __init__(self, infos: Mapping[str, Any], rows: slice, n: int) -> None:
        self._infos, self._rows, self._n = infos, rows, n

    def __getitem__(self, key: str) -> Any:
        v = self._infos[key]
        if isinstance(v, Mapping):
            return _Rows(v, self._rows, self._n)
        if isinstance(v, np.ndarray) and v.ndim and v.shape[0] == self._n:
            return v[self._rows]
        return v

    def __iter__(self):
        return iter(self._infos)

    def __len__(self) -> int:
        return len(self._infos)


def simulate(
    make_env: Callable[[int], Any],
    policies: Sequence[BatchPolicy],
    plan: EpisodePlan,
    *,
    keep_steps: bool = True,
    progress: Callable[[float], None] | None = None,
    sink: Callable[[dict[str, np.ndarray]], None] | None = None,
    index: Sequence[int] | None = None,
) -> Rollout:
    """Run every policy on every episode of ``plan``.

    ``make_env(n)`` returns a fresh flat-action ``SlimSplitVectorEnv`` with ``n`` sub-envs.
    ``progress`` is called now and then with the fraction done (0..1). An episode that has
    ended leaves the vector env and its policy's batch (nothing is stepped past its end), so
    the work is the frames played. ``sink(chunk)`` receives the frames as they are played (one
    dict of arrays per step, the keys of :attr:`Rollout.steps`) instead of keeping them;
    ``index`` numbers the policies in the chunks (default ``0..P-1``).
    """
    P, E = len(policies), len(plan)
    number = list(range(P)) if index is None else [int(i) for i in index]
    groups = [
        [i for i, p in enumerate(policies) if not p.needs_lookahead],
        [i for i, p in enumerate(policies) if p.needs_lookahead],
    ]
    groups = [g for g in groups if g]
    totals = {"frames": np.zeros((P, E), dtype=np.int64)}
    totals["span_s"] = np.broadcast_to(np.asarray(plan.span_s), (P, E)).copy()
    totals.update({k: np.zeros((P, E)) for k in TOTAL_KEYS})
    chunks: list[dict[str, np.ndarray]] = []
    out = chunks.append if (keep_steps and sink is None) else sink
    done_weight = 0.0
    for g in groups:
        weight = len(g) / P

        def report(f: float, base: float = done_weight, w: float = weight) -> None:
            if progress is not None:
                progress(base + w * f)

        venv = make_env(len(g) * E)
        try:
            _run_group(venv, [policies[i] for i in g], g, number, plan, totals, report, out)
        finally:
            venv.close()
        done_weight += weight
    if progress is not None:
        progress(1.0)
    steps = None
    if keep_steps and sink is None:
        steps = {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}
    return Rollout(steps, totals)


def _run_group(
    venv: Any,
    group: list[BatchPolicy],
    index: list[int],
    number: list[int],
    plan: EpisodePlan,
    totals: dict[str, np.ndarray],
    report: Callable[[float], None],
    out: Callable[[dict[str, np.ndarray]], None] | None,
) -> None:
    E = len(plan)
    G = len(group)
    N0 = G * E
    # original row r: policy index[r // E], episode r % E; ``rows`` maps env rows to them
    pol_of_row = np.repeat(np.asarray([number[i] for i in index], dtype=np.int64), E)
    ep_of_row = np.tile(np.arange(E, dtype=np.int64), G)
    rows = np.arange(N0)
    counts = [E] * G  # live rows of each policy (contiguous in the env, in policy order)
    obs, infos = venv.reset(**plan.reset_kwargs(G))
    for p in group:
        p.reset(E)
    lookahead = any(p.needs_lookahead for p in group)
    episode = any(p.needs_episode for p in group)
    step_of_row = np.zeros(N0, dtype=np.int64)
    start = np.asarray([plan.start_s[e] for e in ep_of_row])
    span = np.asarray([plan.span_s[e] for e in ep_of_row])
    sums = {k: np.zeros(N0) for k in TOTAL_KEYS}
    finished = 0.0  # episodes done, for the progress fraction
    it = 0
    while rows.size:
        N = rows.size
        if lookahead or episode:
            infos = dict(infos)
        if lookahead:
            infos["lookahead"] = venv.lookahead()
        if episode:
            infos["episode"] = venv.episode_state()
        actions = np.zeros(N, dtype=np.int64)
        lo = 0
        for p, c in zip(group, counts, strict=True):
            if c:
                sl = slice(lo, lo + c)
                actions[sl] = p.act_batch(obs[sl], _Rows(infos, sl, N))
            lo += c
        obs, reward, _term, trunc, infos = venv.step(actions)
        src = infos.get("final_info", infos)
        if out is not None:
            chunk = {
                "policy": pol_of_row[rows],
                "episode": ep_of_row[rows],
                "step": step_of_row[rows],
                "action": actions,
                "reward": np.asarray(reward).copy(),
            }
            for key in STEP_KEYS:
                chunk[key] = np.array(src[key])
            out(chunk)
        sums["reward"][rows] += reward
        for key in TOTAL_KEYS[1:]:
            sums[key][rows] += np.asarray(src[key], dtype=np.float64)
        step_of_row[rows] += 1
        done = np.asarray(trunc, dtype=bool)
        if done.any():  # ended episodes leave the env and their policy's batch
            keep = np.flatnonzero(~done)
            finished += float(done.sum())
            if keep.size:
                venv.keep_envs(keep)
                lo, new_counts = 0, []
                for p, c in zip(group, counts, strict=True):
                    local = keep[(keep >= lo) & (keep < lo + c)] - lo
                    if c:
                        p.keep_rows(local)
                    new_counts.append(int(local.size))
                    lo += c
                counts = new_counts
                obs = obs[keep]
                infos = _take_rows(infos, keep, N)
            rows = rows[keep]
        it += 1
        if it % 20 == 0 and rows.size:
            t = venv.sim_time_s
            f = np.clip((t - start[rows]) / np.maximum(span[rows], 1e-9), 0.0, 1.0)
            report((finished + float(f.sum())) / N0)

    for j, pi in enumerate(index):
        sl = slice(j * E, (j + 1) * E)
        totals["frames"][pi] = step_of_row[sl]
        for k in TOTAL_KEYS:
            totals[k][pi] = sums[k][sl]


def _take_rows(infos: Mapping[str, Any], keep: np.ndarray, n: int) -> dict[str, Any]:
    """The rows ``keep`` of a vector env's infos (per-row arrays subset; the final_* entries,
    which only ended rows use, dropped)."""
    out: dict[str, Any] = {}
    for k, v in infos.items():
        if k in ("final_obs", "_final_obs", "final_info", "_final_info"):
            continue
        if isinstance(v, np.ndarray) and v.ndim and v.shape[0] == n:
            out[k] = v[keep]
        else:
            out[k] = v
    return out
