"""Write a policy bundle from a trained Stable-Baselines3 model (and its VecNormalize statistics).

``export_run(RUN_DIR, OUT)`` reads an rl-zoo run folder; ``export_model(model, OUT, env=...)``
takes the pieces directly. Both write ``policy.onnx``, ``policy.npz`` and ``manifest.json``
atomically, then measure parity (ONNX vs numpy vs SB3) on observations drawn from the env and
store it in the manifest.
"""

from __future__ import annotations

import contextlib
import datetime
import importlib.metadata
import json
import os
import platform
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from slimrl.bundle import MANIFEST, NPZ_FILE, ONNX_FILE, SCHEMA_VERSION, Controller
from slimrl.bundle.format import FORMAT
from slimrl.errors import BundleError, RunError, SlimrlError
from slimrl.export.onnx_graph import OPSET, build_onnx
from slimrl.export.policy_net import PolicyNet, extract_policy
from slimrl.io import atomic_dir, check_output_dir, sha256_file
from slimrl.runs import ENV_ID, NormStats, Run, norm_stats
from slimrl.scenario import Scenario, load_scenario

DEFAULT_PARITY_N = 100_000
#: the output kind of a bundle folder (:func:`slimrl.io.atomic_dir`)
BUNDLE_KIND = "bundle"


# -- observations for the parity check ----------------------------------------------------------
def draw_observations(
    env, n: int, seed: int, act: Callable[[np.ndarray], int] | None = None, maskable: bool = False
) -> tuple[np.ndarray, np.ndarray | None]:
    """``n`` observations from ``env``, acting at random half the time and with ``act`` else.

    Returns the observations ``(n, D)`` and, for maskable policies, the action masks.
    """
    rng = np.random.default_rng(seed)
    env.action_space.seed(seed)
    obs, _ = env.reset(seed=seed)
    out = np.empty((n, *env.observation_space.shape), dtype=np.float32)
    masks = [] if maskable else None
    for i in range(n):
        out[i] = obs
        if maskable:
            masks.append(_mask_of(env))
        use_policy = act is not None and rng.random() < 0.5
        action = act(obs) if use_policy else env.action_space.sample()
        obs, _r, terminated, truncated, _info = env.step(action)
        if terminated or truncated:
            obs, _ = env.reset()
    return out, (np.stack(masks) if maskable else None)


def _mask_of(env) -> np.ndarray:
    fn = getattr(env.unwrapped, "action_masks", None) or getattr(env, "action_masks", None)
    if fn is None:
        raise BundleError("a MaskablePPO run needs an env with action_masks()")
    return np.asarray(fn(), dtype=bool).reshape(-1)


def measure_parity(
    model, stats: NormStats | None, bundle_dir: Path, obs: np.ndarray, masks: np.ndarray | None
) -> dict[str, Any]:
    """Agreement of SB3 ``predict``, the numpy controller and the ONNX graph on ``obs``."""
    numpy_ctrl = Controller.load(bundle_dir, backend="numpy")
    onnx_ctrl = Controller.load(bundle_dir, backend="onnx")
    x = obs
    if stats is not None:
        x = np.clip((obs - stats.mean) / stats.std, -stats.clip_obs, stats.clip_obs)
        x = x.astype(np.float32)
    kwargs = {"action_masks": masks} if masks is not None else {}
    sb3, _ = model.predict(x, deterministic=True, **kwargs)
    sb3_flat = numpy_ctrl.flat_index(sb3)
    a_np = numpy_ctrl.act_batch(obs, masks)
    a_onnx = onnx_ctrl.act_batch(obs, masks)
    logit_diff = np.abs(numpy_ctrl.logits_batch(obs) - onnx_ctrl.logits_batch(obs))
    return {
        "n": int(len(obs)),
        "source": "observations drawn from the scenario's env (half random, half policy actions)",
        "numpy_vs_sb3": float(np.mean(a_np == sb3_flat)),
        "onnx_vs_sb3": float(np.mean(a_onnx == sb3_flat)),
        "onnx_vs_numpy": float(np.mean(a_onnx == a_np)),
        "mismatches": int(np.sum((a_np != sb3_flat) | (a_onnx != sb3_flat))),
        "max_abs_logit_diff_onnx_numpy": float(logit_diff.max()),
    }


