"""The frame record (one definition for every consumer) and the cost model (reward and energy).

Every frame the simulator plays, in the single env, the vector env, the evaluator and the
offline optimum, is the tuple :data:`FRAME_KEYS` (scalars in the single env, arrays in the
vector env); ``info`` is its first :data:`N_INFO` entries plus the mode and the episode context.

:class:`CostModel` is the one owner of the objective: energy from the device's compute power
and radio model, the deadline accounting and the reward terms. Its methods are plain arithmetic,
so the same code serves Python floats and numpy arrays; the only branch (how many deadline
intervals a late frame costs) has a scalar and an array form next to each other.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

#: the frame record, in order; the first ``N_INFO`` go into ``info``
FRAME_KEYS = (
    "accuracy",  # 0/1 (per-sample correctness) or the mode's table accuracy
    "on_time",  # e2e_ms <= deadline_ms
    "e2e_ms",  # compute + link + transfer + 2 x base delay + edge queue + service
    "compute_ms",  # device compute (profile mean + jitter)
    "transfer_ms",  # payload over the trace from the instant compute ends (stalls included)
    "edge_ms",  # queue behind other tenants + service
    "edge_queue_ms",  # the queueing delay the edge reports with its answer
    "bytes",  # payload bytes
    "energy_j",  # device energy: compute + radio
    "bandwidth_mbps",  # true capacity when the send starts
    "reward_accuracy",
    "reward_miss",
    "reward_energy",
    "missed",  # deadline intervals charged: e2e / deadline if late (closed loop), late + dropped
    "dropped",  # arrivals dropped while busy (periodic arrivals; 0 in the closed loop)
    "busy_ms",  # time from this frame's start to the next frame's start
    "reward",  # reward_accuracy + reward_miss + reward_energy
    "next_unit",  # time unit (grid slot or arrival tick) at which the next frame starts
)
N_INFO = FRAME_KEYS.index("reward")
FRAME_INFO_KEYS = FRAME_KEYS[:N_INFO]
INDEX = {k: i for i, k in enumerate(FRAME_KEYS)}


@dataclass(frozen=True)
class CostModel:
    """Energy, deadline accounting and reward of a frame, from the device profile, the scenario's
    reward weights and how frames arrive.

    - energy (J) ``= P_compute * compute + base_w * transfer + alpha * Mbit`` (the radio model
      ``P = base_w + alpha * throughput`` integrated over the transfer);
    - a frame occupies ``units = max(1, ceil(e2e / unit))`` time units (grid slots in the closed
      loop, arrival ticks with periodic arrivals): the next frame starts after them;
    - a frame that misses the deadline earns no accuracy and costs ``miss_penalty`` per deadline
      interval it blocked the device: in the closed loop ``e2e / deadline`` (in proportion to how
      long it blocks, so a long miss costs exactly what several short misses of the same total
      time cost, and stretching a miss never pays); with periodic arrivals 1 for the late frame
      plus 1 per arrival dropped while the device was busy (``units - 1``);
    - ``reward = w_acc * accuracy * on_time - miss_penalty * missed - w_energy * energy``.

    :meth:`terms` (Python floats, the single env's hot path) and :meth:`terms_array` (numpy) are
    the same formulas, side by side; tests hold them equal bit for bit.
    """

    compute_power_w: float
    radio_base_w: float
    radio_alpha_w_per_mbps: float
    deadline_ms: float
    w_accuracy: float
    miss_penalty: float
    w_energy: float
    periodic: bool = False
    unit_ms: float = 1.0

    @classmethod
    def from_scenario(cls, scenario) -> CostModel:
        dev, rw = scenario.device_profile, scenario.reward
        periodic = scenario.arrival.mode == "periodic"
        return cls(
            compute_power_w=float(dev.compute_power_w),
            radio_base_w=float(dev.radio_base_w),
            radio_alpha_w_per_mbps=float(dev.radio_alpha_w_per_mbps),
            deadline_ms=float(scenario.deadline_ms),
            w_accuracy=float(rw.accuracy),
            miss_penalty=float(rw.miss_penalty),
            w_energy=float(rw.energy),
            periodic=periodic,
            unit_ms=1000.0 / scenario.arrival.fps if periodic else float(scenario.time_grid_ms),
        )

    def radio_bytes_j(self, payload_bytes):
        """The throughput term of the radio energy: ``alpha * Mbit`` (J)."""
        return self.radio_alpha_w_per_mbps * 8e-6 * payload_bytes

    def terms(
        self, on: bool, acc: float, e2e_ms: float, compute_ms: float, transfer_s: float,
        radio_bytes_j: float,
    ) -> tuple:  # fmt: skip
        """``(energy_j, missed, dropped, units, reward_accuracy, reward_miss, reward_energy,
        reward)`` of one frame (Python numbers)."""
        return self.scalar_terms()(on, acc, e2e_ms, compute_ms, transfer_s, radio_bytes_j)

    def scalar_terms(self) -> Callable[..., tuple]:
        """:meth:`terms` as a closure over the model's constants (the single env's hot path)."""
        power_ms = self.compute_power_w * 0.001  # evaluated first in the formula too
        base_w, unit_ms, deadline = self.radio_base_w, self.unit_ms, self.deadline_ms
        w_acc, penalty, w_en, periodic, ceil = (
            self.w_accuracy, self.miss_penalty, self.w_energy, self.periodic, math.ceil,
        )  # fmt: skip

        def terms(
            on: bool, acc: float, e2e_ms: float, compute_ms: float, transfer_s: float,
            radio_bytes_j: float,
        ) -> tuple:  # fmt: skip
            energy = power_ms * compute_ms + base_w * transfer_s + (radio_bytes_j)
            units = ceil(e2e_ms / unit_ms)
            if units < 1:
                units = 1
            if periodic:
                dropped = units - 1
                missed = float(dropped if on else dropped + 1)
            else:
                dropped = 0
                missed = 0.0 if on else e2e_ms / deadline
            r_acc = on * w_acc * acc
            r_miss = 0.0 - penalty * missed
            r_en = 0.0 - w_en * energy
            return energy, missed, dropped, units, r_acc, r_miss, r_en, r_acc + r_miss + r_en

        return terms

    def terms_array(
        self, on: np.ndarray, acc: np.ndarray, e2e_ms: np.ndarray, compute_ms: np.ndarray,
        transfer_s: np.ndarray, radio_bytes_j: np.ndarray,
    ) -> tuple:  # fmt: skip
        """:meth:`terms` over arrays (``dropped`` and ``units`` as int64)."""
        energy = (
            self.compute_power_w * 0.001 * compute_ms
            + self.radio_base_w * transfer_s
            + (radio_bytes_j)
        )
        units = np.maximum(np.ceil(e2e_ms / self.unit_ms), 1.0)
        if self.periodic:
            dropped = units - 1.0
            missed = dropped + ~on
        else:
            dropped = np.zeros_like(units)
            missed = np.where(on, 0.0, e2e_ms / self.deadline_ms)
        r_acc = on * self.w_accuracy * acc
        r_miss = 0.0 - self.miss_penalty * missed
        r_en = 0.0 - self.w_energy * energy
        reward = r_acc + r_miss + r_en
        return (
            energy, missed, dropped.astype(np.int64), units.astype(np.int64), r_acc, r_miss, r_en,
            reward,
        )  # fmt: skip
