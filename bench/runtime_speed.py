"""Decision latency of the exported controller (numpy, onnxruntime) against SB3's model.predict.

    python bench/runtime_speed.py [--bundle DIR --run RUN_DIR] [--calls 20000]

Without arguments it builds a PPO MlpPolicy (64x64 tanh, SB3 defaults) on SlimSplit-v0 with
VecNormalize statistics from random rollouts, exports it, and times the three on the same
observations drawn from the env, in one run. Prints medians and the ratios to SB3.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import gymnasium as gym
import numpy as np

import slimrl  # noqa: F401


def median_us(fn, observations: np.ndarray, calls: int) -> float:
    """Median wall time (us) of one ``fn(obs)`` call, each call timed on its own."""
    n = len(observations)
    for i in range(min(calls, 500)):  # warm-up
        fn(observations[i % n])
    times = np.empty(calls)
    clock = time.perf_counter_ns
    for i in range(calls):
        obs = observations[i % n]
        t0 = clock()
        fn(obs)
        times[i] = clock() - t0
    return float(np.median(times)) / 1e3


def build(tmp: Path, scenario: str) -> tuple[object, object, Path]:
    """An untrained-but-normalised PPO model, its VecNormalize and its exported bundle."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    from slimrl.export import export_model

    venv = VecNormalize(
        DummyVecEnv([lambda: gym.make("SlimSplit-v0", scenario=scenario)]), norm_reward=False
    )
    venv.reset()
    for _ in range(3000):  # fill the running statistics
        venv.step(np.array([venv.action_space.sample()]))
    venv.training = False
    model = PPO("MlpPolicy", venv, seed=0, device="cpu")
    bundle = tmp / "bundle"
    export_model(
        model,
        bundle,
        env=gym.make("SlimSplit-v0", scenario=scenario),
        vecnormalize=venv,
        n_parity=10_000,
    )
    return model, venv, bundle


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--run", default=None, help="rl-zoo run folder (with --bundle exported from it)"
    )
    ap.add_argument("--bundle", default=None)
    ap.add_argument("--env", default="default", help="scenario of the built model")
    ap.add_argument("--calls", type=int, default=20_000)
    ap.add_argument("--torch-threads", type=int, default=1)
    args = ap.parse_args()

    import onnxruntime
    import torch

    from slimrl.runtime import Controller

    torch.set_num_threads(args.torch_threads)
    with tempfile.TemporaryDirectory() as tmp:
        if args.run:
            from slimrl.runs import Run

            run = Run.open(args.run)
            model = run.load_agent()
            vec = run.load_vecnormalize()
            bundle = Path(args.bundle)
        else:
            model, vec, bundle = build(Path(tmp), args.env)
        ctrl = Controller.load(bundle)
        onnx = Controller.load(bundle, backend="onnx")
        env = gym.make("SlimSplit-v0", scenario=args.env)
        from slimrl.export.exporter import draw_observations

        obs, _ = draw_observations(env, 4096, seed=1)

        def sb3(o: np.ndarray) -> None:
            x = vec.normalize_obs(o) if vec is not None else o
            model.predict(x, deterministic=True)

        t_np = median_us(ctrl.decide, obs, args.calls)
        t_onnx = median_us(onnx.decide, obs, args.calls)
        t_sb3 = median_us(sb3, obs, max(2000, args.calls // 5))

    layers = " -> ".join(str(x["out"]) for x in ctrl.manifest["network"]["layers"])
    print(
        f"policy: {ctrl.manifest['algo']} MLP {ctrl.obs_dim} -> {layers}, "
        f"normalised={ctrl.normalize}; numpy {np.__version__}, onnxruntime "
        f"{onnxruntime.__version__}, torch {torch.__version__} ({args.torch_threads} thread)"
    )
    print(f"{'backend':<28}{'median us/decision':>20}{'x faster than SB3':>20}")
    for name, t in (
        ("numpy Controller.decide", t_np),
        ("onnxruntime Controller.decide", t_onnx),
        ("SB3 normalize+predict", t_sb3),
    ):
        print(f"{name:<28}{t:>20.2f}{t_sb3 / t:>20.1f}")
    print(
        f"goal: numpy <= 20 us and >= 10x faster than SB3: "
        f"{'met' if t_np <= 20 and t_sb3 / t_np >= 10 else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
