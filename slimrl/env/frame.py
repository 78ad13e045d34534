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
    "goodput_mbps",  # payload / transfer time, what the device measures
    "next_unit",  # time unit (grid slot or arrival tick) at which the next frame starts
)
N_INFO = FRAME_KEYS.index("reward")
FRAME_INFO_KEYS = FRAME_KEYS[:N_INFO]
INDEX = {k: i for i, k in enumerate(FRAME_KEYS)}


@dataclass(frozen=True)
class CostModel:
    """Energy and reward of a frame, from the device profile and the scenario's reward weights.

    - energy (J) ``= P_compute * compute + base_w * transfer + alpha * Mbit`` (the radio model
      ``P = base_w + alpha * throughput`` integrated over the transfer);
    - a frame that misses the deadline earns no accuracy and costs ``miss_penalty`` per deadline
      interval it blocked the device: in the closed loop ``e2e / deadline`` (in proportion to
      how long it blocks, so a long miss costs exactly what several short misses of the same
      total time cost, and stretching a miss never pays); with periodic arrivals 1 for the late
      frame plus 1 per arrival dropped while the device was busy;
    - ``reward = w_acc * accuracy * on_time - miss_penalty * missed - w_energy * energy``.
    """

    compute_power_w: float
    radio_base_w: float
    radio_alpha_w_per_mbps: float
    deadline_ms: float
    w_accuracy: float
    miss_penalty: float
    w_energy: float

    @classmethod
    def from_scenario(cls, scenario) -> CostModel:
        dev, rw = scenario.device_profile, scenario.reward
        return cls(
            compute_power_w=float(dev.compute_power_w),
            radio_base_w=float(dev.radio_base_w),
            radio_alpha_w_per_mbps=float(dev.radio_alpha_w_per_mbps),
            deadline_ms=float(scenario.deadline_ms),
            w_accuracy=float(rw.accuracy),
            miss_penalty=float(rw.miss_penalty),
            w_energy=float(rw.energy),
        )

    def radio_bytes_j(self, payload_bytes):
        """The throughput term of the radio energy: ``alpha * Mbit`` (J)."""
        return self.radio_alpha_w_per_mbps * 8e-6 * payload_bytes

    def energy_j(self, compute_ms, transfer_s, radio_bytes_j):
        """Device energy (J) of a frame (floats or arrays)."""
        return (
            self.compute_power_w * 0.001 * compute_ms
            + self.radio_base_w * transfer_s
            + (radio_bytes_j)
        )

    def late_units(self, e2e_ms: float) -> float:
        """Deadline intervals a late closed-loop answer costs: ``e2e / deadline`` (0 on time)."""
        d = self.deadline_ms
        return e2e_ms / d if e2e_ms > d else 0.0

    def late_units_array(self, e2e_ms: np.ndarray) -> np.ndarray:
        """:meth:`late_units` over an array."""
        d = self.deadline_ms
        return np.where(e2e_ms > d, e2e_ms / d, 0.0)

    def rewards(self, on_time, accuracy, missed, energy_j):
        """``(reward_accuracy, reward_miss, reward_energy, reward)`` (floats or arrays)."""
        r_acc = on_time * self.w_accuracy * accuracy
        r_miss = 0.0 - self.miss_penalty * missed
        r_en = 0.0 - self.w_energy * energy_j
        return r_acc, r_miss, r_en, r_acc + r_miss + r_en
