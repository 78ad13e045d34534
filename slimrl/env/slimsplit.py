"""``SlimSplit-v0``: choose the encoder width k and the quantisation bits of every frame."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from slimrl.env.dynamics import FRAME_KEYS, Block, World, action_mask
from slimrl.env.observation import ObservationBuilder
from slimrl.env.world_cache import build_world
from slimrl.scenario import Scenario, load_scenario

#: numeric per-frame info terms of every step
FRAME_INFO_KEYS = (
    "accuracy",
    "on_time",
    "e2e_ms",
    "compute_ms",
    "transfer_ms",
    "edge_ms",
    "edge_queue_ms",
    "bytes",
    "energy_j",
    "bandwidth_mbps",
    "k",
    "bits",
    "reward_accuracy",
    "reward_miss",
    "reward_energy",
    "t_s",
)

#: info keys of every step (plus ``dropped`` with periodic arrivals)
INFO_KEYS = (*FRAME_INFO_KEYS, "trace", "action_mask")

#: lookahead keys (each a (K, B) array): the frame terms up to the reward
LOOKAHEAD_KEYS = FRAME_KEYS[: FRAME_KEYS.index("reward") + 1]


class SlimSplitEnv(gym.Env):
    """
    ## Description

    A camera device runs the first layers of a detector plus a slimmable ensemble encoder, sends
    the compressed bottleneck over a wireless uplink whose capacity follows a real trace, and a
    shared edge server decodes it and runs the rest of the network (Assine et al., WoWMoM 2023).
    Before each frame the agent picks the encoder width ``k`` (active sub-encoders: compute time
    and quality) and the quantisation ``bits`` (payload and quality). The frame is computed on the
    device (profile time + jitter), crosses the trace from that instant (outages stall it, plus a
    base one-way delay), waits behind the other tenants' requests at the edge (an exogenous
    Markov-modulated queue) and is decoded (lognormal service time); the answer returns after the
    base delay. The next frame starts when the answer is back (closed loop) or at the next arrival
    tick (periodic arrivals; frames that arrive while busy are dropped). Everything comes from the
    scenario YAML (``envs/README.md``).

    ## Action Space

    ``MultiDiscrete([K, B])``: ``[ki, bi]`` indexes the model profile's k values and bits values
    (ascending). With ``action_space="flat"``: ``Discrete(K * B)``, ``a = ki * B + bi``;
    ``action_table[a] == (k, bits)``. Modes the scenario does not allow (``modes``) are masked in
    ``action_masks()`` / ``info["action_mask"]`` (MaskablePPO format: K + B per-dimension masks
    for MultiDiscrete, K * B for flat); a forbidden action is clamped to the nearest allowed k and
    the nearest allowed bits (ties: the smaller value), and ``info`` reports the mode really used.

    ## Observation Space

    ``Box(0, high, (H + 8,), float32)``, built by :class:`ObservationBuilder` from what the device
    knows after its last answer (H = ``observation.history``):

    | index     | observation                                          | min | max          |
    |-----------|------------------------------------------------------|-----|--------------|
    | 0..H-1    | goodput of the last H transfers, newest first (Mbit/s)| 0  | max_mbps     |
    | H         | last transfer time (s)                               | 0   | max_time_s   |
    | H+1       | last compute time (s)                                | 0   | max_time_s   |
    | H+2       | last end-to-end latency (s)                          | 0   | max_time_s   |
    | H+3       | queueing delay the edge reported with its answer (s) | 0   | max_time_s   |
    | H+4       | last frame on time (0/1)                             | 0   | 1            |
    | H+5       | last k / K_max                                       | 0   | 1            |
    | H+6       | last bits / bits_max                                 | 0   | 1            |
    | H+7       | deadline (s)                                         | 0   | max(D, max_time_s) |

    Before the first frame everything is 0 except the deadline. Names: ``obs_builder.names``.

    ## Rewards

    ``reward = reward_accuracy + reward_miss + reward_energy`` with
    ``reward_accuracy = w_acc * accuracy`` if ``e2e_ms <= deadline_ms`` else 0,
    ``reward_miss = -miss_penalty`` if late else 0, ``reward_energy = -w_energy * energy_j``,
    where ``energy_j = P_compute * compute + (base_w + alpha * throughput) * transfer``. The
    accuracy of a frame is the mode's table accuracy, or 0/1 from a random test sample when the
    model profile has per-sample correctness (``model.per_sample``).

    ## Starting State

    Each episode draws a trace of the split and a start offset in it, an edge-load realisation
    and offset, and blocks of per-frame draws (compute jitter, service times, sample indices),
    all from ``self.np_random``. ``reset(options=...)``: ``trace_index`` (int), ``start_s``
    (float, s into the trace; 0 when only ``trace_index`` is given), ``full_trace`` (bool: run
    from ``start_s`` to the end of the trace). With the same ``seed`` these replay exactly the same
    frames for every policy: frame i gets the same jitter and service draws, and the trace and the
    edge backlog are functions of time.

    ## Episode End

    ``terminated`` is always False. ``truncated`` after ``episode_length`` frames, or with
    ``full_trace`` when the sim time reaches the end of the trace.

    ## Arguments

    ```python
    gymnasium.make("SlimSplit-v0", scenario="default", trace_dir=None, split="train",
                   overrides=None, action_space="multidiscrete")
    ```

    * ``scenario``: name of a shipped scenario (``envs/NAME.yaml``), a YAML path, or a Scenario.
    * ``trace_dir``: a trace folder or file instead of the scenario's (the scenario's pattern is
      kept when it matches there, else every trace file is used).
    * ``split``: ``"train"``, ``"val"``, ``"test"`` or None (every file).
    * ``overrides``: scenario fields to change, e.g. ``{"deadline_ms": 600, "reward.energy": 0.1}``.
    * ``action_space``: ``"multidiscrete"`` or ``"flat"``.

    ``info`` keys: see :data:`INFO_KEYS` (``dropped`` too with periodic arrivals).
    ``lookahead()`` tells what every mode would truly yield for the current frame.
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        scenario: str | os.PathLike | Scenario | Mapping[str, Any] = "default",
        trace_dir: str | os.PathLike | None = None,
        split: str | None = "train",
        overrides: Mapping[str, Any] | None = None,
        action_space: str = "multidiscrete",
        render_mode: str | None = None,
    ) -> None:
        if render_mode is not None:
            raise TypeError(f"render_mode {render_mode!r}: SlimSplit-v0 does not render")
        self.scenario = load_scenario(scenario, overrides)
        self.split = split
        self.world: World = build_world(self.scenario, trace_dir, split)
        w = self.world
        ob = self.scenario.observation
        self.obs_builder = ObservationBuilder.from_scenario(self.scenario, w.k_max, w.bits_max)
        self.observation_space = self.obs_builder.space
        self.action_space = mode_space(w, action_space)
        self._mask = action_mask(w.mode_mask, w.K, w.B, action_space == "multidiscrete")
        self._mask.setflags(write=False)
        self._flat = action_space == "flat"
        self.action_table = list(w.action_table)
        self.render_mode = None

        # scalar-path constants
        self._clamp = w.clamp
        self._K, self._B, self._M = w.K, w.B, w.M
        self._build_obs = self.obs_builder.build_one
        self._action_table = w.action_table
        self._bytes_int = [int(b) for b in w.payload.tolist()]
        self._H = ob.history
        self._ep_len = self.scenario.episode_length
        self._L = w.block_len
        self._periodic = w.periodic
        self._needs_reset = True

    # -- gymnasium API ---------------------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        w, rng = self.world, self.np_random
        ti, start, real, off = w.draw_episode(rng)
        self._set_block(w.draw_block(rng))
        opts = dict(options or {})
        ti, start, full = _episode_options(w, opts, ti, start)
        self._ti, self._t, self._real, self._off = ti, start, real, off
        self._ep_frame = w.episode_frame(ti, real, off)
        self._full = full
        self._end = w.durations_l[ti]
        self._trace_name = w.trace_names[ti]
        self._steps = 0
        self._gp = [0.0] * self._H
        self._needs_reset = False
        obs = self.obs_builder.initial()
        return obs, {"trace": self._trace_name, "t_s": start, "action_mask": self._mask.copy()}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._needs_reset:
            raise RuntimeError(
                "SlimSplitEnv: call reset() before step() (and after an episode end)"
            )
        if self._flat:
            a = int(action)
            if not 0 <= a < self._M:
                raise ValueError(f"action {action!r} outside {self.action_space}")
        else:
            ki, bi = action.tolist() if isinstance(action, np.ndarray) else action
            if not (0 <= ki < self._K and 0 <= bi < self._B):
                raise ValueError(f"action {action!r} outside {self.action_space}")
            a = ki * self._B + bi
        m = self._clamp[a]
        pos = self._pos
        t = self._t
        (
            e2e, on, c, tx_ms, edge, q, _nb, energy, bw, acc,
            r_acc, r_miss, r_en, reward, gp, t_next, dropped,
        ) = self._ep_frame(m, t, self._zc[pos], self._mult[pos], self._sidx[pos])  # fmt: skip
        k, b = self._action_table[m]
        g = self._gp
        g.insert(0, gp)
        g.pop()
        obs = self._build_obs(g, tx_ms, c, e2e, q, on, k, b)
        self._t = t_next
        self._steps = steps = self._steps + 1
        truncated = t_next >= self._end if self._full else steps >= self._ep_len
        pos += 1
        if truncated:
            self._needs_reset = True
            self._pos = pos
        elif pos >= self._L:
            self._set_block(self.world.draw_block(self.np_random))
        else:
            self._pos = pos
        info = {
            "accuracy": acc,
            "on_time": on,
            "e2e_ms": e2e,
            "compute_ms": c,
            "transfer_ms": tx_ms,
            "edge_ms": edge,
            "edge_queue_ms": q,
            "bytes": self._bytes_int[m],
            "energy_j": energy,
            "bandwidth_mbps": bw,
            "k": k,
            "bits": b,
            "reward_accuracy": r_acc,
            "reward_miss": r_miss,
            "reward_energy": r_en,
            "trace": self._trace_name,
            "t_s": t,
            "action_mask": self._mask.copy(),
        }
        if self._periodic:
            info["dropped"] = dropped
        return obs, reward, False, truncated, info

    # -- extras ----------------------------------------------------------------------------------
    def action_masks(self) -> np.ndarray:
        """Allowed actions in MaskablePPO format (K + B for MultiDiscrete, K * B for flat)."""
        return self._mask

    def lookahead(self) -> dict[str, np.ndarray]:
        """What every mode would truly yield for the current frame, as (K, B) arrays.

        Keys: :data:`LOOKAHEAD_KEYS` (``accuracy`` is the mode's expected (table) accuracy and
        ``reward`` uses it), plus ``k``/``bits`` (the mode really used: forbidden modes show the
        allowed mode they are clamped to), ``allowed`` and, with periodic arrivals, ``dropped``.
        Neither advances the env nor consumes randomness.
        """
        if self._needs_reset:
            raise RuntimeError("SlimSplitEnv.lookahead: call reset() first")
        w, pos = self.world, self._pos
        zc, mult, t = self._zc[pos], self._mult[pos], self._t
        rows = [self._ep_frame(self._clamp[a], t, zc, mult, -1) for a in range(self._M)]
        shape = (w.K, w.B)
        out = {}
        for j, key in enumerate(FRAME_KEYS):
            if key in LOOKAHEAD_KEYS or (key == "dropped" and self._periodic):
                out[key] = np.array([r[j] for r in rows]).reshape(shape)
        out["k"] = w.k_of[w.clamp_arr].reshape(shape)
        out["bits"] = w.bits_of[w.clamp_arr].reshape(shape)
        out["allowed"] = w.mode_mask.reshape(shape).copy()
        return out

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_ep_frame", None)  # a closure: rebuilt on unpickling
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if not self._needs_reset:
            self._ep_frame = self.world.episode_frame(self._ti, self._real, self._off)

    @property
    def sim_time_s(self) -> float:
        """Start time (s, on the trace's clock) of the next frame."""
        return self._t

    # -- internals -------------------------------------------------------------------------------
    def _set_block(self, block: Block) -> None:
        self._zc = block.zc.tolist()
        self._mult = block.mult.tolist()
        self._sidx = [-1] * len(self._zc) if block.sidx is None else block.sidx.tolist()
        self._pos = 0


