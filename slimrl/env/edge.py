"""Edge-server load: decoder/tail service time and the backlog of other tenants' requests.

The other tenants do not react to our actions, so their backlog ``W(t)`` (ms of work queued
ahead of a request arriving at ``t``) is an exogenous process. It is pre-generated once per
configuration as a bank of realisations on a fixed time grid: a single-server FIFO queue fed by a
Markov-modulated Poisson process (the arrival rate switches between states such as low / medium /
high, each held for an exponential time with the state's mean dwell, then a jump to one of the
other states chosen uniformly), each request bringing lognormal work. The backlog follows the
Lindley recursion, computed in closed form with cumulative sums:
``S = cumsum(X)``, ``X_n = work arriving in slot n - slot length``,
``W_n = S_n - min(0, min_{m<=n} S_m)``.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from slimrl.scenario.schema import EdgeLoadSpec, LoadState, lognormal_params


def state_paths(spec: EdgeLoadSpec, rng: np.random.Generator) -> np.ndarray:
    """State index per slot, shape (realisations, n_slots)."""
    R, n = spec.realisations, spec.n_slots
    S = len(spec.states)
    dwell_slots = np.array([s.dwell_s * 1000.0 / spec.resolution_ms for s in spec.states])
    out = np.empty((R, n), dtype=np.int64)
    p0 = dwell_slots / dwell_slots.sum()  # time-stationary start (uniform jumps)
    for r in range(R):
        pos, s = 0, int(rng.choice(S, p=p0))
        while pos < n:
            length = max(1, int(round(rng.exponential(dwell_slots[s]))))
            out[r, pos : pos + length] = s
            pos += length
            if S > 1:
                nxt = int(rng.integers(S - 1))
                s = nxt if nxt < s else nxt + 1
    return out


def arrival_work(spec: EdgeLoadSpec) -> np.ndarray:
    """Work (ms) brought by the other tenants' arrivals in every slot, (realisations, n_slots)."""
    rng = np.random.default_rng(spec.seed)
    R, n = spec.realisations, spec.n_slots
    if not spec.states or all(s.rate_per_s == 0 for s in spec.states):
        return np.zeros((R, n))
    states = state_paths(spec, rng)
    rates = np.array([s.rate_per_s for s in spec.states]) * (spec.resolution_ms / 1000.0)
    counts = rng.poisson(rates[states])  # arrivals per slot
    mu, sigma = lognormal_params(spec.job.median_ms, spec.job.p90_ms)
    jobs = np.exp(mu + sigma * rng.standard_normal(int(counts.sum())))
    slot_of_job = np.repeat(np.arange(R * n), counts.ravel())
    return np.bincount(slot_of_job, weights=jobs, minlength=R * n).reshape(R, n)


def lindley_backlog(work: np.ndarray, slot_ms: float) -> np.ndarray:
    """Backlog at the end of each slot of a work-conserving server, from an empty start.

    Closed form of ``W_n = max(0, W_{n-1} + work_n - slot_ms)`` along the last axis.
    """
    s = np.cumsum(work - slot_ms, axis=-1)
    w = s - np.minimum(0.0, np.minimum.accumulate(s, axis=-1))
    return np.maximum(w, 0.0)  # clip rounding noise


def generate_backlog(spec: EdgeLoadSpec) -> np.ndarray:
    """Backlog W (ms) at the end of every slot, shape (realisations, n_slots), float64."""
    return lindley_backlog(arrival_work(spec), spec.resolution_ms)


_CACHE: dict[EdgeLoadSpec, np.ndarray] = {}


def backlog_bank(spec: EdgeLoadSpec | None) -> np.ndarray:
    """The cached (read-only) backlog bank of ``spec``; a (1, 1) zero bank for no load."""
    if spec is None:
        return _ZERO
    bank = _CACHE.get(spec)
    if bank is None:
        bank = generate_backlog(spec)
        bank.setflags(write=False)
        if len(_CACHE) >= 8:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[spec] = bank
    return bank


_ZERO = np.zeros((1, 1))
_ZERO.setflags(write=False)


def scaled_load(spec: EdgeLoadSpec, factor: float) -> EdgeLoadSpec:
    """``spec`` with every state's arrival rate times ``factor`` (the same seed and grid)."""
    states = tuple(LoadState(s.name, s.rate_per_s * factor, s.dwell_s) for s in spec.states)
    return dataclasses.replace(spec, states=states)
