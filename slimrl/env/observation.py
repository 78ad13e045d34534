"""The observation: what a real device knows after its last answer, in units free of link scale.

One builder serves the simulator (one env or a batch of N) and the device runtime, which feeds it
real measurements. Every value is a ratio squashed into [0, 1) by ``x / (1 + x)`` (the logistic
of ``log x``): no clip that saturates on a faster or slower link, and a link 100 times faster
moves the inputs smoothly towards their limit instead of off the scale the policy trained on.
Time ratios are taken against the deadline ``D``; the link enters only through the transfer
times it caused. Layout (``ObservationBuilder.names``), float32:

=====================  ========================================================================
name                   meaning
=====================  ========================================================================
fit_<bytes>            predicted transfer time of a payload of that size over ``D``, squashed:
                       ``a / (D + a)`` with ``a = bytes * mean(transfer_ms / bytes)`` over the
                       last H transfers (the harmonic-mean goodput); one per payload size
trend_0..H-1           goodput of each of the last H transfers against that mean, newest first:
                       ``inv_mean / (inv_mean + inv_i)`` (0.5: as fast as the mean; 0.5 if none)
queue                  queueing delay the edge reported with its last answer: ``q / (D + q)``
network                the rest of the last round trip (base delays, framing): ``o / (D + o)``,
                       ``o = e2e - compute - transfer - edge`` (>= 0)
e2e                    last end-to-end latency: ``e2e / (D + e2e)`` (0.5 at the deadline)
on_time                1 if the last frame met the deadline, else 0
k_frac, bits_frac      k / K_max and bits / bits_max of the last frame (0 before any)
filled                 transfers in the history / H (0 before the first answer)
=====================  ========================================================================
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from gymnasium import spaces

LAYOUT = "scale-free-v1"


class ObservationBuilder:
    """Turns device-side measurements into the float32 observation (one device or a batch).

    The goodput history is kept by the caller as inverse goodputs (``transfer_ms / bytes``, ms
    per byte), newest first, with the number of transfers seen.
    """

    def __init__(
        self,
        history: int,
        k_max: int,
        bits_max: int,
        deadline_ms: float,
        payload_bytes: Sequence[float],
    ) -> None:
        self.history = int(history)
        self.k_max = int(k_max)
        self.bits_max = int(bits_max)
        self.deadline_ms = float(deadline_ms)
        self.payloads = tuple(sorted({float(p) for p in payload_bytes}))
        if self.history < 1 or not self.payloads or self.deadline_ms <= 0:
            raise ValueError("observation: history >= 1, payload sizes and a deadline > 0 needed")
        H, B = self.history, len(self.payloads)
        self.names: tuple[str, ...] = (
            *(f"fit_{int(p)}" for p in self.payloads),
            *(f"trend_{i}" for i in range(H)),
            "queue",
            "network",
            "e2e",
            "on_time",
            "k_frac",
            "bits_frac",
            "filled",
        )
        self.dim = len(self.names)
        self.low = np.zeros(self.dim, dtype=np.float32)
        self.high = np.ones(self.dim, dtype=np.float32)
        self.space = spaces.Box(self.low, self.high, dtype=np.float32)
        self._B, self._H = B, H
        self._inv_k = 1.0 / self.k_max
        self._inv_b = 1.0 / self.bits_max
        self._payload_arr = np.array(self.payloads)
        self._initial = np.zeros(self.dim, dtype=np.float32)
        self._initial[B : B + H] = 0.5
        self._one: Callable[..., np.ndarray] | None = None  # scalar_builder(), on first use

    # -- construction ----------------------------------------------------------------------------
    @classmethod
    def from_world(cls, world: Any) -> ObservationBuilder:
        """The builder of a world's scenario (its observation history, deadline, payloads)."""
        payloads = np.asarray(world.payload)[np.asarray(world.mode_mask, dtype=bool)]
        return cls(
            world.scenario.observation.history,
            world.k_max,
            world.bits_max,
            world.deadline_ms,
            payloads,
        )

    def spec(self) -> dict:
        """A JSON-ready description (names, bounds, parameters) for export manifests."""
        return {
            "layout": LAYOUT,
            "names": list(self.names),
            "low": self.low.tolist(),
            "high": self.high.tolist(),
            "history": self.history,
            "k_max": self.k_max,
            "bits_max": self.bits_max,
            "deadline_ms": self.deadline_ms,
            "payload_bytes": list(self.payloads),
        }

    @classmethod
    def from_spec(cls, spec: dict, deadline_ms: float | None = None) -> ObservationBuilder:
        """The builder a manifest's observation spec describes (``deadline_ms`` overrides)."""
        if spec.get("layout") != LAYOUT:
            raise ValueError(
                f"observation layout {spec.get('layout')!r}; this slimrl builds {LAYOUT!r}"
            )
        return cls(
            spec["history"],
            spec["k_max"],
            spec["bits_max"],
            spec["deadline_ms"] if deadline_ms is None else deadline_ms,
            spec["payload_bytes"],
        )

    # -- observations ----------------------------------------------------------------------------
    def initial(self, n: int | None = None) -> np.ndarray:
        """The observation before any frame, shape (D,) or (n, D)."""
        if n is None:
            return self._initial.copy()
        return np.broadcast_to(self._initial, (n, self.dim)).copy()

    def build_one(
        self,
        inv: Sequence[float],
        count: int,
        transfer_ms: float,
        compute_ms: float,
        edge_ms: float,
        edge_queue_ms: float,
        e2e_ms: float,
        on_time: bool,
        k: int,
        bits: int,
    ) -> np.ndarray:
        """One device's observation. ``inv``: the last H transfers' ms per byte, newest first
        (the first ``count`` valid); the rest are the last frame's measurements (ms)."""
        fn = self._one
        if fn is None:
            fn = self._one = self.scalar_builder()
        return fn(inv, count, transfer_ms, compute_ms, edge_ms, edge_queue_ms, e2e_ms, on_time, k,
                  bits)  # fmt: skip

    def scalar_builder(self) -> Callable[..., np.ndarray]:
        """:meth:`build_one` as a closure over the builder's constants (the single env's hot
        path); same float64 operations in the same order as :meth:`build`'s rows."""
        d, H, payloads = self.deadline_ms, self._H, self.payloads
        inv_k, inv_b, dim = self._inv_k, self._inv_b, self.dim
        fromiter, f32 = np.fromiter, np.float32
        rows = range(H)

        def build_one(
            inv: Sequence[float], count: int, transfer_ms: float, compute_ms: float,
            edge_ms: float, edge_queue_ms: float, e2e_ms: float, on_time: bool, k: int, bits: int,
        ) -> np.ndarray:  # fmt: skip
            vals = []
            append = vals.append
            if count >= H:  # a full history (the common case)
                used = H
                mean = sum(inv) / H
                for p in payloads:
                    a = p * mean
                    append(a / (d + a))
                for x in inv:
                    den = mean + x
                    append(mean / den if den > 0.0 else 0.5)
            else:
                used = count
                mean = sum(inv[:used]) / used if used else 0.0
                for p in payloads:
                    a = p * mean
                    append(a / (d + a))
                for i in rows:
                    den = mean + inv[i]
                    append(mean / den if i < used and den > 0.0 else 0.5)
            o = e2e_ms - compute_ms - transfer_ms - edge_ms
            if o < 0.0:
                o = 0.0
            q = edge_queue_ms if edge_queue_ms > 0.0 else 0.0
            vals += (
                q / (d + q),
                o / (d + o),
                e2e_ms / (d + e2e_ms),
                1.0 if on_time else 0.0,
                k * inv_k,
                bits * inv_b,
                used / H,
            )
            return fromiter(vals, f32, dim)  # each float64 rounded to float32, as np.array does

        return build_one

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_one"] = None  # a closure: rebuilt on first use
        return state

    def build(
        self,
        inv: np.ndarray,
        count: np.ndarray,
        transfer_ms: np.ndarray,
        compute_ms: np.ndarray,
        edge_ms: np.ndarray,
        edge_queue_ms: np.ndarray,
        e2e_ms: np.ndarray,
        on_time: np.ndarray,
        k: np.ndarray,
        bits: np.ndarray,
    ) -> np.ndarray:
        """:meth:`build_one` for a batch: ``inv`` (N, H), the rest (N,); returns (N, D)."""
        d = self.deadline_ms
        H, B = self._H, self._B
        inv = np.asarray(inv, dtype=np.float64)
        used = np.minimum(np.asarray(count), H)
        valid = np.arange(H)[None, :] < used[:, None]
        obs = np.empty((len(inv), self.dim), dtype=np.float32)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(used > 0, np.where(valid, inv, 0.0).sum(axis=1) / used, 0.0)
            a = self._payload_arr[None, :] * mean[:, None]
            obs[:, :B] = a / (d + a)
            den = mean[:, None] + inv
            obs[:, B : B + H] = np.where(valid & (den > 0.0), mean[:, None] / den, 0.5)
        o = np.maximum(e2e_ms - compute_ms - transfer_ms - edge_ms, 0.0)
        q = np.maximum(edge_queue_ms, 0.0)
        obs[:, B + H] = q / (d + q)
        obs[:, B + H + 1] = o / (d + o)
        obs[:, B + H + 2] = e2e_ms / (d + e2e_ms)
        obs[:, B + H + 3] = np.asarray(on_time, dtype=np.float64)
        obs[:, B + H + 4] = np.asarray(k, dtype=np.float64) * self._inv_k
        obs[:, B + H + 5] = np.asarray(bits, dtype=np.float64) * self._inv_b
        obs[:, B + H + 6] = used / H
        return obs
