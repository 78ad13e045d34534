"""The simulated world of one frame, in a scalar form (one env) and a numpy form (N envs).

Both forms run the same float64 operations in the same order, so a vector env and N single envs
seeded alike agree bit for bit. Every random quantity is drawn from the env's generator in blocks
(:meth:`World.draw_episode` at reset, :meth:`World.draw_block` at reset and whenever a long
episode has used a block up); a step only indexes those blocks.

Per frame, starting at sim time ``t`` (s, on the trace's clock) in mode ``m`` (flat k-major index):

1. compute ``c = mean[m] + jitter[m] * zc`` (ms, >= 0)
2. the payload ``payload[m]`` bytes crosses the trace from ``t + c``: ``tx`` (s); outages stall it
3. it reaches the edge after the base one-way delay, waits behind the other tenants' backlog
   ``W`` at that instant and is served in ``service[m] * exp(sigma * ze)`` ms
4. the answer returns after the base one-way delay: ``e2e = c + tx + 2 * delay + W + service``
5. energy ``= P_compute * c + base_w * tx + alpha_w_per_mbps * Mbit`` (the radio model
   ``P = base_w + alpha * throughput`` integrated over the transfer)
6. reward ``= w_acc * accuracy`` if ``e2e <= deadline`` else ``-miss_penalty``, ``- w_e * energy``
7. the next frame starts when the answer is back (closed loop) or at the next arrival tick after
   that (periodic; the ticks in between are dropped frames).
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from slimrl.env.edge import backlog_bank
from slimrl.scenario import Scenario
from slimrl.scenario.schema import Z90, lognormal_params
from slimrl.traces import MBPS, TraceSet

#: lookahead keys, in the order of the tuple returned by :meth:`World.frame`
FRAME_KEYS = (
    "e2e_ms",
    "on_time",
    "compute_ms",
    "transfer_ms",
    "edge_ms",
    "edge_queue_ms",
    "bytes",
    "energy_j",
    "bandwidth_mbps",
    "accuracy",
    "reward_accuracy",
    "reward_miss",
    "reward_energy",
    "reward",
    "goodput_mbps",
    "next_t_s",
    "dropped",
)


@dataclass
class Block:
    """Per-frame random draws of one env: compute jitter normals, service-time multipliers and
    (with per-sample accuracy) test-sample indices, all of length ``World.block_len``."""

    zc: np.ndarray
    mult: np.ndarray
    sidx: np.ndarray | None


class World:
    """Every table the dynamics need, resolved from a scenario and a trace set (read-only)."""

    def __init__(self, scenario: Scenario, traces: TraceSet) -> None:
        self.scenario = scenario
        model, device = scenario.model_profile, scenario.device_profile
        self.ks, self.bits = model.ks, model.bits
        self.K, self.B = model.shape
        self.M = self.K * self.B
        self.k_max, self.bits_max = max(self.ks), max(self.bits)
        self.action_table: list[tuple[int, int]] = [(k, b) for k in self.ks for b in self.bits]
        self.k_of = np.array([k for k, _ in self.action_table])
        self.bits_of = np.array([b for _, b in self.action_table])

        mean, jitter = device.compute_table(model)
        self.compute_mean = mean.ravel().copy()
        self.compute_jitter = jitter.ravel().copy()
        self.payload = model.payload_bytes.ravel().copy()
        self.accuracy = model.accuracy.ravel().copy()
        svc = scenario.edge.service
        if svc.from_model is not None:
            self.service_median = model.column(svc.from_model).ravel().copy()
            self.service_sigma = math.log(svc.p90_over_median) / Z90
        else:
            _, self.service_sigma = lognormal_params(svc.median_ms, svc.p90_ms)
            self.service_median = np.full(self.M, svc.median_ms)
        self.samples = None
        if scenario.model.per_sample and model.samples is not None:
            self.samples = np.ascontiguousarray(model.samples.reshape(self.M, -1))
        self.n_samples = 0 if self.samples is None else self.samples.shape[1]

        # energy: J per ms of compute, radio W while sending, and the throughput term in J
        self.power_ms = device.compute_power_w * 0.001
        self.radio_base_w = device.radio_base_w
        self.radio_bytes_j = device.radio_alpha_w_per_mbps * 8e-6 * self.payload

        rw = scenario.reward
        self.w_acc, self.miss, self.w_energy = rw.accuracy, rw.miss_penalty, rw.energy
        self.deadline_ms = scenario.deadline_ms
        self.delay_ms = scenario.link.base_delay_ms
        self.delay_s = self.delay_ms * 0.001
        self.delay2_ms = 2.0 * self.delay_ms
        self.periodic = scenario.arrival.mode == "periodic"
        self.fps = scenario.arrival.fps or 0.0
        self.period_s = 1.0 / self.fps if self.periodic else 0.0
        self.max_mbps = scenario.observation.max_mbps

        # traces
        self.traces = traces
        self.bank = traces.bank
        self.n_traces = len(traces)
        self.trace_names = traces.names
        self.trace_names_arr = np.array(self.trace_names, dtype=object)
        self.durations = self.bank.durations
        self.durations_l = self.durations.tolist()
        self._knots = [tr.knots.tolist() for tr in traces.traces]
        self._cap_mbps = [(tr.capacity / MBPS).tolist() for tr in traces.traces]
        self._pieces = PieceIndex(traces.traces)

        # edge backlog bank (exogenous)
        load = scenario.edge.load
        self.backlog = backlog_bank(load)
        self.n_real, self.n_slots = self.backlog.shape
        self.inv_slot = 1000.0 / load.resolution_ms if load is not None else 0.0
        self.backlog_flat = self.backlog.ravel()
        self._backlog_rows = [memoryview(row) for row in self.backlog]

        # allowed modes and clamping of forbidden ones to the nearest allowed
        allowed_k, allowed_b = scenario.modes.k, scenario.modes.bits
        self.k_mask = np.array([k in allowed_k for k in self.ks])
        self.bits_mask = np.array([b in allowed_b for b in self.bits])
        self.mode_mask = (self.k_mask[:, None] & self.bits_mask[None, :]).ravel()
        kmap = [self.ks.index(_nearest(k, allowed_k)) for k in self.ks]
        bmap = [self.bits.index(_nearest(b, allowed_b)) for b in self.bits]
        self.clamp = [kmap[m // self.B] * self.B + bmap[m % self.B] for m in range(self.M)]
        self.clamp_arr = np.array(self.clamp)

        self.block_len = max(1, min(scenario.episode_length, 1024))
        # Python lists for the scalar path
        self._mean_l = self.compute_mean.tolist()
        self._jit_l = self.compute_jitter.tolist()
        self._payload_l = self.payload.tolist()
        self._acc_l = self.accuracy.tolist()
        self._svc_l = self.service_median.tolist()
        self._rbytes_l = self.radio_bytes_j.tolist()
        self._samples_l = None if self.samples is None else [memoryview(r) for r in self.samples]
        self._last_episode: tuple = (None, None)

    # A world is read-only: copies of an env share it; pickling rebuilds the memoryviews.
    def __deepcopy__(self, memo: dict) -> World:
        return self

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.pop("_backlog_rows", None)
        state.pop("_samples_l", None)
        state["_last_episode"] = (None, None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._backlog_rows = [memoryview(row) for row in self.backlog]
        self._samples_l = None if self.samples is None else [memoryview(r) for r in self.samples]

    # -- randomness ------------------------------------------------------------------------------
    def draw_episode(self, rng: np.random.Generator) -> tuple[int, float, int, int]:
        """(trace index, start s, backlog realisation, backlog offset slot) of a new episode."""
        ti = int(rng.integers(self.n_traces))
        start = float(rng.random()) * self.durations_l[ti]
        real = int(rng.integers(self.n_real))
        off = int(rng.integers(self.n_slots))
        return ti, start, real, off

    def draw_block(self, rng: np.random.Generator) -> Block:
        """The next block of per-frame draws."""
        L = self.block_len
        zc = rng.standard_normal(L)
        mult = np.exp(self.service_sigma * rng.standard_normal(L))
        sidx = rng.integers(0, self.n_samples, L) if self.samples is not None else None
        return Block(zc, mult, sidx)

    # -- scalar form -----------------------------------------------------------------------------
    def frame(
        self, m: int, t: float, ti: int, real: int, off: int, zc: float, mult: float, sidx: int
    ) -> tuple:
        """One frame in mode ``m`` starting at ``t`` (s); values in :data:`FRAME_KEYS` order.

        ``accuracy`` is the per-sample 0/1 value when ``sidx >= 0`` and the model has per-sample
        correctness, else the table value. Convenience form of :meth:`episode_frame`.
        """
        key = (ti, real, off)
        if self._last_episode[0] != key:
            self._last_episode = (key, self.episode_frame(ti, real, off))
        return self._last_episode[1](m, t, zc, mult, sidx)

    def episode_frame(self, ti: int, real: int, off: int) -> Callable[..., tuple]:
        """The scalar frame function ``f(m, t, zc, mult, sidx)`` of one episode (trace ``ti``,
        backlog realisation ``real`` read from slot ``off``): a closure over Python constants,
        the single env's hot path. Returns values in :data:`FRAME_KEYS` order."""
        mean_l, jit_l, payload_l = self._mean_l, self._jit_l, self._payload_l
        acc_l, svc_l, rbytes_l = self._acc_l, self._svc_l, self._rbytes_l
        samples_l = self._samples_l
        xfer = self.traces.traces[ti].transfer_time
        knots, caps, dur = self._knots[ti], self._cap_mbps[ti], self.durations_l[ti]
        row, n_slots, inv_slot = self._backlog_rows[real], self.n_slots, self.inv_slot
        delay_s, delay2_ms, deadline = self.delay_s, self.delay2_ms, self.deadline_ms
        power_ms, base_w = self.power_ms, self.radio_base_w
        w_acc, miss, w_en, max_mbps = self.w_acc, self.miss, self.w_energy, self.max_mbps
        periodic, fps, period = self.periodic, self.fps, self.period_s
        ceil = math.ceil

        def frame(m: int, t: float, zc: float, mult: float, sidx: int) -> tuple:
            c = mean_l[m] + jit_l[m] * zc
            if c < 0.0:
                c = 0.0
            nbytes = payload_l[m]
            t_send = t + c * 0.001
            tx = xfer(t_send, nbytes)
            t_arr = t_send + tx + delay_s
            q = row[(off + int(t_arr * inv_slot)) % n_slots]
            edge = q + svc_l[m] * mult
            tx_ms = tx * 1000.0
            e2e = c + tx_ms + delay2_ms + edge
            on = e2e <= deadline
            energy = power_ms * c + base_w * tx + rbytes_l[m]
            if sidx >= 0 and samples_l is not None:  # noqa: SIM108
                acc = float(samples_l[m][sidx])
            else:
                acc = acc_l[m]
            r_acc = w_acc * acc if on else 0.0
            r_miss = 0.0 if on else -miss
            r_en = -(w_en * energy)
            reward = r_acc + r_miss + r_en
            bw = caps[bisect_right(knots, t_send % dur) - 1]
            gp = nbytes * 8e-6 / tx if tx > 0.0 else max_mbps
            if periodic:
                n = ceil(e2e * 0.001 * fps)
                if n < 1:
                    n = 1
                t_next = t + n * period
                dropped = n - 1
            else:
                t_next = t + e2e * 0.001
                dropped = 0
            return (
                e2e, on, c, tx_ms, edge, q, nbytes, energy, bw, acc,
                r_acc, r_miss, r_en, reward, gp, t_next, dropped,
            )  # fmt: skip

        return frame

    # -- numpy form ------------------------------------------------------------------------------
    def frames(
        self,
        m: np.ndarray,
        t: np.ndarray,
        ti: np.ndarray,
        real: np.ndarray,
        off: np.ndarray,
        zc: np.ndarray,
        mult: np.ndarray,
        sidx: np.ndarray | None,
    ) -> tuple[np.ndarray, ...]:
        """:meth:`frame` over broadcast arrays (values in :data:`FRAME_KEYS` order).

        ``sidx`` None means table accuracy.
        """
        c = self.compute_mean[m] + self.compute_jitter[m] * zc
        c = np.maximum(c, 0.0)
        nbytes = self.payload[m]
        t_send = t + c * 0.001
        ti_b = np.broadcast_to(ti, t_send.shape)
        tx = self.bank.transfer_times(ti_b, t_send, nbytes)
        t_arr = t_send + tx + self.delay_s
        slot = (t_arr * self.inv_slot).astype(np.int64)
        q = self.backlog_flat[real * self.n_slots + (off + slot) % self.n_slots]
        edge = q + self.service_median[m] * mult
        tx_ms = tx * 1000.0
        e2e = c + tx_ms + self.delay2_ms + edge
        on = e2e <= self.deadline_ms
        energy = self.power_ms * c + self.radio_base_w * tx + self.radio_bytes_j[m]
        if sidx is not None and self.samples is not None:
            acc = self.samples[m, sidx].astype(np.float64)
        else:
            acc = self.accuracy[m]
        r_acc = np.where(on, self.w_acc * acc, 0.0)
        r_miss = np.where(on, 0.0, -self.miss)
        r_en = -(self.w_energy * energy)
        reward = r_acc + r_miss + r_en
        dur = self.durations[ti_b]
        bw = self._pieces.capacity_mbps(ti_b, np.mod(t_send, dur))
        with np.errstate(divide="ignore", invalid="ignore"):
            gp = np.where(tx > 0.0, nbytes * 8e-6 / tx, self.max_mbps)
        if self.periodic:
            n = np.maximum(np.ceil(e2e * 0.001 * self.fps), 1.0)
            t_next = t + n * self.period_s
            dropped = (n - 1.0).astype(np.int64)
        else:
            t_next = t + e2e * 0.001
            dropped = np.zeros(e2e.shape, dtype=np.int64)
        return (
            e2e, on, c, tx_ms, edge, q, nbytes, energy, bw, acc,
            r_acc, r_miss, r_en, reward, gp, t_next, dropped,
        )  # fmt: skip


