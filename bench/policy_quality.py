"""How good is PPO trained from scratch, on frames that training never saw?

Run: ``python bench/policy_quality.py [--env default] [--n-timesteps 300000] [--seeds 0 1 2]``

Trains one run per seed (``slimrl train`` with the shipped hyperparameters, no final evaluation),
then evaluates every run together with the heuristics and the oracle on the scenario's test
split (``slimrl.evaluate.run_evaluation``: the same episodes for every policy) and prints, per
run and on average: the normalised score ``(R - R_static*) / (R_oracle - R_static*)``, the
reward per frame against ``tuned-threshold``, the deadline-miss rate against ``paper-ewma`` and
the training wall time. Goals: score >= 0.9, reward above tuned-threshold, far fewer misses than
paper-ewma (at most half).

``--ceiling`` adds two estimates of the best a *causal* policy can do.

- ``full-info-fit``: the best policy for the env's observation, fitted on the training split with
  privileged labels, the true reward of every mode at every visited state
  (``env.lookahead()``), by maximising the expected reward of a softmax policy (no exploration or
  credit-assignment problem left, only what the observation can tell), with a few rounds of data
  collected by its own policy.
- ``past-channel-oracle``: the oracle minus the future channel. It knows every frame's compute
  and edge time exactly and the whole past of the trace, predicts the transfer from the true
  mean capacity of the last W seconds (W and a safety margin grid-searched on the training
  split), and counts the mode's mean accuracy. It is scored in a loop of its own, next to the
  runs, static* and the oracle on the same episodes.

When PPO matches them, the gap to the oracle is the future channel, which no device knows.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

GOAL_SCORE = 0.9
GOAL_MISS_RATIO = 0.5
HEURISTICS = ("paper-ewma", "tuned-threshold", "rate-threshold", "oracle")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", default="default", help="scenario (default: default)")
    p.add_argument("--algo", default="ppo", help="algorithm (default: ppo)")
    p.add_argument("-n", "--n-timesteps", type=int, default=300_000, help="steps per run")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds")
    p.add_argument("--conf-file", default=None, help="hyperparameters (default: agents/<algo>.yml)")
    p.add_argument("-params", "--hyperparams", nargs="+", default=None, metavar="KEY:VALUE")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--episodes", type=int, default=None, help="test episodes (default: 32)")
    p.add_argument("--split", default="test", help="evaluation split (default: test)")
    p.add_argument("-f", "--log-folder", default="logs/bench", help="where the runs go")
    p.add_argument(
        "--runs",
        nargs="+",
        default=None,
        metavar="RUN_DIR",
        help="evaluate these existing runs instead of training",
    )
    p.add_argument("--ceiling", action="store_true", help="add the full-information fit")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=False)
    return p.parse_args(argv)


def train_runs(args: argparse.Namespace) -> list[tuple[Path, float]]:
    from slimrl.train.config import TrainConfig, parse_hyperparams_args
    from slimrl.train.trainer import train

    out = []
    for seed in args.seeds:
        cfg = TrainConfig(
            algo=args.algo,
            env=args.env,
            n_timesteps=args.n_timesteps,
            seed=seed,
            conf_file=args.conf_file,
            hyperparams=parse_hyperparams_args(args.hyperparams),
            set=list(args.set),
            log_folder=args.log_folder,
            save_freq=-1,
            progress=args.progress,
            verbose=0,
            final_eval=False,
        )
        t0 = time.perf_counter()
        run = train(cfg, echo=lambda s: None)
        wall = time.perf_counter() - t0
        print(f"seed {seed}: {run} ({wall:.0f} s)", flush=True)
        out.append((run, _train_wall(run, wall)))
    return out


def full_info_fit(
    scenario: str, overrides: dict | None, rounds: int = 4, steps: int = 1000, n: int = 64
) -> object:
    """The ``full-info-fit`` policy (see the module docstring), trained on the training split."""
    import torch
    import torch.nn as nn

    from slimrl.env.vector import SlimSplitVectorEnv
    from slimrl.policies.base import BatchPolicy, ModeTable

    torch.manual_seed(0)
    env = SlimSplitVectorEnv(n, scenario, split="train", overrides=overrides, action_space="flat")
    table = ModeTable.from_env(env)
    allowed = torch.as_tensor(table.allowed)

    def collect(act, seed: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(seed)
        obs, _ = env.reset(seed=seed)
        xs, ys = [], []
        for _ in range(steps):
            xs.append(obs.copy())
            ys.append(env.lookahead()["reward"].reshape(n, -1))
            a = rng.choice(np.flatnonzero(table.allowed), n) if act is None else act(obs)
            explore = rng.random(n) < 0.2
            a[explore] = rng.choice(np.flatnonzero(table.allowed), int(explore.sum()))
            obs, *_ = env.step(a)
        return np.concatenate(xs), np.concatenate(ys)

    x, y = collect(None, 0)
    z = np.log1p(np.clip(x, 0, None))
    mu, sd = z.mean(0), z.std(0) + 1e-6
    net = nn.Sequential(
        nn.Linear(x.shape[1], 128), nn.Tanh(), nn.Linear(128, 128), nn.Tanh(),
        nn.Linear(128, table.M),
    )  # fmt: skip
    opt = torch.optim.Adam(net.parameters(), 1e-3)

    def inputs(obs: np.ndarray) -> torch.Tensor:
        return torch.as_tensor((np.log1p(np.clip(obs, 0, None)) - mu) / sd, dtype=torch.float32)

    def logits(obs: np.ndarray) -> torch.Tensor:
        return net(inputs(obs)).masked_fill(~allowed, -1e9)

    def fit(x: np.ndarray, y: np.ndarray, epochs: int = 8) -> None:
        xt, yt = inputs(x), torch.as_tensor(y, dtype=torch.float32)
        for _ in range(epochs):
            for idx in torch.randperm(len(xt)).split(1024):
                p = torch.softmax(net(xt[idx]).masked_fill(~allowed, -1e9), 1)
                loss = -(p * yt[idx]).sum(1).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()

    def act(obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return logits(obs).argmax(1).numpy()

    for r in range(rounds):
        fit(x, y)
        x2, y2 = collect(act, r + 1)
        x, y = np.concatenate([x, x2]), np.concatenate([y, y2])
    fit(x, y)

    class FullInfoFit(BatchPolicy):
        name = "full-info-fit"

        def act_batch(self, observations, infos):  # noqa: ARG002 - stateless
            return act(np.asarray(observations, dtype=np.float32))

    return FullInfoFit(table)


PAST_WINDOWS_S = (0.1, 0.3, 1.0, 3.0)
PAST_MARGINS = (1.0, 1.25, 1.5, 2.0, 3.0)


def _past_channel_oracle(window_s: float, margin: float):
    """``make(env) -> act(obs, info)`` of the past-channel oracle for a flat-action vector env."""
    from slimrl.policies.base import ModeTable

    offsets = np.linspace(0.0, window_s, 21)[1:]

    def make(env):
        w, n = env.world, env.num_envs
        allowed = np.asarray(ModeTable.from_env(env).allowed)
        m = w.clamp_arr

        def act(obs, info):
            la = env.lookahead()
            t = env.sim_time_s[:, None] - offsets[None, :]
            ti = np.broadcast_to(env._ti[:, None], t.shape)  # noqa: SLF001 - privileged reference
            cap = w.bank.capacity_at(ti, np.maximum(t, 0.0)).mean(axis=1)  # bytes/s
            tx_s = w.payload[m][None, :] / np.maximum(cap[:, None], 1.0)
            c = la["compute_ms"].reshape(n, -1)
            e2e = c + 1000.0 * margin * tx_s + w.delay2_ms + la["edge_ms"].reshape(n, -1)
            energy = w.power_ms * c + w.radio_base_w * tx_s + w.radio_bytes_j[m][None, :]
            reward = np.where(e2e <= w.deadline_ms, w.w_acc * w.accuracy[m][None, :], -w.miss)
            reward = reward - w.w_energy * energy
            return np.where(allowed, reward, -np.inf).argmax(axis=1)

        return act

    return make


def ceiling_table(
    scenario: str, overrides: dict | None, runs: list[Path], split: str, episodes: int
) -> pd.DataFrame:
    """Score the runs and the past-channel oracle against static* and the oracle on one set
    of ``episodes`` episodes of ``split`` (each from ``reset(seed=0)``)."""
    from slimrl.env.vector import SlimSplitVectorEnv
    from slimrl.evaluate.metrics import score
    from slimrl.policies.registry import make_policy, static_names

    def make_env(split_: str, n: int) -> SlimSplitVectorEnv:
        return SlimSplitVectorEnv(
            n, scenario, split=split_, overrides=overrides, action_space="flat"
        )

    def named(name: str):
        def make(env):
            pol = make_policy(name, env)
            pol.reset(env.num_envs)
            return pol.act_batch

        return make

    def rollout(make, split_: str, n: int, seed: int) -> tuple[float, float]:
        env = make_env(split_, n)
        act = make(env)
        obs, info = env.reset(seed=seed)
        total = on_time = 0.0
        for _ in range(env.world.scenario.episode_length):
            obs, reward, _, _, info = env.step(act(obs, info))
            total += float(reward.sum())
            on_time += float(np.sum(info["on_time"]))
        frames = n * env.world.scenario.episode_length
        return total / frames, on_time / frames

    fit = max(
        (rollout(_past_channel_oracle(w, m), "train", 16, 1)[0], w, m)
        for w in PAST_WINDOWS_S
        for m in PAST_MARGINS
    )
    statics = static_names(make_env(split, 1))
    r_static = max(rollout(named(s), split, episodes, 0)[0] for s in statics)
    r_oracle, on_oracle = rollout(named("oracle"), split, episodes, 0)
    rows = [("oracle", r_oracle, on_oracle)]
    r, on = rollout(_past_channel_oracle(fit[1], fit[2]), split, episodes, 0)
    rows.append((f"past-channel-oracle (W {fit[1]:g} s, margin {fit[2]:g})", r, on))
    rows += [(run.name, *rollout(named(str(run)), split, episodes, 0)) for run in runs]
    return pd.DataFrame(
        [
            {
                "policy": name,
                "score": score(r, r_static, r_oracle),
                "reward": r,
                "miss rate": 1.0 - on,
            }
            for name, r, on in rows
        ]
    )


def _train_wall(run: Path, default: float) -> float:
    path = run / "train_time.yml"
    if path.is_file():
        return float((yaml.safe_load(path.read_text()) or {}).get("wall_s", default))
    return default


def table(summary: pd.DataFrame, runs: list[tuple[Path, float]]) -> pd.DataFrame:
    """One row per run (and their mean) with the goal columns."""
    by = summary.set_index("policy")
    r_tuned = float(by.at["tuned-threshold", "reward_mean"])
    miss_ewma = 1.0 - float(by.at["paper-ewma", "on_time_rate"])
    rows = []
    for run, wall in runs:
        r = by.loc[str(run)]
        miss = 1.0 - float(r["on_time_rate"])
        rows.append(
            {
                "run": run.name,
                "score": float(r["score"]),
                "reward": float(r["reward_mean"]),
                "reward - tuned": float(r["reward_mean"]) - r_tuned,
                "miss rate": miss,
                "misses / ewma": miss / miss_ewma if miss_ewma > 0 else np.nan,
                "train s": wall,
            }
        )
    df = pd.DataFrame(rows)
    if len(df) > 1:
        mean = df.drop(columns="run").mean()
        df = pd.concat([df, pd.DataFrame([{"run": "mean", **mean.to_dict()}])], ignore_index=True)
    return df


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from slimrl.evaluate import print_summary, run_evaluation

    if args.runs:
        runs = [(Path(r), _train_wall(Path(r), float("nan"))) for r in args.runs]
    else:
        runs = train_runs(args)
    from slimrl.scenario import parse_set_args

    overrides = parse_set_args(args.set) or None
    extra = []
    if args.ceiling:
        t0 = time.perf_counter()
        extra.append(full_info_fit(args.env, overrides))
        print(f"full-info-fit: {time.perf_counter() - t0:.0f} s", flush=True)
    out = Path(args.log_folder) / f"quality_{args.split}"
    summary = run_evaluation(
        args.env,
        args.split,
        [*(str(r) for r, _ in runs), *extra, *HEURISTICS],
        out,
        episodes=args.episodes,
        overrides=overrides,
        progress=args.progress,
        plots=False,
    )
    print_summary(summary, title=f"{args.env}, {args.split} split")
    df = table(summary, runs)
    by = summary.set_index("policy")
    print(
        f"\n{args.algo.upper()} from scratch, {args.n_timesteps:,} steps, scenario "
        f"{args.env}, {args.split} split ({int(by['episodes'].iloc[0])} episodes)"
    )
    with pd.option_context("display.width", 160, "display.float_format", "{:.4f}".format):
        print(df.to_string(index=False))
    others = [*HEURISTICS, "full-info-fit"]
    refs = by.loc[[n for n in by.index if n in others or by.at[n, "reference"]]]
    print(
        "\nreferences: "
        + ", ".join(
            f"{n} score {r['score']:.3f} reward {r['reward_mean']:.4f} "
            f"misses {1 - r['on_time_rate']:.3f}"
            for n, r in refs.iterrows()
        )
    )
    if args.ceiling:
        ceiling = ceiling_table(
            args.env, overrides, [r for r, _ in runs], args.split, args.episodes or 32
        )
        print(f"\nwhat causal knowledge buys, {args.split} split (episodes from reset(seed=0)):")
        with pd.option_context("display.width", 160, "display.float_format", "{:.4f}".format):
            print(ceiling.to_string(index=False))
    last = df.iloc[-1]
    goals = {
        f"score >= {GOAL_SCORE}": last["score"] >= GOAL_SCORE,
        "reward > tuned-threshold": last["reward - tuned"] > 0,
        f"misses <= {GOAL_MISS_RATIO:g} x paper-ewma": last["misses / ewma"] <= GOAL_MISS_RATIO,
    }
    print(
        "goals ("
        + ("mean of runs" if len(runs) > 1 else "the run")
        + "): "
        + "; ".join(f"{k}: {'yes' if v else 'NO'}" for k, v in goals.items())
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
