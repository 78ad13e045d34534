"""The offline optimum of an episode: dynamic programming over time on its realised world.

The world of an episode (trace, start, edge backlog, common-random-number key) fixes what every
mode yields when started in every time unit (:meth:`World.frames`), so the best return from unit
``n`` to the horizon ``H`` obeys

    V[n] = max_m  reward(n, m) + V[next(n, m)],     V[n >= H] = 0,

where ``next(n, m) > n`` is the unit the following frame starts in. Units are slots of the
scenario's time grid (closed loop; the env itself starts frames on that grid, so the program is
exact for the env, with no discretisation error) or arrival ticks (periodic). The reward uses the
realised accuracy of each frame (per-sample correctness where the model profile has it): the
optimum is an upper bound of every policy's return on the episode, not only of its expectation.

The table is built window by window (``window`` units at a time, every allowed mode), and the
backward pass runs over blocks no longer than the shortest frame in the window, so each block is
one vectorised step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from slimrl.env.dynamics import Episode, World
from slimrl.env.frame import INDEX

_R, _NEXT = INDEX["reward"], INDEX["next_unit"]


@dataclass(frozen=True)
class EpisodePlan:
    """The optimum of one episode: the best mode (flat index) in every unit and the return."""

    modes: np.ndarray  # (H,) int16: the best mode when a frame starts in unit n
    value: float  # best return from unit ``start``
    start: int
    horizon: int

    def mode(self, unit: int) -> int:
        return int(self.modes[unit])


def solve_episode(
    world: World, episode: Episode, horizon: int, start: int = 0, window: int | None = None
) -> EpisodePlan:
    """Backward dynamic program over units ``[start, horizon)`` of one episode."""
    H = int(horizon)
    modes = np.flatnonzero(world.mode_mask)
    M = len(modes)
    # about 100k (unit, mode) cells a window: each frames() call holds ~20 such float64 tables
    window = window or max(64, 100_000 // M)
    value = np.zeros(H + 1)
    best_mode = np.zeros(H, dtype=np.int16)
    ep = episode._replace(trace_index=int(episode.trace_index), key=np.uint64(episode.key))
    end = H
    while end > start:
        lo = max(start, end - window)
        n = np.arange(lo, end, dtype=np.int64)[:, None]
        f = world.frames(modes[None, :], n, ep, lean=True)
        reward = f[_R]
        nxt = np.minimum(f[_NEXT], H)
        # the earliest unit any frame started in row j can hand over to
        reach = nxt.min(axis=1)
        span = int((reach - n[:, 0]).max())
        e = end
        while e > lo:
            # largest block [b, e) whose rows all hand over to units >= e (already solved)
            tail = reach[max(lo, e - span) - lo : e - lo]
            short = np.flatnonzero(tail < e)
            b = max(lo, e - span) + (int(short[-1]) + 1 if short.size else 0)
            b = min(b, e - 1)
            rows = slice(b - lo, e - lo)
            q = reward[rows] + value[nxt[rows]]
            arg = q.argmax(axis=1)
            value[b:e] = q[np.arange(e - b), arg]
            best_mode[b:e] = modes[arg]
            e = b
        end = lo
    return EpisodePlan(best_mode, float(value[start]), int(start), H)