def action_mask(allowed: np.ndarray, K: int, B: int, multidiscrete: bool) -> np.ndarray:
    """Allowed actions in MaskablePPO's format: K + B per-dimension masks, or the K * B modes.

    ``allowed`` (K * B,) is the flat allowed-mode mask (a product of allowed k and allowed bits).
    """
    allowed = np.asarray(allowed, dtype=bool)
    if not multidiscrete:
        return allowed.copy()
    grid = allowed.reshape(K, B)
    return np.concatenate([grid.any(axis=1), grid.any(axis=0)])


class PieceIndex:
    """Capacity (Mbit/s) at local times of many traces, by bucket lookup instead of bisection.

    Each trace's time axis is cut into equal buckets no wider than its narrowest piece, so a
    bucket holds at most one piece start; the piece of a query is its bucket's first piece or
    the next one (plus a step back for rounding). The result is the piece ``bisect_right``
    finds, exactly, so the vector env reports the same bandwidth as the single env.
    """

    def __init__(self, traces: list, max_buckets: int = 1 << 20) -> None:
        knots, caps, firsts, boff, inv, last = [], [], [], [], [], []
        n_knots = n_buckets = 0
        for tr in traces:
            kn = tr.knots
            delta = max(float(np.diff(kn).min()), tr.duration / max_buckets)
            nb = int(tr.duration / delta) + 1
            first = np.searchsorted(kn, np.arange(nb) * delta, side="right") - 1
            firsts.append(np.clip(first, 0, kn.size - 2) + n_knots)
            knots.append(kn)
            caps.append(np.append(tr.capacity / MBPS, 0.0))
            boff.append(n_buckets)
            inv.append(1.0 / delta)
            last.append(nb - 1)
            n_knots += kn.size
            n_buckets += nb
        self._knots = np.concatenate(knots)
        self._caps = np.concatenate(caps)
        self._first = np.concatenate(firsts)
        self._boff = np.array(boff, dtype=np.int64)
        self._inv = np.array(inv)
        self._last = np.array(last, dtype=np.int64)

    def capacity_mbps(self, ti: np.ndarray, tm: np.ndarray) -> np.ndarray:
        """Capacity of trace ``ti`` at local time ``tm`` (in ``[0, duration)``)."""
        b = np.minimum((tm * self._inv[ti]).astype(np.int64), self._last[ti])
        g = self._first[self._boff[ti] + b]
        knots = self._knots
        step = knots[g + 1] <= tm
        while step.any():
            g = g + step
            step = knots[g + 1] <= tm
        step = knots[g] > tm
        while step.any():
            g = g - step
            step = knots[g] > tm
        return self._caps[g]


def _nearest(v: int, allowed: tuple[int, ...]) -> int:
    """The allowed value closest to ``v`` (ties: the smaller one)."""
    return min(allowed, key=lambda a: (abs(a - v), a))