def mode_space(w: World, action_space: str) -> spaces.Space:
    """The action space of one env: ``MultiDiscrete([K, B])`` or ``Discrete(K * B)``."""
    if action_space == "flat":
        return spaces.Discrete(w.M)
    if action_space == "multidiscrete":
        return spaces.MultiDiscrete([w.K, w.B])
    raise ValueError(f"action_space: expected 'multidiscrete' or 'flat', got {action_space!r}")


def _episode_options(
    w: World, opts: dict[str, Any], ti: int, start: float
) -> tuple[int, float, bool]:
    """Apply reset options ``trace_index``, ``start_s`` and ``full_trace`` to the drawn values."""
    unknown = set(opts) - {"trace_index", "start_s", "full_trace"}
    if unknown:
        raise ValueError(
            f"reset options: unknown {sorted(unknown)} (known: trace_index, start_s, full_trace)"
        )
    if opts.get("trace_index") is not None:
        ti = int(opts["trace_index"])
        if not 0 <= ti < w.n_traces:
            raise ValueError(f"reset option trace_index={ti}: expected 0..{w.n_traces - 1}")
        if opts.get("start_s") is None:
            start = 0.0
    if opts.get("start_s") is not None:
        start = float(opts["start_s"])
        if not 0.0 <= start < w.durations_l[ti]:
            raise ValueError(
                f"reset option start_s={start}: expected 0 <= start_s < {w.durations_l[ti]} "
                f"(duration of trace {w.trace_names[ti]!r})"
            )
    return ti, start, bool(opts.get("full_trace", False))
