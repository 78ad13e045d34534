"""Common random numbers: every exogenous random draw is a function of (episode key, time slot).

A frame that starts in time slot ``s`` of an episode with key ``key`` gets its compute jitter,
its edge service-time multiplier and its test sample from one 64-bit hash ``mix(key, s)``, so
every policy that starts a frame at the same instant of the same episode faces the same world,
and a planner cannot choose which draw lands where. Normals come from a fixed table of 2**16
standard-normal quantiles indexed by bits of the hash, so the scalar path (Python ints) and the
numpy path (uint64 arrays) agree bit for bit.

Bits of ``h = mix(key, slot)``: 0-15 compute-jitter normal, 16-31 service-time normal,
32-63 test-sample index (modulo the number of samples).

Bits of ``g = mix(key ^ LINK_SALT, slot)`` (computed only when the scenario's link has a
per-transfer latency): 0-15 uplink latency, 16-31 the answer's latency, 32-63 unused.

A 16-bit field ``u`` stands for the uniform ``(u + 0.5) / 2**16``: a parametric draw reads the
normal quantile ``normal_table()[u]``; a draw from measured samples (sorted, ``n`` of them) reads
the empirical quantile ``samples[(u * n) >> 16]`` (:func:`sample_index`), so measured and
parametric forms of a quantity take the same bits and keep the common-random-numbers pairing.
"""

from __future__ import annotations

from functools import cache
from statistics import NormalDist

import numpy as np

MASK = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15
M1 = 0xBF58476D1CE4E5B9
M2 = 0x94D049BB133111EB
TABLE_BITS = 16
LOW = (1 << TABLE_BITS) - 1
#: xor-ed into the episode key for the second hash (link latencies), see the module docstring
LINK_SALT = 0x6C696E6B5F6C6174  # "link_lat"


def mix(key: int, slot: int) -> int:
    """SplitMix64 finaliser of ``key + slot * golden`` (Python ints)."""
    x = (key + slot * GOLDEN) & MASK
    x = ((x ^ (x >> 30)) * M1) & MASK
    x = ((x ^ (x >> 27)) * M2) & MASK
    return x ^ (x >> 31)


def mix_array(key: np.ndarray, slot: np.ndarray) -> np.ndarray:
    """:func:`mix` over uint64 arrays (wrapping arithmetic, same bits)."""
    with np.errstate(over="ignore"):
        x = np.asarray(key, dtype=np.uint64) + np.asarray(slot, dtype=np.uint64) * np.uint64(GOLDEN)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(M1)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(M2)
    return x ^ (x >> np.uint64(31))


@cache
def normal_table() -> np.ndarray:
    """2**16 standard-normal quantiles at the mid-points of equal-probability bins (read-only)."""
    n = 1 << TABLE_BITS
    inv = NormalDist().inv_cdf
    table = np.array([inv((i + 0.5) / n) for i in range(n)])
    table.setflags(write=False)
    return table


def sample_index(u: int, n: int) -> int:
    """Index into ``n`` sorted samples of the 16-bit uniform field ``u``: ``(u * n) >> 16``.

    The same integer arithmetic works on uint64 arrays (``u < 2**16``, ``n < 2**47``)."""
    return (u * n) >> TABLE_BITS


def draw_key(rng: np.random.Generator) -> int:
    """A 64-bit episode key from a generator."""
    return int(rng.integers(0, 1 << 64, dtype=np.uint64))
