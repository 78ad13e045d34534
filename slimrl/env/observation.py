"""The observation vector: only what a real device knows after its last answer came back.

One builder serves the simulator (one env or a batch of N) and the device runtime, which feeds
it real measurements. Layout (``ObservationBuilder.names``), all float32, bounds in ``space``:

=====================  ========================================================  ============
name                   meaning                                                   bounds
=====================  ========================================================  ============
goodput_mbps_0..H-1    goodput of the last H transfers, most recent first        [0, max_mbps]
                       (bytes * 8 / transfer time, Mbit/s; 0 before any)
transfer_s             time the last payload took on the uplink                  [0, max_time_s]
compute_s              device compute time of the last frame                     [0, max_time_s]
e2e_s                  end-to-end latency of the last frame                      [0, max_time_s]
edge_queue_s           queueing delay the edge reported with its last answer     [0, max_time_s]
on_time                1 if the last frame met the deadline, else 0              [0, 1]
k_frac                 k of the last frame / K_max (0 before any)                [0, 1]
bits_frac              bits of the last frame / bits_max (0 before any)          [0, 1]
deadline_s             the deadline                                              [0, max(...)]
=====================  ========================================================  ============

Values above a bound are clipped to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium import spaces


class ObservationBuilder:
    """Turns device-side measurements into the float32 observation (one device or a batch)."""

    def __init__(
        self,
        history: int,
        k_max: int,
        bits_max: int,
        deadline_ms: float,
        max_mbps: float = 1000.0,
        max_time_s: float = 10.0,
    ) -> None:
        self.history = int(history)
        self.k_max = int(k_max)
        self.bits_max = int(bits_max)
        self.deadline_s = float(deadline_ms) / 1000.0
        self.max_mbps = float(max_mbps)
        self.max_time_s = float(max_time_s)
        H = self.history
        self.names: tuple[str, ...] = (
            *(f"goodput_mbps_{i}" for i in range(H)),
            "transfer_s",
            "compute_s",
            "e2e_s",
            "edge_queue_s",
            "on_time",
            "k_frac",
            "bits_frac",
            "deadline_s",
        )
        self.dim = len(self.names)
        high = np.array(
            [self.max_mbps] * H
            + [self.max_time_s] * 4
            + [1.0, 1.0, 1.0, max(self.deadline_s, self.max_time_s)],
            dtype=np.float32,
        )
        self.low = np.zeros(self.dim, dtype=np.float32)
        self.high = high
        self.space = spaces.Box(self.low, self.high, dtype=np.float32)
        self._deadline_obs = min(self.deadline_s, float(high[-1]))
        self._inv_k = 1.0 / self.k_max
        self._inv_b = 1.0 / self.bits_max

    @classmethod
    def from_scenario(cls, scenario: Any, k_max: int, bits_max: int) -> ObservationBuilder:
        """The builder of a scenario's observation (its ``observation`` section and deadline)."""
        ob = scenario.observation
        return cls(ob.history, k_max, bits_max, scenario.deadline_ms, ob.max_mbps, ob.max_time_s)

    def spec(self) -> dict:
        """A JSON-ready description (names, bounds, parameters) for export manifests."""
        return {
            "names": list(self.names),
            "low": self.low.tolist(),
            "high": self.high.tolist(),
            "history": self.history,
            "k_max": self.k_max,
            "bits_max": self.bits_max,
            "deadline_s": self.deadline_s,
            "max_mbps": self.max_mbps,
            "max_time_s": self.max_time_s,
        }

    def initial(self, n: int | None = None) -> np.ndarray:
        """The observation before any frame: zeros except the deadline (shape (D,) or (n, D))."""
        obs = np.zeros(self.dim if n is None else (n, self.dim), dtype=np.float32)
        obs[..., -1] = min(self.deadline_s, self.high[-1])
        return obs

    def build(
        self,
        goodput_mbps: Sequence[float] | np.ndarray,
        transfer_ms: float | np.ndarray,
        compute_ms: float | np.ndarray,
        e2e_ms: float | np.ndarray,
        edge_queue_ms: float | np.ndarray,
        on_time: bool | np.ndarray,
        k: int | np.ndarray,
        bits: int | np.ndarray,
    ) -> np.ndarray:
        """Observation(s) from measurements: ``goodput_mbps`` (..., H), the rest scalars or (...,).

        With one device, pass H goodputs and scalars and get shape (D,); with a batch of N,
        pass (N, H) and (N,) arrays and get (N, D). Times are in ms, as measured.
        """
        g = np.asarray(goodput_mbps, dtype=np.float64)
        if g.shape[-1:] != (self.history,):
            raise ValueError(f"goodput_mbps: expected last dimension {self.history}, got {g.shape}")
        # float64 values, rounded once to float32 on assignment (as in build_one)
        obs = np.empty((*g.shape[:-1], self.dim), dtype=np.float32)
        H = self.history
        obs[..., :H] = g
        obs[..., H] = np.asarray(transfer_ms, dtype=np.float64) * 0.001
        obs[..., H + 1] = np.asarray(compute_ms, dtype=np.float64) * 0.001
        obs[..., H + 2] = np.asarray(e2e_ms, dtype=np.float64) * 0.001
        obs[..., H + 3] = np.asarray(edge_queue_ms, dtype=np.float64) * 0.001
        obs[..., H + 4] = np.asarray(on_time, dtype=np.float64)
        obs[..., H + 5] = np.asarray(k, dtype=np.float64) * self._inv_k
        obs[..., H + 6] = np.asarray(bits, dtype=np.float64) * self._inv_b
        obs[..., H + 7] = self.deadline_s
        return self.finish(obs)

    def build_one(
        self,
        goodput_mbps: list[float],
        transfer_ms: float,
        compute_ms: float,
        e2e_ms: float,
        edge_queue_ms: float,
        on_time: bool,
        k: int,
        bits: int,
    ) -> np.ndarray:
        """Fast path of :meth:`build` for one device fed Python numbers (same result)."""
        hg, ht = self.max_mbps, self.max_time_s
        vals = [hg if v > hg else (v if v > 0.0 else 0.0) for v in goodput_mbps]
        if len(vals) != self.history:
            raise ValueError(f"goodput_mbps: expected {self.history} values, got {len(vals)}")
        for v in (transfer_ms * 0.001, compute_ms * 0.001, e2e_ms * 0.001, edge_queue_ms * 0.001):
            vals.append(ht if v > ht else (v if v > 0.0 else 0.0))
        kf, bf = k * self._inv_k, bits * self._inv_b
        vals += (
            1.0 if on_time else 0.0,
            1.0 if kf > 1.0 else (kf if kf > 0.0 else 0.0),
            1.0 if bf > 1.0 else (bf if bf > 0.0 else 0.0),
            self._deadline_obs,
        )
        return np.fromiter(vals, np.float32, self.dim)

    def finish(self, obs: np.ndarray) -> np.ndarray:
        """Cast to float32 and clip to the bounds (in place where possible)."""
        if obs.dtype != np.float32:
            obs = obs.astype(np.float32)
        np.minimum(obs, self.high, out=obs)
        np.maximum(obs, self.low, out=obs)
        return obs
