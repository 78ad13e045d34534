"""The simulated world: every frame in a scalar form (one env) and a numpy form (N envs).

Both forms run the same float64 operations in the same order, so a vector env and N single envs
seeded alike agree bit for bit. Time is counted in *units*: slots of the scenario's time grid
(``time_grid_ms``, closed loop: a frame starts on the first slot after the previous answer) or
arrival ticks (periodic: ``1 / fps``). An episode is a stretch of trace time (``episode_s``)
from a start offset ``t0``; frame ``n`` starts at ``t0 + n * unit``.

Per frame, in mode ``m`` (flat k-major index) starting in unit ``n`` (exogenous draws from
:mod:`slimrl.env.crn`, a function of the episode key and the start slot):

1. compute ``c = mean[m] + jitter[m] * z_c`` (ms, >= 0); with measured samples
   ``c = mean[m] + dev_m(u_c)``, the mode's samples' deviation from their mean at the quantile
2. the uplink's per-transfer latency ``L_up`` (``link.latency``, 0 without one), then the payload
   ``payload[m]`` bytes crosses the trace from ``t + c + L_up``: ``tx = L_up + bytes time`` (s);
   outages stall it
3. it reaches the edge after the base one-way delay, waits behind the other tenants' backlog
   ``W`` at that instant and is served in ``service[m] * exp(sigma * z_s)`` ms (measured
   samples: the mode's sample at the quantile)
4. the answer returns after the base one-way delay and its own latency ``L_ans``
   (``link.answer_latency``): ``e2e = c + tx + 2 * delay + W + service + L_ans``
5. energy and reward: :class:`~slimrl.env.frame.CostModel`
6. the next frame starts ``ceil(e2e / unit)`` units later (at least one): closed loop, the first
   grid slot after the answer; periodic, the next arrival tick (the ticks in between are dropped
   frames, each a miss).
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from slimrl.env.crn import GOLDEN as _GOLDEN
from slimrl.env.crn import (
    LINK_SALT,
    LOW,
    M1,
    M2,
    MASK,
    TABLE_BITS,
    draw_key,
    mix_array,
    normal_table,
)
from slimrl.env.edge import backlog_bank, scaled_load
from slimrl.env.frame import CostModel
from slimrl.scenario import Scenario
from slimrl.scenario.schema import Z90, TimeDistribution, lognormal_params
from slimrl.traces import MBPS, TraceSet


class Episode(NamedTuple):
    """What fixes an episode's world: trace, start, edge backlog realisation and offset, the key
    of its common random numbers, and the domain-randomised link scale, base one-way delay and
    compute-jitter multiplier (1, the scenario's delay and 1 when not randomised)."""

    trace_index: int
    start_s: float
    real: int
    off: int
    key: int
    scale: float = 1.0
    delay_ms: float = 0.0
    jitter: float = 1.0


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
        # measured compute times: the deviations of each mode's samples from their mean
        self.compute_draws: Groups | None = None
        cs = scenario.device.compute_samples
        if cs is not None:
            groups = cs.data.per_mode(self.ks, self.bits)
            self.compute_mean = np.array([g.mean() for g in groups])
            self.compute_jitter = np.array([g.std() for g in groups])
            self.compute_draws = Groups([g - g.mean() for g in groups])
        self.payload = model.payload_bytes.ravel().copy()
        self.accuracy = model.accuracy.ravel().copy()
        svc = scenario.edge.service
        self.service_draws: Groups | None = None
        if svc.samples is not None:
            groups = svc.samples.data.per_mode(self.ks, self.bits)
            self.service_draws = Groups(groups)
            self.service_median = np.array([g[sample_median_index(g.size)] for g in groups])
            self.service_sigma = 0.0
        elif svc.from_model is not None:
            self.service_median = model.column(svc.from_model).ravel().copy()
            self.service_sigma = math.log(svc.p90_over_median) / Z90
        else:
            _, self.service_sigma = lognormal_params(svc.median_ms, svc.p90_ms)
            self.service_median = np.full(self.M, svc.median_ms)
        self.samples = None
        if scenario.model.per_sample and model.samples is not None:
            self.samples = np.ascontiguousarray(model.samples.reshape(self.M, -1))
        self.n_samples = 0 if self.samples is None else self.samples.shape[1]
        # common random numbers: normal quantiles and the service multipliers they give
        self.normals = normal_table()
        self.mult_table = np.exp(self.service_sigma * self.normals)

        self.cost = CostModel.from_scenario(scenario)
        self.radio_bytes_j = self.cost.radio_bytes_j(self.payload)
        self.deadline_ms = scenario.deadline_ms
        self.delay_ms = scenario.link.base_delay_ms
        self.delay_s = self.delay_ms * 0.001
        self.delay2_ms = 2.0 * self.delay_ms
        # per-transfer latencies: sorted values indexed by 16 bits of the second hash (crn)
        link = scenario.link
        self.latency_up = draw_values(link.latency, self.normals)
        self.latency_answer = draw_values(link.answer_latency, self.normals)
        self.has_latency = self.latency_up is not None or self.latency_answer is not None

        # time: grid slots (closed loop) or arrival ticks (periodic)
        self.periodic = scenario.arrival.mode == "periodic"
        self.grid_ms = scenario.time_grid_ms
        self.unit_ms = 1000.0 / scenario.arrival.fps if self.periodic else self.grid_ms
        self.unit_s = self.unit_ms * 0.001
        self.slots_per_unit = self.unit_ms / self.grid_ms
        self.episode_s = scenario.episode_s

        # traces
        self.traces = traces
        self.bank = traces.bank
        self.n_traces = len(traces)
        self.trace_names = traces.names
        self.trace_names_arr = np.array(self.trace_names, dtype=object)
        self.durations = self.bank.durations
        self.durations_l = self.durations.tolist()
        self._pieces = PieceIndex(traces.traces)
        # episodes pick a dataset uniformly, then one of its traces (or every trace alike)
        if scenario.traces.sample == "dataset":
            labels = np.asarray(traces.datasets)
            per = {d: (labels == d).sum() for d in set(traces.datasets)}
            weight = np.array([1.0 / (len(per) * per[d]) for d in traces.datasets])
        else:
            weight = np.full(self.n_traces, 1.0 / self.n_traces)
        self._trace_cdf = np.cumsum(weight).tolist()
        self._trace_cdf[-1] = 1.0

        # edge backlog banks (exogenous): the scenario's load, then one per randomised level
        load = scenario.edge.load
        rnd = scenario.randomize
        self.randomize = rnd
        levels = rnd.edge_load if (rnd is not None and rnd.edge_load and load is not None) else ()
        banks = [backlog_bank(load)] + [backlog_bank(scaled_load(load, x)) for x in levels]
        self.backlog = banks[0] if len(banks) == 1 else np.concatenate(banks)
        self.n_real = banks[0].shape[0]  # realisations per load level
        self.n_levels = len(banks)
        self.n_slots = self.backlog.shape[1]
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

        # Python lists for the scalar path
        self._mean_l = self.compute_mean.tolist()
        self._jit_l = self.compute_jitter.tolist()
        self._payload_l = [int(b) if float(b).is_integer() else b for b in self.payload.tolist()]
        self._acc_l = self.accuracy.tolist()
        self._svc_l = self.service_median.tolist()
        self._rbytes_l = self.radio_bytes_j.tolist()
        self._normals_l = self.normals.tolist()
        self._mult_l = self.mult_table.tolist()
        self._samples_l = None if self.samples is None else [memoryview(r) for r in self.samples]

    @property
    def latency_mean_ms(self) -> float:
        """Mean per-transfer latency of the uplink plus the answer (ms; 0 without any)."""
        return sum(float(v.mean()) for v in (self.latency_up, self.latency_answer) if v is not None)

    # A world is read-only: copies of an env share it; pickling rebuilds the memoryviews.
    def __deepcopy__(self, memo: dict) -> World:
        return self

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.pop("_backlog_rows", None)
        state.pop("_samples_l", None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._backlog_rows = [memoryview(row) for row in self.backlog]
        self._samples_l = None if self.samples is None else [memoryview(r) for r in self.samples]

    # -- episodes ----------------------------------------------------------------------------
    def draw_episode(self, rng: np.random.Generator, randomize: bool = False) -> Episode:
        """A new episode drawn from ``rng``; ``randomize`` also draws the scenario's domain
        randomisation (nothing more is drawn without it, so fixed-world episodes stay the same)."""
        ti = min(bisect_right(self._trace_cdf, float(rng.random())), self.n_traces - 1)
        start = float(rng.random()) * self.durations_l[ti]
        real = int(rng.integers(self.n_real))
        off = int(rng.integers(self.n_slots))
        key = draw_key(rng)
        rnd = self.randomize
        if not randomize or rnd is None:
            return Episode(ti, start, real, off, key, 1.0, self.delay_ms, 1.0)
        scale, delay, jitter = 1.0, self.delay_ms, 1.0
        if rnd.capacity_scale is not None:
            lo, hi = rnd.capacity_scale
            scale = math.exp(math.log(lo) + float(rng.random()) * (math.log(hi) - math.log(lo)))
        if rnd.base_delay_ms is not None:
            lo, hi = rnd.base_delay_ms
            delay = lo + float(rng.random()) * (hi - lo)
        if rnd.compute_jitter is not None:
            lo, hi = rnd.compute_jitter
            jitter = lo + float(rng.random()) * (hi - lo)
        if self.n_levels > 1:
            real += self.n_real * int(rng.integers(self.n_levels))
        return Episode(ti, start, real, off, key, scale, delay, jitter)

    def horizon(self, ti: int, t0: float, full_trace: bool = False) -> int:
        """Units in an episode from ``t0``: ``episode_s`` of trace time, or to the trace's end."""
        span = self.durations_l[ti] - t0 if full_trace else self.episode_s
        return max(1, math.ceil(span / self.unit_s - 1e-9))

    # -- scalar form -------------------------------------------------------------------------
    def episode_frame(self, ep: Episode) -> Callable[..., tuple]:
        """The scalar frame function ``f(m, n, sample=True)`` of one episode: mode ``m`` started
        in unit ``n``; values in :data:`~slimrl.env.frame.FRAME_KEYS` order. ``sample=False``
        gives the mode's table (expected) accuracy. A closure over Python constants: the single
        env's hot path."""
        ti, t0, real, off, key, scale, delay_ms, jitter = ep
        mean_l, payload_l = self._mean_l, self._payload_l
        jit_l = [j * jitter for j in self._jit_l]
        acc_l, svc_l, rbytes_l = self._acc_l, self._svc_l, self._rbytes_l
        normals_l, mult_l, samples_l, n_samples = (
            self._normals_l,
            self._mult_l,
            self._samples_l,
            self.n_samples,
        )
        row, n_slots, inv_slot = self._backlog_rows[real], self.n_slots, self.inv_slot
        delay_s, delay2_ms, deadline = delay_ms * 0.001, 2.0 * delay_ms, self.deadline_ms
        inv_scale = 1.0 / scale
        terms = self.cost.scalar_terms()
        periodic, unit_s, unit_ms, spu = (
            self.periodic,
            self.unit_s,
            self.unit_ms,
            self.slots_per_unit,
        )
        trace = self.traces.traces[ti]
        xfer = trace.transfer_fn()
        cdraw = None if self.compute_draws is None else self.compute_draws.lists()
        sdraw = None if self.service_draws is None else self.service_draws.lists()
        link = self.has_latency
        lkey = key ^ LINK_SALT
        up_l = [0.0] if self.latency_up is None else self.latency_up.tolist()
        ans_l = [0.0] if self.latency_answer is None else self.latency_answer.tolist()
        up_n = len(up_l) if self.latency_up is not None else 0
        ans_n = len(ans_l) if self.latency_answer is not None else 0

        # module constants as closure cells (faster to read than globals)
        golden, mask, m1, m2, low, tbits, mbps = _GOLDEN, MASK, M1, M2, LOW, TABLE_BITS, MBPS

        def frame(m: int, n: int, sample: bool = True) -> tuple:
            t = t0 + n * unit_s
            slot = int(n * spu) if periodic else n
            x = (key + slot * golden) & mask
            x = ((x ^ (x >> 30)) * m1) & mask
            x = ((x ^ (x >> 27)) * m2) & mask
            h = x ^ (x >> 31)
            if cdraw is None:
                c = mean_l[m] + jit_l[m] * normals_l[h & low]
            else:
                vals, offs, cnt = cdraw
                c = mean_l[m] + jitter * vals[offs[m] + (((h & low) * cnt[m]) >> tbits)]
            if c < 0.0:
                c = 0.0
            nbytes = payload_l[m]
            t_send = t + c * 0.001
            if link:
                y = (lkey + slot * golden) & mask
                y = ((y ^ (y >> 30)) * m1) & mask
                y = ((y ^ (y >> 27)) * m2) & mask
                g = y ^ (y >> 31)
                lat_s = up_l[((g & low) * up_n) >> tbits] * 0.001
                ans = ans_l[(((g >> 16) & low) * ans_n) >> tbits]
                tx, cap = xfer(t_send + lat_s, nbytes * inv_scale)
                tx = tx + lat_s
            else:
                tx, cap = xfer(t_send, nbytes * inv_scale)  # the link scaled: fewer bytes to send
            t_arr = t_send + tx + delay_s
            q = row[(off + int(t_arr * inv_slot)) % n_slots]
            if sdraw is None:
                edge = q + svc_l[m] * mult_l[(h >> 16) & low]
            else:
                vals, offs, cnt = sdraw
                edge = q + vals[offs[m] + ((((h >> 16) & low) * cnt[m]) >> tbits)]
            tx_ms = tx * 1000.0
            e2e = c + tx_ms + delay2_ms + edge
            if link:
                e2e = e2e + ans
            on = e2e <= deadline
            if sample and samples_l is not None:  # noqa: SIM108
                acc = float(samples_l[m][(h >> 32) % n_samples])
            else:
                acc = acc_l[m]
            energy, missed, dropped, u, r_acc, r_miss, r_en, reward = terms(
                on, acc, e2e, c, tx, rbytes_l[m]
            )
            bw = cap / mbps * scale
            return (
                acc, on, e2e, c, tx_ms, edge, q, nbytes, energy, bw, r_acc, r_miss, r_en,
                missed, dropped, u * unit_ms, reward, n + u,
            )  # fmt: skip

        return frame

    # -- numpy form --------------------------------------------------------------------------
    def frames(
        self,
        m: np.ndarray,
        n: np.ndarray,
        ep: Episode,
        sample: bool = True,
        lean: bool = False,
    ) -> tuple[np.ndarray, ...]:
        """:meth:`episode_frame` over broadcast arrays: modes ``m``, units ``n`` and an
        :class:`Episode` whose fields are scalars or arrays (values in ``FRAME_KEYS`` order).

        ``lean`` (planners) skips what the return does not depend on: ``bandwidth_mbps`` is None.
        """
        ti, t0, real, off, key, scale, delay_ms, jitter = ep
        n = np.asarray(n, dtype=np.int64)
        t = t0 + n * self.unit_s
        slot = (n * self.slots_per_unit).astype(np.int64) if self.periodic else n
        h = mix_array(key, slot)
        u_c = h & np.uint64(LOW)
        u_s = (h >> np.uint64(16)) & np.uint64(LOW)
        if self.compute_draws is None:
            c = self.compute_mean[m] + (self.compute_jitter[m] * jitter) * self.normals[u_c]
        else:
            c = self.compute_mean[m] + jitter * self.compute_draws.draw(m, u_c)
        c = np.maximum(c, 0.0)
        nbytes = self.payload[m]
        t_send = t + c * 0.001
        t_start = t_send
        if self.has_latency:
            g = mix_array(np.asarray(key, dtype=np.uint64) ^ np.uint64(LINK_SALT), slot)
            lat_s = _pick(self.latency_up, g & np.uint64(LOW)) * 0.001
            ans = _pick(self.latency_answer, (g >> np.uint64(16)) & np.uint64(LOW))
            t_start = t_send + lat_s
        ti_b = np.broadcast_to(ti, t_start.shape)
        sent = nbytes * (1.0 / np.asarray(scale, dtype=np.float64))  # the link scaled
        if np.ndim(ti) == 0:  # one trace (a planner): its own lookup is faster than the bank's
            tx = self.traces.traces[int(ti)].transfer_times(t_start, sent)
        else:
            tx = self.bank.transfer_times(ti_b, t_start, sent)
        if self.has_latency:
            tx = tx + lat_s
        delay_ms = np.asarray(delay_ms, dtype=np.float64)
        t_arr = t_send + tx + delay_ms * 0.001
        q_slot = (t_arr * self.inv_slot).astype(np.int64)
        q = self.backlog_flat[real * self.n_slots + (off + q_slot) % self.n_slots]
        if self.service_draws is None:
            edge = q + self.service_median[m] * self.mult_table[u_s]
        else:
            edge = q + self.service_draws.draw(m, u_s)
        tx_ms = tx * 1000.0
        e2e = c + tx_ms + 2.0 * delay_ms + edge
        if self.has_latency:
            e2e = e2e + ans
        on = e2e <= self.deadline_ms
        if sample and self.samples is not None:
            sidx = ((h >> np.uint64(32)) % np.uint64(self.n_samples)).astype(np.int64)
            acc = self.samples[m, sidx].astype(np.float64)
        else:
            acc = self.accuracy[m] * np.ones_like(e2e)
        energy, missed, dropped, u, r_acc, r_miss, r_en, reward = self.cost.terms_array(
            on, acc, e2e, c, tx, self.radio_bytes_j[m]
        )
        bw = None
        if not lean:
            dur = self.durations[ti_b]
            bw = self._pieces.capacity_mbps(ti_b, np.mod(t_start, dur)) * scale
        return (
            acc, on, e2e, c, tx_ms, edge, q, nbytes * np.ones_like(e2e), energy, bw, r_acc, r_miss,
            r_en, missed, dropped, u * self.unit_ms, reward, n + u,
        )  # fmt: skip


def sample_median_index(n: int) -> int:
    """The entry of ``n`` sorted values that the uniform 1/2 draws (``(2**15 * n) >> 16``)."""
    return ((1 << (TABLE_BITS - 1)) * n) >> TABLE_BITS


def draw_values(dist: TimeDistribution | None, normals: np.ndarray) -> np.ndarray | None:
    """Sorted values of a time distribution: the 16-bit uniform ``u`` draws entry
    ``(u * n) >> 16`` (:func:`slimrl.env.crn.sample_index`): one value for a fixed time, the 2**16
    lognormal quantiles, or the measured samples. None without a distribution."""
    if dist is None:
        return None
    if dist.fixed_ms is not None:
        v = np.array([dist.fixed_ms], dtype=np.float64)
    elif dist.samples is not None:
        v = dist.samples.data.pooled()
    else:
        mu, sigma = lognormal_params(dist.median_ms, dist.p90_ms)
        v = math.exp(mu) * np.exp(sigma * normals)
    v.setflags(write=False)
    return v


def _pick(values: np.ndarray | None, u: np.ndarray) -> np.ndarray | float:
    if values is None:
        return 0.0
    return values[((u * np.uint64(values.size)) >> np.uint64(TABLE_BITS)).astype(np.int64)]


class Groups:
    """Sorted samples per mode, concatenated: mode ``m`` draws entry ``(u * n[m]) >> 16`` of its
    own ``n[m]`` values (the 16-bit uniform ``u`` of :mod:`slimrl.env.crn`)."""

    def __init__(self, groups: list[np.ndarray]) -> None:
        self.n = np.array([g.size for g in groups], dtype=np.int64)
        self.off = np.concatenate(([0], np.cumsum(self.n)[:-1])).astype(np.int64)
        self.values = np.concatenate(groups).astype(np.float64)
        for a in (self.n, self.off, self.values):
            a.setflags(write=False)

    def draw(self, m: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Values of modes ``m`` at 16-bit uniforms ``u`` (broadcast)."""
        n = self.n[m].astype(np.uint64)
        return self.values[self.off[m] + ((u * n) >> np.uint64(TABLE_BITS)).astype(np.int64)]

    def lists(self) -> tuple[list[float], list[int], list[int]]:
        """``(values, offsets, counts)`` as Python lists (the scalar path)."""
        return self.values.tolist(), self.off.tolist(), self.n.tolist()


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

    Each trace's time axis is cut into equal buckets, no wider than its narrowest piece where
    that needs at most 8 buckets per piece; the piece of a query is found from its bucket's
    first piece by stepping forward (usually not at all; a few steps where pieces crowd) and
    back for rounding. The result is the piece ``bisect_right``
    finds, exactly, so the vector env reports the same bandwidth as the single env.
    """

    def __init__(self, traces: list, max_buckets: int = 1 << 20) -> None:
        knots, caps, firsts, boff, inv, last = [], [], [], [], [], []
        n_knots = n_buckets = 0
        for tr in traces:
            kn = tr.knots
            # about one piece start per bucket, at most 8 buckets a piece (memory stays linear)
            cap = min(max_buckets, 8 * kn.size)
            delta = max(float(np.diff(kn).min()), tr.duration / cap)
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
