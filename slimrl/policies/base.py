"""The ``Policy`` protocol, the batched base class and the mode table policies reason about.

Action convention (every policy, every adapter): an action is a **flat mode index** into the
env's ``action_table`` (k-major: ``a = ki * B + bi``, ``action_table[a] == (k, bits)``). Build
the env with ``action_space="flat"`` to pass it straight through, or convert it at the boundary
with :func:`to_env_action` (``[ki, bi]`` for the default MultiDiscrete space).

A policy is called once per env step with the observation and the ``info`` that the env returned
with it (the reset info at the start of an episode). Policies that keep state (bandwidth
estimates) update it from the device-side measurements in ``info`` (``bytes``, ``transfer_ms``,
``edge_queue_ms``): an ``info`` without them (a reset info, or a vector-env row whose ``_key``
mask is off after an autoreset) starts a new episode for that row.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from slimrl.env.dynamics import action_mask
from slimrl.env.frame import CostModel

_NONE = object()

#: info keys a stateful heuristic reads (device-side measurements of the last frame)
MEASURED_KEYS = ("bytes", "transfer_ms", "edge_queue_ms", "compute_ms", "e2e_ms", "edge_ms")


@runtime_checkable
class Policy(Protocol):
    """Anything that picks a mode per frame."""

    name: str

    def reset(self) -> None:
        """Forget every episode state (bandwidth estimates, histories)."""

    def act(self, observation: np.ndarray, info: Mapping[str, Any]) -> int:
        """The flat mode index for the next frame, given the last observation and info."""


@dataclass(frozen=True)
class ModeTable:
    """Per-mode constants of a scenario, as flat (M,) arrays in action-table order.

    Everything here is known to the device ahead of time: the model profile (accuracy, payload),
    the device profile (mean compute time, power, radio model), the link's base delay, the edge's
    median service time, the deadline and the reward weights.
    """

    action_table: tuple[tuple[int, int], ...]
    K: int
    B: int
    k: np.ndarray
    bits: np.ndarray
    accuracy: np.ndarray
    payload_bytes: np.ndarray
    compute_ms: np.ndarray
    service_ms: np.ndarray
    allowed: np.ndarray
    delay_ms: float
    cost: CostModel
    periodic: bool = False
    unit_ms: float = 1.0

    @property
    def M(self) -> int:
        return len(self.action_table)

    @property
    def deadline_ms(self) -> float:
        return self.cost.deadline_ms

    @property
    def w_accuracy(self) -> float:
        return self.cost.w_accuracy

    @property
    def miss_penalty(self) -> float:
        return self.cost.miss_penalty

    @property
    def w_energy(self) -> float:
        return self.cost.w_energy

    @classmethod
    def from_world(cls, world: Any) -> ModeTable:
        """From a :class:`slimrl.env.dynamics.World` (``env.unwrapped.world``)."""
        return cls(
            action_table=tuple((int(k), int(b)) for k, b in world.action_table),
            K=int(world.K),
            B=int(world.B),
            k=np.asarray(world.k_of, dtype=np.int64),
            bits=np.asarray(world.bits_of, dtype=np.int64),
            accuracy=np.asarray(world.accuracy, dtype=np.float64),
            payload_bytes=np.asarray(world.payload, dtype=np.float64),
            compute_ms=np.asarray(world.compute_mean, dtype=np.float64),
            service_ms=np.asarray(world.service_median, dtype=np.float64),
            allowed=np.asarray(world.mode_mask, dtype=bool),
            delay_ms=float(world.delay_ms),
            cost=world.cost,
            periodic=bool(world.periodic),
            unit_ms=float(world.unit_ms),
        )

    @classmethod
    def from_env(cls, env: Any) -> ModeTable:
        """From a SlimSplit env (wrapped or not) or a ``SlimSplitVectorEnv``."""
        return cls.from_world(world_of(env))

    def expected_reward(
        self, e2e_ms: np.ndarray, transfer_ms: np.ndarray, modes: Any = slice(None)
    ) -> np.ndarray:
        """Reward of ``modes`` (default every mode) if their frames took ``e2e_ms``: table
        accuracy, mean compute time, the scenario's deadline accounting and radio energy."""
        cost = self.cost
        return cost.terms_array(
            e2e_ms <= self.deadline_ms,
            self.accuracy[modes],
            e2e_ms,
            self.compute_ms[modes],
            1e-3 * transfer_ms,
            cost.radio_bytes_j(self.payload_bytes[modes]),
        )[-1]

    def busy_ms(self, e2e_ms: np.ndarray) -> np.ndarray:
        """Time from a frame's start to the next frame's start if the frame took ``e2e_ms``."""
        return np.maximum(np.ceil(e2e_ms / self.unit_ms), 1.0) * self.unit_ms

    def action_mask(self, multidiscrete: bool) -> np.ndarray:
        """Allowed actions in MaskablePPO's format (K + B, or K * B when flat)."""
        return action_mask(self.allowed, self.K, self.B, multidiscrete)

    def label(self, a: int) -> str:
        k, b = self.action_table[int(a)]
        return f"{k},{b}"

    def index(self, k: int, bits: int) -> int:
        """Flat index of mode ``(k, bits)``; ``ValueError`` if the profile has no such mode."""
        try:
            return self.action_table.index((int(k), int(bits)))
        except ValueError:
            ks = sorted({m[0] for m in self.action_table})
            bs = sorted({m[1] for m in self.action_table})
            raise ValueError(f"no mode k={k} bits={bits} (k in {ks}, bits in {bs})") from None


