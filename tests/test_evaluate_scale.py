"""Evaluation at scale: ended episodes leave the batch, frames stream to disk, work is dealt to
worker processes; none of it moves a number."""

from __future__ import annotations

import numpy as np
import pandas as pd

from slimrl.env.vector import SlimSplitVectorEnv
from slimrl.evaluate import plan_episodes, run_evaluation, simulate
from slimrl.policies import make_policy
from slimrl.scenario import load_scenario

FAST = {"episode_s": 12}


def test_keep_envs_goes_on_exactly():
    a = SlimSplitVectorEnv(5, "default", action_space="flat")
    b = SlimSplitVectorEnv(5, "default", action_space="flat")
    a.reset(seed=4)
    b.reset(seed=4)
    rng = np.random.default_rng(0)
    acts = rng.integers(0, 16, (40, 5))
    for t in range(40):
        if t == 10:
            a.keep_envs([4, 1, 2])
        keep = slice(None) if t < 10 else [4, 1, 2]
        oa, ra, _, da, _ = a.step(acts[t][keep])
        ob, rb, _, db, _ = b.step(acts[t])
        assert np.array_equal(oa, ob[keep]) and np.array_equal(ra, rb[keep])
        assert np.array_equal(da, db[keep])
    assert a.num_envs == 3 and a.action_space.shape == (3,)


class _Counting(SlimSplitVectorEnv):
    stepped = 0

    def step(self, actions):
        _Counting.stepped += self.num_envs
        return super().step(actions)


def test_ended_episodes_are_not_stepped():
    sc = load_scenario("default", FAST)
    probe = SlimSplitVectorEnv(1, sc, split="val", action_space="flat")
    pols = [make_policy(n, probe) for n in ("static:1,1", "static:4,4", "rate-threshold")]
    plan = plan_episodes(probe.world, 4, seed=2)
    _Counting.stepped = 0
    out = simulate(lambda n: _Counting(n, sc, split="val", action_space="flat"), pols, plan,
                   keep_steps=True)  # fmt: skip
    # every sub-env step was a recorded frame: none past an episode's end
    assert _Counting.stepped == out.totals["frames"].sum() == len(out.steps["policy"])
    assert out.totals["frames"][0].sum() > 2 * out.totals["frames"][1].sum()  # uneven lengths


def _sorted_steps(path) -> pd.DataFrame:
    df = pd.read_parquet(path)
    return df.sort_values(["policy", "episode", "step"]).reset_index(drop=True)


def test_jobs_and_streaming_give_the_same_evaluation(tmp_path):
    pols = ["paper-ewma", "rate-threshold", "static:2,2"]
    kw = dict(episodes=4, seed=3, overrides=FAST, progress=False, plots=False)
    one = run_evaluation("default", "val", pols, tmp_path / "one", **kw)
    two = run_evaluation("default", "val", pols, tmp_path / "two", jobs=2, **kw)
    mem = run_evaluation("default", "val", pols, None, **kw)  # frames kept in memory
    pd.testing.assert_frame_equal(one, two)
    pd.testing.assert_frame_equal(one, mem)
    a, b = (
        _sorted_steps(tmp_path / "one" / "per_step.parquet"),
        _sorted_steps(tmp_path / "two" / "per_step.parquet"),
    )
    pd.testing.assert_frame_equal(a, b)
    # the reported policies only: asked, optimal, oracle and the best static mode
    assert set(a["policy"]) == set(one["policy"])


def test_bad_jobs_is_a_clear_error(tmp_path):
    from slimrl.cli import main

    assert main(["evaluate", "--out", str(tmp_path / "o"), "--jobs", "0"]) == 2
