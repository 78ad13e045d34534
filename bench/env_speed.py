"""Steps per second of SlimSplit-v0 against Gymnasium's CartPole, measured in the same run.

Single envs: the unwrapped ``SlimSplitEnv`` (MultiDiscrete and flat) and the unwrapped
``CartPoleEnv``, each stepping pre-drawn random actions with its resets inside the timed loop (a
reset where an episode ends), and each one's ``reset()`` alone. The native vector form
``SlimSplitVectorEnv`` at ``--num-envs`` is warmed up for more than one episode first, so its
sub-envs end on different steps and the timed steps include their autoresets in the share they
have in training (printed). Timing is interleaved in ``--rounds`` rounds of ``--steps`` steps per
env; each round gives a ratio to CartPole measured next to it, and the figures are the medians
over rounds (min..max shown), so load from other processes shifts both sides alike. Goals: single
env at least as fast as CartPole (ratio >= 1), vector form at least 1,000,000 env-steps/s.

    python bench/env_speed.py [--scenario default] [--steps 20000] [--rounds 15] [--num-envs 1024]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from gymnasium.envs.classic_control.cartpole import CartPoleEnv

from slimrl.env.slimsplit import SlimSplitEnv
from slimrl.env.vector import SlimSplitVectorEnv


def single_rate(env, actions: list) -> tuple[float, int]:
    """(steps/s over ``actions``, resets done), resetting at episode ends inside the loop."""
    step, reset = env.step, env.reset
    resets = 0
    t0 = time.perf_counter()
    for a in actions:
        _, _, term, trunc, _ = step(a)
        if term or trunc:
            reset()
            resets += 1
    return len(actions) / (time.perf_counter() - t0), resets


def reset_rate(env, n: int) -> float:
    """``reset()`` calls per second (an episode drawn each time)."""
    reset = env.reset
    t0 = time.perf_counter()
    for _ in range(n):
        reset()
    return n / (time.perf_counter() - t0)


def vector_rate(venv: SlimSplitVectorEnv, actions: list) -> tuple[float, float]:
    """(env-steps/s of the vector env over ``actions``, share of sub-env steps that ended)."""
    ended = 0
    t0 = time.perf_counter()
    for a in actions:
        ended += int(venv.step(a)[3].sum())
    dt = time.perf_counter() - t0
    return len(actions) * venv.num_envs / dt, ended / (len(actions) * venv.num_envs)


def _fmt(values: list[float], scale: str = ",.0f") -> str:
    return f"{statistics.median(values):12{scale}}  ({min(values):{scale}}..{max(values):{scale}})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scenario", default="default")
    ap.add_argument("--steps", type=int, default=20_000, help="single-env steps per round")
    ap.add_argument("--rounds", type=int, default=15, help="interleaved rounds (medians)")
    ap.add_argument("--num-envs", type=int, default=1024)
    ap.add_argument("--vector-steps", type=int, default=40, help="vector steps per round")
    ap.add_argument("--resets", type=int, default=2000, help="reset() calls per round")
    args = ap.parse_args()

    rng = np.random.default_rng(0)
    slim = SlimSplitEnv(args.scenario)
    slim_flat = SlimSplitEnv(args.scenario, action_space="flat")
    cart = CartPoleEnv()
    for i, env in enumerate((slim, slim_flat, cart)):
        env.reset(seed=i)
    md_actions = list(rng.integers(0, 4, (args.steps, 2)))
    flat_actions = rng.integers(0, 16, args.steps).tolist()
    cart_actions = rng.integers(0, 2, args.steps).tolist()
    venv = SlimSplitVectorEnv(args.num_envs, args.scenario)
    venv.reset(seed=0)
    v_actions = [rng.integers(0, 4, (args.num_envs, 2)) for _ in range(args.vector_steps)]
    warm = 0
    while True:  # past the first episode ends, so sub-envs reset on different steps from now on
        warm += 1
        done = venv.step(v_actions[warm % len(v_actions)])[3]
        if done.any() and warm > 50:
            break
    for _ in range(2 * warm):
        venv.step(v_actions[warm % len(v_actions)])

    rates: dict[str, list[float]] = {
        k: [] for k in ("cart", "slim", "flat", "cart_reset", "slim_reset", "vector")
    }
    ratios: dict[str, list[float]] = {k: [] for k in ("slim", "flat", "reset", "vector")}
    resets = ended = 0
    steps_done = 0
    for _ in range(args.rounds):  # interleaved, so load on the machine hits all alike
        cp, _ = single_rate(cart, cart_actions)
        s, r = single_rate(slim, md_actions)
        f, _ = single_rate(slim_flat, flat_actions)
        cr = reset_rate(cart, args.resets)
        sr = reset_rate(slim, args.resets)
        slim.reset()
        v, e = vector_rate(venv, v_actions)
        cp2, _ = single_rate(cart, cart_actions)  # CartPole on both sides of the rest
        cp = (cp + cp2) / 2
        resets += r
        steps_done += len(md_actions)
        ended += e
        for k, x in (("cart", cp), ("slim", s), ("flat", f), ("cart_reset", cr)):
            rates[k].append(x)
        rates["slim_reset"].append(sr)
        rates["vector"].append(v)
        ratios["slim"].append(s / cp)
        ratios["flat"].append(f / cp)
        ratios["reset"].append(sr / cr)
        ratios["vector"].append(v / cp)

    print(
        f"scenario {args.scenario!r}: medians over {args.rounds} interleaved rounds (min..max); "
        f"ratios per round against CartPole measured in the same round"
    )
    print(f"CartPoleEnv step (unwrapped)          {_fmt(rates['cart'])} steps/s")
    print(
        f"SlimSplitEnv MultiDiscrete step       {_fmt(rates['slim'])} steps/s   "
        f"ratio {_fmt(ratios['slim'], '.2f')}  (goal >= 1.0; {resets / steps_done:.2%} of "
        "steps ended an episode, resets timed in the loop)"
    )
    print(
        f"SlimSplitEnv flat step                {_fmt(rates['flat'])} steps/s   "
        f"ratio {_fmt(ratios['flat'], '.2f')}"
    )
    print(f"CartPoleEnv reset                     {_fmt(rates['cart_reset'])} resets/s")
    print(
        f"SlimSplitEnv reset                    {_fmt(rates['slim_reset'])} resets/s   "
        f"ratio {_fmt(ratios['reset'], '.2f')}"
    )
    print(
        f"SlimSplitVectorEnv x{args.num_envs:<5d}              {_fmt(rates['vector'])} "
        f"env-steps/s   ratio {_fmt(ratios['vector'], '.1f')}, "
        f"to 1M {statistics.median(rates['vector']) / 1e6:.2f} (goal >= 1.0; "
        f"{ended / args.rounds:.2%} of sub-env steps autoreset)"
    )


if __name__ == "__main__":
    main()
