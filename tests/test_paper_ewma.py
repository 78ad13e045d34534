"""``paper-ewma`` as published: a hand-made sequence of measurements, each decision checked.

Budget 0.8 x 300 ms = 240 ms; fixed term 60 * (k + bits / 10); payload 6912 x bits bytes;
accuracy = mAP / 100 of the paper's table. Every expected value below was worked out by hand.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import slimrl  # noqa: F401  (registers SlimSplit-v0)
from slimrl.errors import PolicyError
from slimrl.policies import ModeTable, PaperEWMA, make_policy


@pytest.fixture(scope="module")
def env():
    e = gym.make("SlimSplit-v0", scenario="default", split="test", action_space="flat")
    yield e
    e.close()


def meas(nbytes, e2e, compute, edge, queue=0.0, transfer=None):
    info = {"bytes": nbytes, "e2e_ms": e2e, "compute_ms": compute, "edge_ms": edge}
    info["edge_queue_ms"] = queue
    info["transfer_ms"] = transfer if transfer is not None else 1.0
    return info


def test_published_controller_step_by_step(env):
    table = ModeTable.from_env(env)
    p = make_policy("paper-ewma", env)
    obs = np.zeros(env.observation_space.shape)
    mode = lambda a: table.action_table[a]  # noqa: E731
    # first frame: mode (1, 1), the estimate starts at 200 kB/s
    assert mode(p.act(obs, {"trace": "x"})) == (1, 1)
    assert p.bw_kBps[0] == 200.0
    # 6912 B, e2e 300, encoder 100, decoder 60 - 4 (queue counts as network): 144 ms -> 48 kB/s
    # bw = 0.4 * 48 + 0.6 * 200 = 139.2; (1,3): 78 + 148.97 fits, (1,4): 84 + 198.6 does not
    assert mode(p.act(obs, meas(6912, 300, 100, 60, queue=4))) == (1, 3)
    assert p.bw_kBps[0] == pytest.approx(139.2)
    # 20736 B over 250 - 102 - 58 = 90 ms -> 230.4; bw = 175.68; (1,4): 84 + 157.38 = 241.4 > 240
    assert mode(p.act(obs, meas(20736, 250, 102, 58))) == (1, 3)
    assert p.bw_kBps[0] == pytest.approx(175.68)
    # 20736 B over 45 ms -> 460.8; bw = 289.728; (2,4): 144 + 95.43 = 239.4 < 240 is the best
    assert mode(p.act(obs, meas(20736, 200, 98, 57))) == (2, 4)
    assert p.bw_kBps[0] == pytest.approx(289.728)
    # a terrible frame: 27648 B over 4765 ms -> 5.80; bw = 176.16; (1,4) misses by 0.95 ms
    assert mode(p.act(obs, meas(27648, 5000, 175, 60))) == (1, 3)
    assert p.bw_kBps[0] == pytest.approx(0.4 * 27648 / 4765 + 0.6 * 289.728)
    # ten more: nothing fits, not even (1, 1): the fallback (1, 1)
    for _ in range(10):
        a = p.act(obs, meas(6912, 7000, 100, 56))
    assert mode(a) == (1, 1) and p.bw_kBps[0] < 10
    # a reset info starts a new episode: (1, 1) and 200 kB/s again
    assert mode(p.act(obs, {"trace": "x"})) == (1, 1) and p.bw_kBps[0] == 200.0
    # 13824 B over 300 - 100 - 56 = 144 ms -> 96; bw = 158.4: (1,3) 78 + 130.9 fits and beats
    # (2,2) 132 + 87.3; the better (1,4) 84 + 174.5 and (2,3) 138 + 130.9 do not fit
    assert mode(p.act(obs, meas(13824, 300, 100, 56))) == (1, 3)


def test_documented_deviations(env):
    table = ModeTable.from_env(env)
    p = make_policy("paper-ewma:sample=transfer,init=first", env)
    assert isinstance(p, PaperEWMA) and p.name == "paper-ewma:sample=transfer,init=first"
    obs = np.zeros(env.observation_space.shape)
    p.act(obs, {})
    # the transfer alone: 13824 B in 100 ms = 138.24 kB/s, seeding the estimate
    a = p.act(obs, meas(13824, 400, 100, 56, transfer=100.0))
    assert p.bw_kBps[0] == pytest.approx(138.24)
    assert table.action_table[a] == (1, 3)  # 78 + 150 = 228 ms; (1,4) and (2,3) do not fit
    with pytest.raises(PolicyError, match="paper-ewma"):
        make_policy("paper-ewma:sample=bogus", env)


def test_runs_in_the_env_on_its_info(env):
    """The env's info carries every measurement the controller reads."""
    p = make_policy("paper-ewma", env)
    obs, info = env.reset(seed=3)
    p.reset()
    seen = set()
    for _ in range(40):
        a = p.act(obs, info)
        seen.add(a)
        obs, _r, _t, _tr, info = env.step(a)
    assert p.bw_kBps[0] != 200.0 and len(seen) >= 2
