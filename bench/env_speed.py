"""Steps per second of SlimSplit-v0 against Gymnasium's CartPole, measured in the same run.

Measures the unwrapped single env ``SlimSplitEnv`` and the unwrapped ``CartPoleEnv`` (both with
pre-drawn random actions, resets included), and the native vector form ``SlimSplitVectorEnv`` at
1024 envs. Goals: single env at least as fast as CartPole (ratio >= 1), vector form at least
1,000,000 env-steps/s.

    python bench/env_speed.py [--scenario default] [--steps 200000] [--num-envs 1024]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from gymnasium.envs.classic_control.cartpole import CartPoleEnv

from slimrl.env.slimsplit import SlimSplitEnv
from slimrl.env.vector import SlimSplitVectorEnv


def single_rate(env, actions: list, seed: int = 0) -> float:
    """Steps/s over ``actions`` (resetting at episode ends), best of the timed run."""
    env.reset(seed=seed)
    step, reset = env.step, env.reset
    t0 = time.perf_counter()
    for a in actions:
        _, _, term, trunc, _ = step(a)
        if term or trunc:
            reset()
    return len(actions) / (time.perf_counter() - t0)


def vector_rate(venv: SlimSplitVectorEnv, actions: list, seed: int = 0) -> float:
    """Env-steps/s of the vector env over ``actions`` (autoreset included)."""
    venv.reset(seed=seed)
    for a in actions[:3]:  # warm-up
        venv.step(a)
    t0 = time.perf_counter()
    for a in actions:
        venv.step(a)
    return len(actions) * venv.num_envs / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scenario", default="default")
    ap.add_argument("--steps", type=int, default=200_000, help="single-env steps per repeat")
    ap.add_argument("--num-envs", type=int, default=1024)
    ap.add_argument("--vector-steps", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=3, help="best of this many (noisy machines)")
    args = ap.parse_args()

    rng = np.random.default_rng(0)
    slim = SlimSplitEnv(args.scenario)
    slim_flat = SlimSplitEnv(args.scenario, action_space="flat")
    cart = CartPoleEnv()
    md_actions = list(rng.integers(0, 4, (args.steps, 2)))
    flat_actions = rng.integers(0, 16, args.steps).tolist()
    cart_actions = rng.integers(0, 2, args.steps).tolist()
    venv = SlimSplitVectorEnv(args.num_envs, args.scenario)
    v_actions = [rng.integers(0, 4, (args.num_envs, 2)) for _ in range(args.vector_steps)]

    best = {"slim": 0.0, "slim_flat": 0.0, "cartpole": 0.0, "vector": 0.0}
    for _ in range(args.repeats):  # interleaved, so load on the machine hits all alike
        best["cartpole"] = max(best["cartpole"], single_rate(cart, cart_actions))
        best["slim"] = max(best["slim"], single_rate(slim, md_actions))
        best["slim_flat"] = max(best["slim_flat"], single_rate(slim_flat, flat_actions))
        best["vector"] = max(best["vector"], vector_rate(venv, v_actions))

    cp = best["cartpole"]
    print(f"scenario {args.scenario!r}, best of {args.repeats}")
    print(f"CartPoleEnv (unwrapped)              {cp:12,.0f} steps/s")
    print(
        f"SlimSplitEnv MultiDiscrete (unwrapped) {best['slim']:10,.0f} steps/s"
        f"   ratio to CartPole {best['slim'] / cp:.2f}  (goal >= 1.0)"
    )
    print(
        f"SlimSplitEnv flat (unwrapped)        {best['slim_flat']:12,.0f} steps/s"
        f"   ratio to CartPole {best['slim_flat'] / cp:.2f}"
    )
    print(
        f"SlimSplitVectorEnv x{args.num_envs:<5d}             {best['vector']:12,.0f} env-steps/s"
        f"   ratio to CartPole {best['vector'] / cp:.1f}, to 1M {best['vector'] / 1e6:.2f}"
        "  (goal >= 1.0)"
    )


if __name__ == "__main__":
    main()
