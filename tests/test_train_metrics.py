"""Training metrics: per-frame and per-episode summaries, HParams values (no training)."""

from __future__ import annotations

import numpy as np
import pytest

from slimrl.env.slimsplit import FRAME_INFO_KEYS
from slimrl.train.callbacks import MEAN_KEYS, EpisodeStats, InfoStats, hparam_value


def _info(reward_acc: float, on_time: bool, dropped: float = 0.0, k: int = 1, bits: int = 2):
    info = {key: 0.0 for key in FRAME_INFO_KEYS}
    info.update(reward_accuracy=reward_acc, reward_miss=0.0 if on_time else -0.5,
                reward_energy=-0.01, on_time=float(on_time), dropped=dropped, e2e_ms=100.0,
                k=k, bits=bits)  # fmt: skip
    return info


def test_mean_keys_are_unique_and_cover_the_mode():
    assert len(MEAN_KEYS) == len(set(MEAN_KEYS))
    assert set(FRAME_INFO_KEYS) <= set(MEAN_KEYS) and {"k", "bits"} <= set(MEAN_KEYS)
    stats = InfoStats(k_values=(1, 2), bits_values=(2, 4))
    stats.add_many([_info(1.0, True, k=1), _info(0.0, False, k=2, bits=4)])
    s = stats.summary()
    assert s["k_share/k=1"] == 0.5 and s["bits_share/bits=4"] == 0.5 and s["k_mean"] == 1.5
    assert s["drop_rate"] == 0.0 and s["on_time_rate"] == 0.5
    assert s["reward"] == pytest.approx(np.mean([1.0 - 0.01, -0.5 - 0.01]))


def test_episode_stats_report_the_evaluators_rates():
    ep = EpisodeStats(span_s=10.0)
    assert ep.summary() == {}
    # env 0: two frames then done; env 1: one frame, still running (not counted)
    ep.add_step([_info(1.0, True), _info(1.0, True)], [False, False])
    ep.add_step([_info(0.0, False, dropped=2), {"t_s": 0.0}], [True, False])
    s = ep.summary()
    assert s["episodes"] == 1 and s["length_mean"] == 2
    assert s["return_mean"] == pytest.approx(1.0 - 0.5 - 0.02)
    assert s["reward_per_s"] == pytest.approx(s["return_mean"] / 10.0)
    assert s["on_time_per_s"] == pytest.approx(0.1)
    assert s["miss_rate"] == pytest.approx((1 + 2) / (2 + 2))  # one late frame, two dropped
    ep.reset()
    ep.add_step([{}, _info(1.0, True)], [False, True])  # env 1's episode goes on from before
    assert ep.summary()["length_mean"] == 2 and ep.summary()["episodes"] == 1
    no_span = EpisodeStats()
    no_span.add(0, _info(1.0, True), True)
    assert "reward_per_s" not in no_span.summary() and no_span.summary()["episodes"] == 1


def test_hparam_values_are_tensorboard_types():
    assert hparam_value(np.int64(3)) == 3 and isinstance(hparam_value(np.float32(0.5)), float)
    assert hparam_value(None) == "None" and hparam_value({"a": 1}) == "{'a': 1}"
    assert hparam_value(True) is True and hparam_value("lin_3e-4") == "lin_3e-4"


def test_callback_arrays_path_equals_the_per_env_dicts():
    """The training callback reads the vector env's arrays; same metrics as per-env infos."""
    from slimrl.train.callbacks import EpisodeStats, InfoStats
    from slimrl.train.vec_env import make_vec_env

    env = make_vec_env("default", "train", 6, 3, {"overrides": {"episode_s": 4}})
    adapter = env.venv
    env.reset()
    rng = np.random.default_rng(0)
    a_stats, b_stats = InfoStats(), InfoStats()
    a_eps, b_eps = EpisodeStats(4.0), EpisodeStats(4.0)
    for _ in range(300):
        _, _, dones, infos = env.step(rng.integers(0, 4, (6, 2)))
        a_stats.add_arrays(adapter.last_infos)
        a_eps.add_arrays(adapter.last_infos, dones)
        b_stats.add_many(infos)
        b_eps.add_step(infos, dones)
    assert a_eps.episodes and a_eps.episodes == b_eps.episodes
    assert a_stats.summary() == b_stats.summary()
    assert a_eps.summary() == b_eps.summary()