def world_of(env: Any) -> Any:
    """The :class:`World` behind an env, a wrapped env or a vector env."""
    for obj in (env, getattr(env, "unwrapped", None)):
        w = getattr(obj, "world", None)
        if w is not None:
            return w
    if hasattr(env, "action_table") and hasattr(env, "mode_mask"):
        return env  # a World itself
    raise TypeError(f"{env!r} is not a SlimSplit env (no .world)")


def to_env_action(a: int | np.ndarray, table: ModeTable, multidiscrete: bool = True) -> Any:
    """Flat index (or array of them) -> the env's action: ``[ki, bi]`` or the index itself."""
    if not multidiscrete:
        return a
    a = np.asarray(a, dtype=np.int64)
    return np.stack([a // table.B, a % table.B], axis=-1)


class BatchPolicy:
    """Base class of policies that act on N observations at once, state kept in (N,) arrays.

    Subclasses implement :meth:`_reset_rows` (start a new episode for some rows) and
    :meth:`act_batch`. ``act`` is ``act_batch`` on a batch of one. Set ``needs_lookahead`` for
    clairvoyant policies: they read ``infos["lookahead"]`` (the env's ``lookahead()``); set
    ``needs_episode`` for offline planners: they read ``infos["episode"]`` (``episode_state()``).
    """

    name: str = "policy"
    needs_lookahead: bool = False
    needs_episode: bool = False

    def __init__(self, table: ModeTable, n: int = 1) -> None:
        self.table = table
        self.n = 0
        self.reset(n)

    # -- batch form -------------------------------------------------------------------------
    def reset(self, n: int = 1) -> None:
        """Allocate state for ``n`` rows (all at the start of an episode)."""
        self.n = int(n)
        before = dict(vars(self))
        self._alloc(self.n)
        # what _alloc made is the per-row state (keep_rows subsets it)
        self._row_state = [k for k, v in vars(self).items() if before.get(k, _NONE) is not v]
        self._reset_rows(np.ones(self.n, dtype=bool))

    def keep_rows(self, rows: np.ndarray) -> None:
        """Keep only rows ``rows`` (indices, in that order) of the per-row state, which go on
        as they were: an evaluation drops the episodes that have ended. The state is what
        :meth:`_alloc` allocates (arrays and lists with one entry per row); a subclass with other
        per-row attributes (per-row parameters) extends this."""
        idx = np.asarray(rows, dtype=np.int64).reshape(-1)
        for key in getattr(self, "_row_state", ()):
            v = getattr(self, key)
            if isinstance(v, np.ndarray) and v.ndim and v.shape[0] == self.n:
                setattr(self, key, v[idx])
            elif isinstance(v, list) and len(v) == self.n:
                setattr(self, key, [v[i] for i in idx.tolist()])
        self.n = int(idx.size)

    def act_batch(self, observations: np.ndarray, infos: Mapping[str, Any]) -> np.ndarray:
        """Flat mode indices (N,) for N observations and the matching infos (dict of arrays)."""
        raise NotImplementedError

    # -- single form ------------------------------------------------------------------------
    def act(self, observation: np.ndarray, info: Mapping[str, Any]) -> int:
        """One decision: ``act_batch`` on a batch of one."""
        if self.n != 1:
            self.reset(1)
        batch = {k: np.asarray([v]) for k, v in info.items() if k in MEASURED_KEYS}
        for key in ("lookahead", "episode"):
            if key in info:
                batch[key] = {k: np.asarray(v)[None] for k, v in info[key].items()}
        return int(self.act_batch(np.asarray(observation)[None], batch)[0])

    # -- state --------------------------------------------------------------------------------
    def _alloc(self, n: int) -> None:
        """Allocate per-row state arrays (stateless policies: nothing)."""

    def _reset_rows(self, rows: np.ndarray) -> None:
        """Start a new episode for the rows where ``rows`` (bool (N,)) is set."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


def measurements(infos: Mapping[str, Any], n: int, keys: tuple[str, ...]) -> tuple[np.ndarray, ...]:
    """``(valid, *values)``: rows of ``infos`` that carry a measurement of the last frame.

    A row is valid when every key is present and its ``_key`` mask (vector envs) is on; values
    of invalid rows are 0.
    """
    valid = np.ones(n, dtype=bool)
    out = []
    for key in keys:
        v = infos.get(key)
        if v is None:
            return (np.zeros(n, dtype=bool), *(np.zeros(n) for _ in keys))
        arr = np.asarray(v, dtype=np.float64).reshape(n)
        mask = infos.get(f"_{key}")
        if mask is not None:
            valid &= np.asarray(mask, dtype=bool).reshape(n)
        out.append(arr)
    return (valid, *(np.where(valid, a, 0.0) for a in out))


# -- the policy table ---------------------------------------------------------------------------
@dataclass
class PolicyContext:
    """What a policy factory may use besides its argument.

    ``env``: the env the policy will act in (a SlimSplit env, wrapped or vector); ``seed`` seeds
    random policies; ``search`` runs a tuned-threshold search for a scenario that has no saved
    one (None: such a lookup fails with a message naming the command); ``notice`` receives
    one-line messages.
    """

    table: ModeTable
    env: Any
    seed: int | None = 0
    search: Callable[[Any], dict] | None = None
    notice: Callable[[str], None] | None = None


#: ``factory(arg, ctx)``: ``arg`` is what follows ``name:`` in the policy's name ('' if nothing)
PolicyFactory = Callable[[str, PolicyContext], BatchPolicy]


@dataclass(frozen=True)
class PolicyEntry:
    factory: PolicyFactory
    usage: str
    help: str


#: policy name -> factory; heuristics add themselves with :func:`register_policy`
POLICIES: dict[str, PolicyEntry] = {}


def register_policy(name: str, usage: str | None = None, help: str = "") -> Callable:
    """Decorator: register ``factory(arg, ctx)`` under ``name`` (``usage`` e.g. ``static:K,B``)."""

    def deco(factory: PolicyFactory) -> PolicyFactory:
        if name in POLICIES:
            raise ValueError(f"policy {name!r} registered twice")
        POLICIES[name] = PolicyEntry(factory, usage or name, help)
        return factory

    return deco
