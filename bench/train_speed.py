"""Training throughput and time to quality of ``slimrl train`` (PPO), against SB3 PPO on CartPole.

Measured in the same run: SB3's PPO on ``CartPole-v1`` (8 ``DummyVecEnv`` envs, SB3's default
hyperparameters: the reference of what SB3 itself does on this machine), then ``slimrl train``
with each ``--setting`` (hyperparameter overrides on ``agents/ppo.yml``) for each seed. Per run:
steps/s of ``learn`` (validation time excluded), and the time to quality: the wall time (with
validations) until the validation reward first comes within ``--tol`` of the run's final
validation reward (the mean of its last two), i.e. ``>= final - 0.05 * |final - first|``, and
the wall time until it first comes within ``--tol`` reward/s of the first setting's quality (the
median over seeds of its final validation reward per second of trace). A faster setting counts
only if its final quality stays within the seed noise of the first one's.

    python bench/train_speed.py [-n 150000] [--seeds 0 1] [--eval-freq 10000]
        [--setting shipped=] [--setting wide64=n_envs:64,n_steps:32] [--tol 0.005]

Run it with ``PYTHONPATH=<another checkout>`` to measure that checkout's code the same way.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import numpy as np

DEFAULT_SETTINGS = ["shipped=", "wide32=n_envs:32,n_steps:64", "wide64=n_envs:64,n_steps:32"]


def cartpole_rate(n_timesteps: int, seed: int = 0) -> float:
    """Steps/s of SB3 PPO on CartPole-v1 (8 envs, default hyperparameters, one thread)."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    env = make_vec_env("CartPole-v1", n_envs=8, seed=seed)
    model = PPO("MlpPolicy", env, seed=seed, device="cpu", verbose=0)
    t0 = time.perf_counter()
    model.learn(n_timesteps)
    return n_timesteps / (time.perf_counter() - t0)


def slimrl_run(hp: dict, seed: int, n_timesteps: int, eval_freq: int, folder: str) -> dict:
    """One ``slimrl train`` run; validations timed apart from learning."""
    from slimrl.train import callbacks as cbs
    from slimrl.train.config import TrainConfig
    from slimrl.train.trainer import train

    marks: list[tuple[float, int, float]] = []  # (wall, steps, validation reward/s)
    eval_time = [0.0]
    orig = cbs.ValidationCallback.evaluate

    def timed_evaluate(self):  # the bench's probe: wall clock and result of each validation
        t = time.perf_counter()
        out = orig(self)
        eval_time[0] += time.perf_counter() - t
        marks.append((time.perf_counter(), self.num_timesteps,
                      self.last_episodes.get("reward_per_s", float("nan"))))  # fmt: skip
        return out

    cbs.ValidationCallback.evaluate = timed_evaluate
    cfg = TrainConfig(algo="ppo", env="default", n_timesteps=n_timesteps, seed=seed,
                      hyperparams=dict(hp), log_folder=folder, save_freq=-1, eval_freq=eval_freq,
                      progress=False, verbose=0, final_eval=False)  # fmt: skip
    t0 = time.perf_counter()
    try:
        train(cfg, echo=lambda s: None)
    finally:
        cbs.ValidationCallback.evaluate = orig
    wall = time.perf_counter() - t0
    vals = np.array([m[2] for m in marks])
    final = float(vals[-2:].mean())
    target = final - 0.05 * abs(final - vals[0])
    first = next(i for i, v in enumerate(vals) if v >= target)
    return {
        "steps_per_s": n_timesteps / (wall - eval_time[0]),
        "wall_s": wall,
        "time_to_quality_s": marks[first][0] - t0,
        "steps_to_quality": marks[first][1],
        "final_reward_per_s": final,
        "marks": [(w - t0, st, v) for w, st, v in marks],
    }


def parse_setting(text: str) -> tuple[str, dict]:
    name, _, rest = text.partition("=")
    hp = {}
    for item in filter(None, rest.split(",")):
        k, _, v = item.partition(":")
        hp[k] = int(v) if v.lstrip("-").isdigit() else float(v)
    return name, hp


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", "--n-timesteps", type=int, default=300_000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--eval-freq", type=int, default=10_000)
    ap.add_argument("--cartpole-steps", type=int, default=40_000)
    ap.add_argument("--setting", action="append", default=None, metavar="NAME=K:V,K:V")
    ap.add_argument("--tol", type=float, default=0.005, help="reward/s below the goal that counts")
    args = ap.parse_args()
    settings = [parse_setting(s) for s in (args.setting or DEFAULT_SETTINGS)]

    import torch

    torch.set_num_threads(1)
    cart = [cartpole_rate(args.cartpole_steps)]
    rows: dict[str, list[dict]] = {name: [] for name, _ in settings}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:  # interleaved, so load on the machine hits every setting alike
            for name, hp in settings:
                r = slimrl_run(hp, seed, args.n_timesteps, args.eval_freq, f"{tmp}/{name}")
                rows[name].append(r)
                print(f"  {name} seed {seed}: {r['steps_per_s']:,.0f} steps/s, quality "
                      f"{r['final_reward_per_s']:+.4f} reward/s after "
                      f"{r['time_to_quality_s']:.0f} s ({r['steps_to_quality']:,} steps)",
                      flush=True)  # fmt: skip
            cart.append(cartpole_rate(args.cartpole_steps))
    cp = statistics.median(cart)
    print(f"\nSB3 PPO on CartPole-v1 (8 envs): {cp:,.0f} steps/s (median of {len(cart)})")
    base = settings[0][0]
    b_rate = statistics.median(r["steps_per_s"] for r in rows[base])
    b_ttq = statistics.median(r["time_to_quality_s"] for r in rows[base])
    # the shipped setting's quality: the median over seeds of its final validation reward/s
    goal = statistics.median(r["final_reward_per_s"] for r in rows[base])
    print(f"quality goal: {goal:+.4f} reward/s (median final validation of {base}), "
          f"reached when a validation is >= goal - {args.tol:.4f}")  # fmt: skip

    def reach(r: dict) -> float:
        return next((w for w, _, v in r["marks"] if v >= goal - args.tol), float("inf"))

    b_goal = statistics.median(reach(r) for r in rows[base])
    for name, hp in settings:
        rs = rows[name]
        rate = statistics.median(r["steps_per_s"] for r in rs)
        ttq = statistics.median(r["time_to_quality_s"] for r in rs)
        q = [r["final_reward_per_s"] for r in rs]
        print(f"{name:10s} {hp or '(agents/ppo.yml)'}")
        print(f"   steps/s {rate:8,.0f}  ({rate / cp:.2f} x CartPole PPO, {rate / b_rate:.2f} x "
              f"{base})   time to quality {ttq:6.0f} s ({b_ttq / ttq:.2f} x faster than {base})"
              f"   final reward/s {statistics.mean(q):+.4f} (seeds: "
              f"{', '.join(f'{x:+.4f}' for x in q)})")  # fmt: skip
        g = statistics.median(reach(r) for r in rs)
        print(f"   wall time to the goal {g:6.0f} s ({b_goal / g:.2f} x faster than {base}; "
              f"per seed {', '.join(f'{reach(r):.0f}' for r in rs)} s)")  # fmt: skip


if __name__ == "__main__":
    main()
