"""How many frames per second the evaluation runs, against raw vector-env stepping.

Run: ``python bench/evaluate_speed.py [--env default] [--traces train] [--episodes 32]``

Reference (measured in the same run): a ``SlimSplitVectorEnv`` with as many sub-envs as the
evaluation uses, stepped with pre-drawn random actions and no policy. Then, on the same trace
set and episodes: each heuristic alone through :func:`slimrl.evaluate.simulate` (its batched
form over the vector env), all heuristics together with every frame recorded, the complete
``run_evaluation`` (16 static modes and the oracle included, summary and files, no plots), and
one heuristic driven frame by frame through the single env (what the batched form replaces).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import gymnasium as gym
import numpy as np

import slimrl  # noqa: F401  (registers SlimSplit-v0)
from slimrl.env.vector import SlimSplitVectorEnv
from slimrl.evaluate import plan_episodes, run_evaluation, simulate
from slimrl.evaluate.api import resolve_traces
from slimrl.policies import make_policy, static_names
from slimrl.scenario import load_scenario

HEURISTICS = ["paper-ewma", "rate-threshold", "tuned-threshold", "random", "oracle"]


def raw_rate(make_env, n: int, steps: int, seed: int = 0) -> float:
    """Frames/s of the vector env alone, random flat actions drawn beforehand."""
    venv = make_env(n)
    venv.reset(seed=seed)
    acts = np.random.default_rng(seed).integers(0, venv.single_action_space.n, (steps, n))
    t0 = time.perf_counter()
    for a in acts:
        venv.step(a)
    return n * steps / (time.perf_counter() - t0)


def timed(fn) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--env", default="default")
    ap.add_argument("--traces", default="train")
    ap.add_argument("--episodes", type=int, default=32)
    ap.add_argument("--single-frames", type=int, default=20_000)
    args = ap.parse_args()

    sc = load_scenario(args.env)
    trace_dir, split = resolve_traces(args.traces)

    def make_env(n: int) -> SlimSplitVectorEnv:
        return SlimSplitVectorEnv(n, sc, trace_dir=trace_dir, split=split, action_space="flat")

    probe = make_env(1)
    plan = plan_episodes(probe.world, args.episodes, seed=0, full_trace=trace_dir is not None)
    E, L = len(plan), plan.episode_length
    n_statics = len(static_names(probe))
    print(
        f"scenario {sc.name}, traces {args.traces} ({probe.world.n_traces} traces), "
        f"{E} episodes x {L} frames; {os.cpu_count()} CPUs"
    )

    # reference: raw stepping with E sub-envs (one policy) and with the full evaluation's width
    width = (len(HEURISTICS) - 1 + n_statics) * E
    ref_e = raw_rate(make_env, E, L)
    ref_w = raw_rate(make_env, width, L)
    print(f"raw vector env, random actions, {E:>4} sub-envs: {ref_e:>12,.0f} frames/s (reference)")
    print(f"raw vector env, random actions, {width:>4} sub-envs: {ref_w:>12,.0f} frames/s")

    print("\nbatched heuristics over the vector env (one policy x all episodes):")
    pols = {}
    for name in HEURISTICS:
        pols[name] = make_policy(name, probe, notice=lambda m: print("  " + m))
    for name, p in pols.items():
        dt, out = timed(lambda p=p: simulate(make_env, [p], plan, keep_steps=False))
        rate = out.totals["frames"].sum() / dt
        print(f"  {name:<16} {rate:>12,.0f} frames/s  ({rate / ref_e:5.2f} x raw)")

    statics = [make_policy(s, probe) for s in static_names(probe)]
    everyone = [pols[n] for n in HEURISTICS if n != "oracle"] + statics + [pols["oracle"]]
    dt, out = timed(lambda: simulate(make_env, everyone, plan, keep_steps=True))
    rate = out.totals["frames"].sum() / dt
    print(
        f"\nall {len(everyone)} policies together, every frame recorded: "
        f"{rate:,.0f} frames/s ({rate / ref_w:.2f} x raw at the same width), {dt:.2f} s"
    )

    with tempfile.TemporaryDirectory() as tmp:
        dt, df = timed(
            lambda: run_evaluation(
                sc, args.traces, HEURISTICS, os.path.join(tmp, "ev"), episodes=args.episodes,
                progress=False, plots=False,
            )
        )  # fmt: skip
    frames = len(everyone) * int(df["frames"].iloc[0])
    print(
        f"run_evaluation end to end ({len(everyone)} policies, files, no plots): "
        f"{frames / dt:,.0f} frames/s, {dt:.2f} s"
    )

    # the batched form replaces a frame-by-frame loop over single envs
    env = gym.make("SlimSplit-v0", scenario=sc, trace_dir=trace_dir, split=split,
                   action_space="flat")  # fmt: skip
    p = make_policy("rate-threshold", env)
    obs, info = env.reset(seed=0)
    t0 = time.perf_counter()
    for _ in range(args.single_frames):
        obs, _r, _t, tr, info = env.step(p.act(obs, info))
        if tr:
            obs, info = env.reset()
    single = args.single_frames / (time.perf_counter() - t0)
    print(
        f"single env, rate-threshold frame by frame: {single:,.0f} frames/s "
        f"({single / ref_e:.3f} x raw vector)"
    )


if __name__ == "__main__":
    main()