# -- writing --------------------------------------------------------------------------------
def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in (
        "slimrl",
        "numpy",
        "torch",
        "stable-baselines3",
        "sb3-contrib",
        "gymnasium",
        "onnx",
        "onnxruntime",
    ):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            out[dist] = importlib.metadata.version(dist)
    return out


def export_model(
    model: Any,
    out_dir: str | os.PathLike,
    *,
    env: Any,
    vecnormalize: Any = None,
    expect_normalize: bool = False,
    scenario: dict[str, Any] | None = None,
    action_table: list[tuple[int, int]] | None = None,
    observation: dict[str, Any] | None = None,
    n_parity: int = DEFAULT_PARITY_N,
    seed: int = 0,
    source: dict[str, Any] | None = None,
    min_agreement: float = 0.999,
    protect: Sequence[str | os.PathLike] = (),
) -> dict[str, Any]:
    """Write the bundle for ``model`` into ``out_dir``; return the manifest.

    ``env`` is the (single) environment the run was trained on: parity observations are drawn
    from it and its spaces must match the model's. ``action_table`` (flat index -> (k, bits))
    and ``observation`` (an ``ObservationBuilder.spec()``) default to what ``env`` exposes.
    ``out_dir`` replaces only a bundle slimrl wrote there and may neither be nor contain any
    of ``protect`` (the inputs).
    """
    check_output_dir(out_dir, kind=BUNDLE_KIND, protect=protect)
    net = extract_policy(model)
    _check_spaces(model, env)
    stats = norm_stats(vecnormalize, net.obs_dim)
    if expect_normalize and stats is None:
        raise BundleError(
            "the run's config says it normalised observations (normalize: true) but no "
            "VecNormalize statistics (vecnormalize.npz) were found; cannot reproduce its inputs"
        )
    table = action_table if action_table is not None else _env_action_table(env)
    if len(table) != int(np.prod(net.nvec)):
        raise BundleError(
            f"the env's action table has {len(table)} modes, the model's action space "
            f"{net.nvec} has {int(np.prod(net.nvec))}"
        )
    obs_spec = observation if observation is not None else _env_observation_spec(env, net.obs_dim)

    manifest: dict[str, Any] = {
        "format": FORMAT,
        "schema_version": SCHEMA_VERSION,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "algo": net.algo,
        "observation": {
            **obs_spec,
            "dtype": "float32",
            "normalize": (
                {"enabled": True, "epsilon": stats.epsilon, "clip_obs": stats.clip_obs}
                if stats is not None
                else {"enabled": False}
            ),
        },
        "action": {
            "kind": net.kind,
            "nvec": net.nvec,
            "table": [[int(k), int(b)] for k, b in table],
            "index": "flat index a = ki * B + bi (k-major); multidiscrete actions are [ki, bi]",
            "maskable": net.maskable,
        },
        "network": {
            "head": net.head,
            "layers": net.layers,
            "onnx_opset": OPSET,
            "dtype": "float32",
        },
        "scenario": scenario,
        "versions": versions(),
        "source": source or {},
    }
    with atomic_dir(out_dir, kind=BUNDLE_KIND, protect=protect) as tmp:
        _write_arrays(tmp, net, stats)
        manifest["files"] = {name: sha256_file(tmp / name) for name in (ONNX_FILE, NPZ_FILE)}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
        if n_parity > 0:
            ctrl = Controller.load(tmp)
            policy = lambda o: ctrl.env_action(ctrl.flat_action(o))  # noqa: E731
            obs, masks = draw_observations(env, n_parity, seed, policy, net.maskable)
            parity = measure_parity(model, stats, tmp, obs, masks)
            manifest["parity"] = parity
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
            worst = min(parity["numpy_vs_sb3"], parity["onnx_vs_sb3"])
            if worst < min_agreement:
                raise BundleError(
                    f"parity check failed: numpy {parity['numpy_vs_sb3']:.5f}, ONNX "
                    f"{parity['onnx_vs_sb3']:.5f} agreement with SB3 on {parity['n']} observations "
                    f"(need {min_agreement}); the bundle would not reproduce the model"
                )
    return manifest


def _write_arrays(folder: Path, net: PolicyNet, stats: NormStats | None) -> None:
    arrays = net.arrays()
    if stats is not None:
        arrays["obs_mean"] = stats.mean
        arrays["obs_std"] = stats.std
    np.savez(folder / NPZ_FILE, **arrays)
    onx = build_onnx(net, *(() if stats is None else (stats.mean, stats.std, stats.clip_obs)))
    (folder / ONNX_FILE).write_bytes(onx.SerializeToString())


