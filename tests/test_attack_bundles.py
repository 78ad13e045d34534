"""Hostile policy bundles: only what the manifest lists (and verifies) is loaded, zip bombs and
oversized files are refused unread, non-finite weights are refused, and any mutated manifest or
npz gives a BundleError or a controller that works."""

from __future__ import annotations

import copy
import hashlib
import io
import json
import shutil
import tracemalloc
import zipfile
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import slimrl  # noqa: F401  (registers SlimSplit-v0)
from slimrl.bundle import Controller
from slimrl.errors import SlimrlError

SETTINGS = settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
MAX_PEAK_BYTES = 128 * 2**20  # the bombs below expand to 1 GiB and more


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    """A bundle of an untrained PPO with normalisation (numpy and ONNX)."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    from slimrl.export.exporter import export_model

    env = gym.make("SlimSplit-v0")
    venv = VecNormalize(DummyVecEnv([lambda: gym.make("SlimSplit-v0")]), norm_reward=False)
    venv.reset()
    for _ in range(20):
        venv.step([venv.action_space.sample()])
    model = PPO("MlpPolicy", venv, seed=1, device="cpu", policy_kwargs={"net_arch": [16]})
    out = tmp_path_factory.mktemp("bundle") / "b"
    export_model(model, out, env=env, vecnormalize=venv, n_parity=200)
    Controller.load(out, backend="onnx")  # imports are not what the tests measure
    return out


@pytest.fixture
def copy_of(bundle, tmp_path) -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(bundle, dst)
    return dst


def _manifest(b: Path) -> dict:
    return json.loads((b / "manifest.json").read_text())


def _write(b: Path, manifest: dict, **files: bytes) -> None:
    """Replace files of the bundle and list them with their (attacker-computed) sha256."""
    for name, data in files.items():
        (b / name).write_bytes(data)
        manifest.setdefault("files", {})[name] = hashlib.sha256(data).hexdigest()
    (b / "manifest.json").write_text(json.dumps(manifest))


def _npz(arrays: dict) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _load(b: Path, backend: str = "numpy"):
    tracemalloc.start()
    try:
        try:
            out = Controller.load(b, backend=backend)
        except SlimrlError as exc:
            assert "\n" not in str(exc) and len(str(exc)) < 2000
            out = exc
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < MAX_PEAK_BYTES, f"peak {peak / 2**20:.0f} MiB"
    return out


def _weights(b: Path) -> dict:
    with np.load(b / "policy.npz") as z:
        return {k: z[k] for k in z.files}


# -- targeted ------------------------------------------------------------------------------------
def test_an_onnx_file_the_manifest_does_not_list_is_not_loaded(copy_of, bundle):
    m = _manifest(copy_of)
    del m["files"]["policy.onnx"]
    (copy_of / "manifest.json").write_text(json.dumps(m))
    (copy_of / "policy.onnx").write_bytes(b"not the exported graph")  # swapped, unverifiable
    out = _load(copy_of, "onnx")
    assert isinstance(out, SlimrlError) and "not listed" in str(out)


def test_a_tampered_onnx_file_is_refused(copy_of):
    (copy_of / "policy.onnx").write_bytes(b"tampered")
    out = _load(copy_of, "onnx")
    assert isinstance(out, SlimrlError) and "does not match" in str(out)


def test_a_zip_bomb_npz_is_refused_unread(copy_of, tmp_path):
    bomb = io.BytesIO()
    n = 2**28  # float32: 1 GiB once decompressed
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f4", "fortran_order": False, "shape": (n,)}
    )
    zeros = bytes(1 << 20)
    with (
        zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z,
        z.open("W0.npy", "w", force_zip64=True) as f,
    ):
        f.write(header.getvalue())
        for _ in range((4 * n) >> 20):
            f.write(zeros)
    data = bomb.getvalue()
    assert len(data) < 8 * 2**20  # a few MB on disk
    _write(copy_of, _manifest(copy_of), **{"policy.npz": data})
    out = _load(copy_of)
    assert isinstance(out, SlimrlError) and "declares" in str(out), out


def test_too_many_declared_bytes_in_total_are_refused(copy_of):
    arrays = {f"A{i}": np.zeros(12 * 2**20 // 8) for i in range(12)}  # 12 x 12 MiB, compressible
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    _write(copy_of, _manifest(copy_of), **{"policy.npz": buf.getvalue()})
    out = _load(copy_of)
    assert isinstance(out, SlimrlError) and "in total" in str(out), out


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_weights_are_refused(copy_of, bad):
    w = _weights(copy_of)
    w["W0"] = w["W0"].copy()
    w["W0"][0, 0] = bad
    _write(copy_of, _manifest(copy_of), **{"policy.npz": _npz(w)})
    out = _load(copy_of)
    assert isinstance(out, SlimrlError) and "NaN or infinite" in str(out), out


def test_non_finite_normalisation_is_refused(copy_of):
    m = _manifest(copy_of)
    m["observation"]["normalize"]["clip_obs"] = -1
    (copy_of / "manifest.json").write_text(json.dumps(m))
    assert isinstance(_load(copy_of), SlimrlError)
    w = _weights(copy_of)
    w["obs_std"] = np.zeros_like(w["obs_std"])
    _write(
        copy_of, _manifest(copy_of) | {"observation": m["observation"]}, **{"policy.npz": _npz(w)}
    )
    assert isinstance(_load(copy_of), SlimrlError)


def test_an_object_array_is_refused(copy_of):
    w = _weights(copy_of)
    w["W0"] = np.array([{"a": 1}], dtype=object)
    _write(copy_of, _manifest(copy_of), **{"policy.npz": _npz(w)})
    out = _load(copy_of)
    assert isinstance(out, SlimrlError) and "not allowed" in str(out), out


def test_a_huge_manifest_is_refused(copy_of):
    m = _manifest(copy_of)
    m["padding"] = "x" * (2 * 2**20)
    (copy_of / "manifest.json").write_text(json.dumps(m))
    out = _load(copy_of)
    assert isinstance(out, SlimrlError) and "larger than" in str(out), out


def test_a_deeply_nested_manifest_is_refused(copy_of):
    (copy_of / "manifest.json").write_text("[" * 200_000 + "]" * 200_000)
    out = _load(copy_of)
    assert isinstance(out, SlimrlError) and "manifest.json" in str(out), out


def test_listed_files_must_be_plain_names_of_bounded_count(copy_of):
    m = _manifest(copy_of)
    m["files"]["../../etc/passwd"] = "0" * 64
    (copy_of / "manifest.json").write_text(json.dumps(m))
    assert "plain name" in str(_load(copy_of))
    m = _manifest(copy_of)
    m["files"] = {**m["files"], **{f"f{i}": "0" * 64 for i in range(100)}}
    (copy_of / "manifest.json").write_text(json.dumps(m))
    assert "at most" in str(_load(copy_of))


# -- property-based ------------------------------------------------------------------------------
json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(10**12), 10**12),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=10),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=15,
)


def _paths(value, prefix=()):
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value[:4]):
            out += _paths(v, (*prefix, i))
    return out


def _set(root, path, value):
    node = root
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value


def _check_controller(out) -> None:
    assert isinstance(out, Controller | SlimrlError), out
    if isinstance(out, Controller):  # a controller that loads must decide
        obs = np.random.default_rng(0).uniform(0, 2, (8, out.obs_dim)).astype(np.float32)
        a = out.act_batch(obs)
        assert a.shape == (8,) and all(0 <= x < len(out.action_table) for x in a)
        assert out.decide(obs[0]) in out.action_table


@SETTINGS
@given(data=st.data(), value=json_values)
def test_mutated_manifests(bundle, tmp_path_factory, data, value):
    b = tmp_path_factory.mktemp("m") / "b"
    shutil.copytree(bundle, b)
    m = _manifest(b)
    paths = [p for p in _paths(m) if p and p[0] != "files"]
    path = data.draw(st.sampled_from(paths))
    mutated = copy.deepcopy(m)
    _set(mutated, path, value)
    (b / "manifest.json").write_text(json.dumps(mutated))
    _check_controller(_load(b))


@SETTINGS
@given(
    data=st.data(),
    how=st.sampled_from(["flip", "truncate", "array", "drop", "dtype"]),
)
def test_mutated_npz(bundle, tmp_path_factory, data, how):
    b = tmp_path_factory.mktemp("n") / "b"
    shutil.copytree(bundle, b)
    raw = (b / "policy.npz").read_bytes()
    if how == "flip":
        i = data.draw(st.integers(0, len(raw) - 1))
        blob = raw[:i] + bytes([raw[i] ^ data.draw(st.integers(1, 255))]) + raw[i + 1 :]
    elif how == "truncate":
        blob = raw[: data.draw(st.integers(0, len(raw) - 1))]
    else:
        w = _weights(b)
        key = data.draw(st.sampled_from(sorted(w)))
        if how == "drop":
            del w[key]
        elif how == "dtype":
            w[key] = w[key].astype(data.draw(st.sampled_from(["int8", "float16", "bool", "u1"])))
        else:
            shape = data.draw(st.lists(st.integers(0, 40), max_size=3))
            fill = data.draw(st.floats(-1e6, 1e6))
            w[key] = np.full(shape, fill, dtype=np.float32)
        blob = _npz(w)
    _write(b, _manifest(b), **{"policy.npz": blob})
    _check_controller(_load(b))
