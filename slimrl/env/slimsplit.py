"""``SlimSplit-v0``: choose the encoder width k and the quantisation bits of every frame."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from slimrl.env.dynamics import Episode, World, action_mask
from slimrl.env.frame import FRAME_INFO_KEYS, FRAME_KEYS, INDEX, N_INFO
from slimrl.env.observation import ObservationBuilder
from slimrl.env.rate import resolve_rate_baseline
from slimrl.env.world_cache import build_world
from slimrl.scenario import Scenario, load_scenario

#: info keys of every step: the frame record's, the mode, the episode context
INFO_KEYS = (*FRAME_INFO_KEYS, "k", "bits", "t_s", "trace", "action_mask")
#: keys of the reset info
RESET_KEYS = ("t_s", "trace", "action_mask")
#: lookahead keys (each a (K, B) array): the frame terms up to the reward
LOOKAHEAD_KEYS = FRAME_KEYS[: FRAME_KEYS.index("reward") + 1]

_TX, _C, _EDGE, _Q, _E2E, _ON, _BYTES, _BUSY, _R, _NEXT = (
    INDEX[k]
    for k in (
        "transfer_ms", "compute_ms", "edge_ms", "edge_queue_ms", "e2e_ms", "on_time", "bytes",
        "busy_ms", "reward", "next_unit",
    )
)  # fmt: skip


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
    base delay. The next frame starts on the first slot of the time grid after the answer is back
    (closed loop) or at the next arrival tick (periodic arrivals; frames that arrive while busy
    are dropped). An episode is a stretch of trace time. Everything comes from the scenario YAML
    (``envs/README.md``).

    ## Action Space

    ``MultiDiscrete([K, B])``: ``[ki, bi]`` indexes the model profile's k values and bits values
    (ascending). With ``action_space="flat"``: ``Discrete(K * B)``, ``a = ki * B + bi``;
    ``action_table[a] == (k, bits)``. Modes the scenario does not allow (``modes``) are masked in
    ``action_masks()`` / ``info["action_mask"]`` (MaskablePPO format: K + B per-dimension masks
    for MultiDiscrete, K * B for flat); a forbidden action is clamped to the nearest allowed k and
    the nearest allowed bits (ties: the smaller value), and ``info`` reports the mode really used.

    ## Observation Space

    ``Box(0, 1, (P + H + 7,), float32)``, built by :class:`ObservationBuilder` from what the device
    knows after its last answer, every value a ratio squashed by ``x / (1 + x)`` so that no input
    depends on the link's scale (P payload sizes, H = ``observation.history``):

    | index         | observation                                                          |
    |---------------|----------------------------------------------------------------------|
    | 0..P-1        | predicted transfer time of each payload size over the deadline        |
    | P..P+H-1      | goodput of each of the last H transfers against their harmonic mean   |
    | P+H           | queueing delay the edge reported with its last answer, over deadline  |
    | P+H+1         | the rest of the last round trip (base delays) over the deadline       |
    | P+H+2         | last end-to-end latency over the deadline (0.5 at the deadline)       |
    | P+H+3         | last frame on time (0/1)                                              |
    | P+H+4, P+H+5  | last k / K_max, last bits / bits_max                                  |
    | P+H+6         | transfers in the history / H                                          |

    Before the first frame: zeros, with the trend entries at 0.5. Names: ``obs_builder.names``.

    ## Rewards

    ``reward = reward_accuracy + reward_miss + reward_energy``
    (:class:`~slimrl.env.frame.CostModel`):
    ``reward_accuracy = w_acc * accuracy`` if ``e2e_ms <= deadline_ms`` else 0;
    ``reward_miss = -miss_penalty * missed``, where ``missed`` counts deadline intervals lost:
    closed loop, ``ceil((e2e - deadline) / deadline)`` for a late answer (so one long miss is
    never cheaper than several short ones of the same total time); periodic arrivals, 1 for a
    late frame plus 1 per arrival dropped while busy; ``reward_energy = -w_energy * energy_j``,
    ``energy_j = P_compute * compute + (base_w + alpha * throughput) * transfer``. The accuracy
    of a frame is the mode's table accuracy, or 0/1 from a test sample when the model profile
    has per-sample correctness (``model.per_sample``). With ``rate_baseline`` (training), the step
    reward is ``reward - rate_baseline * busy_ms / 1000`` (:mod:`slimrl.env.rate`); ``info``
    keeps the true terms.

    ## Starting State

    Each episode draws a trace of the split and a start offset in it, an edge-load realisation
    and offset, and a key for its common random numbers, all from ``self.np_random``. Every
    exogenous draw (compute jitter, service time, which test sample a frame is) is a function of
    the key and the time slot a frame starts in (:mod:`slimrl.env.crn`); the trace and the edge
    backlog are functions of time. So with the same ``seed`` every policy faces the same world.
    ``reset(options=...)``: ``trace_index`` (int), ``start_s`` (float, s into the trace; 0 when
    only ``trace_index`` is given), ``full_trace`` (bool: run from ``start_s`` to the end of the
    trace).

    ## Episode End

    ``terminated`` is always False. ``truncated`` when the next frame would start
    ``episode_s`` seconds of trace time after the episode's start (or, with ``full_trace``, after
    the end of the trace).

    ## Arguments

    ```python
    gymnasium.make("SlimSplit-v0", scenario="default", trace_dir=None, split="train",
                   overrides=None, action_space="multidiscrete", randomize=None,
                   rate_baseline=None)
    ```

    * ``scenario``: name of a shipped scenario (``envs/NAME.yaml``), a YAML path, or a Scenario.
    * ``trace_dir``: a trace folder or file instead of the scenario's (the scenario's pattern is
      kept when it matches there, else every trace file is used).
    * ``split``: ``"train"``, ``"val"``, ``"test"`` or None (every file).
    * ``overrides``: scenario fields to change, e.g. ``{"deadline_ms": 600, "reward.energy": 0.1}``.
    * ``action_space``: ``"multidiscrete"`` or ``"flat"``.
    * ``randomize``: domain randomisation (the scenario's ``randomize:`` block); by default on
      for the training split only.
    * ``rate_baseline``: charge each frame ``rate x`` its busy time (reward per second, or
      ``"best-static"``: the best static mode's on this env's episodes); None: the plain reward.

    ``info`` keys: see :data:`INFO_KEYS`.
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
        randomize: bool | None = None,
        rate_baseline: float | str | None = None,
    ) -> None:
        if render_mode is not None:
            raise TypeError(f"render_mode {render_mode!r}: SlimSplit-v0 does not render")
        self.scenario = load_scenario(scenario, overrides)
        self.split = split
        self.randomize = default_randomize(self.scenario, split, randomize)
        self.world: World = build_world(self.scenario, trace_dir, split)
        self.rate_baseline = resolve_rate_baseline(
            rate_baseline, self.scenario, trace_dir, split, self.randomize
        )
        self._rate_per_ms = self.rate_baseline / 1000.0
        w = self.world
        ob = self.scenario.observation
        self.obs_builder = ObservationBuilder.from_world(w)
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
        self._build_obs = self.obs_builder.scalar_builder()
        self._action_table = w.action_table
        self._H = ob.history
        self._needs_reset = True

    # -- gymnasium API ---------------------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        w = self.world
        ep, full = _episode_options(
            w, dict(options or {}), w.draw_episode(self.np_random, self.randomize)
        )
        self._episode = ep
        self._ep_frame = w.episode_frame(ep)
        self._n = 0
        self._horizon = w.horizon(ep.trace_index, ep.start_s, full)
        self._t0, self._unit_s = ep.start_s, w.unit_s
        self._trace_name = w.trace_names[ep.trace_index]
        self._inv = [0.0] * self._H  # ms per byte of the last transfers, newest first
        self._count = 0
        self._needs_reset = False
        obs = self.obs_builder.initial()
        return obs, {"t_s": ep.start_s, "trace": self._trace_name, "action_mask": self._mask.copy()}

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
            try:  # an ndarray (zero-cost when it is one), else a pair
                ki, bi = action.tolist()
            except AttributeError:
                ki, bi = action
            if not (0 <= ki < self._K and 0 <= bi < self._B):
                raise ValueError(f"action {action!r} outside {self.action_space}")
            a = ki * self._B + bi
        m = self._clamp[a]
        n = self._n
        # the frame record unpacked in FRAME_KEYS order (checked at import, below the class)
        (acc, on, e2e, c, tx, edge, q, nbytes, energy, bw, r_acc, r_miss, r_en, missed, dropped,
         busy, reward, nxt) = self._ep_frame(m, n)  # fmt: skip
        k, b = self._action_table[m]
        inv = self._inv
        inv.insert(0, tx / nbytes)
        inv.pop()
        self._count = count = self._count + 1
        obs = self._build_obs(inv, count, tx, c, edge, q, e2e, on, k, b)
        self._n = nxt
        truncated = nxt >= self._horizon
        if truncated:
            self._needs_reset = True
        # INFO_KEYS in order (checked at import)
        info = {
            "accuracy": acc, "on_time": on, "e2e_ms": e2e, "compute_ms": c, "transfer_ms": tx,
            "edge_ms": edge, "edge_queue_ms": q, "bytes": nbytes, "energy_j": energy,
            "bandwidth_mbps": bw, "reward_accuracy": r_acc, "reward_miss": r_miss,
            "reward_energy": r_en, "missed": missed, "dropped": dropped, "busy_ms": busy, "k": k,
            "bits": b, "t_s": self._t0 + n * self._unit_s, "trace": self._trace_name,
            "action_mask": self._mask.copy(),  # a new object per call (Gymnasium's env checker)
        }  # fmt: skip
        if self._rate_per_ms:
            reward -= self._rate_per_ms * busy
        return obs, reward, False, truncated, info

    # -- extras ----------------------------------------------------------------------------------
    def action_masks(self) -> np.ndarray:
        """Allowed actions in MaskablePPO format (K + B for MultiDiscrete, K * B for flat)."""
        return self._mask

    def lookahead(self) -> dict[str, np.ndarray]:
        """What every mode would truly yield for the current frame, as (K, B) arrays.

        Keys: :data:`LOOKAHEAD_KEYS` (``accuracy`` is the mode's expected (table) accuracy and
        ``reward`` uses it), plus ``k``/``bits`` (the mode really used: forbidden modes show the
        allowed mode they are clamped to) and ``allowed``. It neither advances the env nor
        consumes randomness.
        """
        if self._needs_reset:
            raise RuntimeError("SlimSplitEnv.lookahead: call reset() first")
        w, n = self.world, self._n
        rows = [self._ep_frame(self._clamp[a], n, False) for a in range(self._M)]
        shape = (w.K, w.B)
        out = {
            key: np.array([r[j] for r in rows]).reshape(shape)
            for j, key in enumerate(LOOKAHEAD_KEYS)
        }
        out["k"] = w.k_of[w.clamp_arr].reshape(shape)
        out["bits"] = w.bits_of[w.clamp_arr].reshape(shape)
        out["allowed"] = w.mode_mask.reshape(shape).copy()
        return out

    def episode_state(self) -> dict[str, Any]:
        """The current episode (the :class:`~slimrl.env.dynamics.Episode` fields), the unit the
        next frame starts in and the horizon (units), for offline planners."""
        if self._needs_reset:
            raise RuntimeError("SlimSplitEnv.episode_state: call reset() first")
        return {**self._episode._asdict(), "unit": self._n, "horizon": self._horizon}

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_ep_frame", None)  # closures: rebuilt on unpickling
        state.pop("_build_obs", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._build_obs = self.obs_builder.scalar_builder()
        if not self._needs_reset:
            self._ep_frame = self.world.episode_frame(self._episode)

    @property
    def sim_time_s(self) -> float:
        """Start time (s, on the trace's clock) of the next frame."""
        return self._t0 + self._n * self._unit_s


# SlimSplitEnv.step spells the frame record and the info keys out (a dict display is faster than
# dict(zip(...))): they must follow frame.FRAME_KEYS and INFO_KEYS exactly.
_STEP_FRAME = (
    "accuracy", "on_time", "e2e_ms", "compute_ms", "transfer_ms", "edge_ms", "edge_queue_ms",
    "bytes", "energy_j", "bandwidth_mbps", "reward_accuracy", "reward_miss", "reward_energy",
    "missed", "dropped", "busy_ms", "reward", "next_unit",
)  # fmt: skip
_STEP_INFO = (*_STEP_FRAME[:N_INFO], "k", "bits", "t_s", "trace", "action_mask")
if FRAME_KEYS != _STEP_FRAME or INFO_KEYS != _STEP_INFO:
    raise ImportError("slimrl.env.slimsplit: SlimSplitEnv.step is out of step with FRAME_KEYS")


def mode_space(w: World, action_space: str) -> spaces.Space:
    """The action space of one env: ``MultiDiscrete([K, B])`` or ``Discrete(K * B)``."""
    if action_space == "flat":
        return spaces.Discrete(w.M)
    if action_space == "multidiscrete":
        return spaces.MultiDiscrete([w.K, w.B])
    raise ValueError(f"action_space: expected 'multidiscrete' or 'flat', got {action_space!r}")


def default_randomize(scenario: Scenario, split: str | None, randomize: bool | None) -> bool:
    """Domain randomisation on? By default on the training split of a scenario that declares it;
    ``randomize=True`` asks for it elsewhere (a scenario without a ``randomize`` block: nothing)."""
    if randomize is None:
        return scenario.randomize is not None and split == "train"
    return bool(randomize) and scenario.randomize is not None


def _episode_options(w: World, opts: dict[str, Any], ep: Episode) -> tuple[Episode, bool]:
    """Apply reset options ``trace_index``, ``start_s`` and ``full_trace`` to a drawn episode."""
    ti, start = ep.trace_index, ep.start_s
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
    ep = ep._replace(trace_index=ti, start_s=start)
    return ep, bool(opts.get("full_trace", False))