def _check_spaces(model, env) -> None:
    mo, eo = model.observation_space, env.observation_space
    if mo.shape != eo.shape or not (np.allclose(mo.low, eo.low) and np.allclose(mo.high, eo.high)):
        raise BundleError(
            f"observation spaces differ: the model was trained on {mo}, the env gives {eo}; "
            "was the run trained on another scenario or slimrl version?"
        )
    if model.action_space != env.action_space:
        raise BundleError(
            f"action spaces differ: the model acts in {model.action_space}, the env in "
            f"{env.action_space} (action_space='flat' vs 'multidiscrete'?)"
        )


def _env_action_table(env) -> list[tuple[int, int]]:
    table = getattr(env.unwrapped, "action_table", None)
    if table is None:
        raise BundleError("the env exposes no action_table; pass action_table=")
    return [(int(k), int(b)) for k, b in table]


def _env_observation_spec(env, dim: int) -> dict[str, Any]:
    builder = getattr(env.unwrapped, "obs_builder", None)
    if builder is not None:
        return builder.spec()
    space = env.observation_space
    return {
        "names": [f"obs_{i}" for i in range(dim)],
        "low": space.low.tolist(),
        "high": space.high.tolist(),
    }


# -- run folders ------------------------------------------------------------------------------
def export_run(
    run_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    which: str = "final",
    algo: str | None = None,
    scenario: str | os.PathLike | Scenario | None = None,
    overrides: dict[str, Any] | None = None,
    n_parity: int = DEFAULT_PARITY_N,
    seed: int = 0,
) -> dict[str, Any]:
    """Export a run folder (see :mod:`slimrl.runs`) into ``out_dir``.

    The bundle's scenario is the one the run was trained on (its saved ``scenario.yml``, with a
    warning when the named scenario file changed since), unless ``scenario`` names another;
    ``overrides`` apply on top. ``out_dir`` is checked first (a bundle slimrl wrote, or a new
    folder, outside the run folder), before anything is loaded.
    """
    try:
        run = Run.open(run_dir, which)
        protect = [run.run_dir, run.model]
        check_output_dir(out_dir, kind=BUNDLE_KIND, protect=protect)
        _check_run_config(run)
        model = run.load_agent(algo)
        vec = run.load_vecnormalize()
        sc = run.scenario() if scenario is None else load_scenario(scenario)
    except RunError as exc:
        raise BundleError(str(exc)) from None
    if overrides:
        sc = load_scenario(sc, overrides)
    env_kwargs = {k: v for k, v in run.env_kwargs.items() if k not in ("scenario", "overrides")}
    env = make_env(sc, env_kwargs)
    try:
        source = {
            "run_dir": str(run.run_dir),
            "model": run.model.name,
            "model_sha256": sha256_file(run.model),
            "vecnormalize_sha256": sha256_file(run.vecnormalize) if run.vecnormalize else None,
            "env_kwargs": _jsonable({"scenario": sc.name, **env_kwargs}),
            "hyperparameters": _jsonable(run.config),
        }
        return export_model(
            model,
            out_dir,
            env=env,
            vecnormalize=vec,
            expect_normalize=run.normalizes_obs,
            scenario=_jsonable(sc.to_dict()),
            n_parity=n_parity,
            seed=seed,
            source=source,
            protect=protect,
        )
    finally:
        env.close()


def _check_run_config(run: Run) -> None:
    cfg = run.config
    for key in ("frame_stack", "env_wrapper"):
        if cfg.get(key):
            raise BundleError(
                f"{run.params_dir}/config.yml: {key} = {cfg[key]!r} changes the observations; "
                "runs with observation wrappers cannot be exported"
            )
    policy = cfg.get("policy")
    if policy is not None and policy != "MlpPolicy":
        raise BundleError(f"{run.params_dir}/config.yml: policy {policy!r}; only MlpPolicy exports")


def make_env(scenario: Scenario, env_kwargs: dict[str, Any]):
    """A single SlimSplit-v0 env of ``scenario`` with the run's other keyword arguments."""
    import gymnasium as gym

    import slimrl.env  # noqa: F401  (registers SlimSplit-v0)

    try:
        return gym.make(ENV_ID, scenario=scenario, **env_kwargs)
    except SlimrlError:
        raise
    except Exception as exc:
        raise BundleError(f"cannot create {ENV_ID} with {env_kwargs}: {exc}") from exc


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))
