"""The on-device controller: an exported policy bundle evaluated with numpy (or onnxruntime).

Reproduces ``model.predict(obs, deterministic=True)`` of the exported Stable-Baselines3 model,
VecNormalize observation normalisation included, without torch or SB3::

    ctrl = Controller.load("agents/reference/ppo-fmnist-iot/bundle")
    k, bits = ctrl.decide(observation)
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from slimrl.bundle.format import (
    MAX_FILE_BYTES,
    MAX_NPZ_MEMBER_BYTES,
    MAX_NPZ_MEMBERS,
    MAX_NPZ_TOTAL_BYTES,
    NPZ_FILE,
    ONNX_FILE,
    read_manifest,
    read_verified,
)
from slimrl.errors import BundleError
from slimrl.validate import read_bytes, read_npz

HUGE_NEG = -1e8  # SB3-contrib's masked-logit value
# Logit gap below which float32 rounding inside torch's Categorical can tie two actions.
TIE_TOL = 1e-5


def categorical_mode(logits: np.ndarray) -> np.ndarray:
    """Per row, the action SB3's deterministic Categorical picks: ``argmax(probs)``.

    torch normalises the logits (``l - logsumexp(l)``) and takes the softmax (``exp(x - max)``
    times the reciprocal of its sum) in float32 before the argmax, so two logits closer than the
    rounding step can tie and the first one wins. This repeats those float32 steps (exp and log
    correctly rounded, through float64; torch's vectorised exp is within one ulp of that). Away
    from near-ties it equals ``argmax(logits)``; on adversarial near-ties (logits a few float32
    steps apart) it agrees with torch on more than 99.9 % of rows, against about 95 % for a
    plain argmax, and on observations drawn from the env no disagreement has been seen.
    """
    x = np.asarray(logits, dtype=np.float32)
    m = x.max(axis=1, keepdims=True)
    total = _exp32(x - m).sum(axis=1, keepdims=True)
    z = x - (np.log(total.astype(np.float64)).astype(np.float32) + m)
    e = _exp32(z - z.max(axis=1, keepdims=True))
    return (e * (np.float32(1.0) / e.sum(axis=1, keepdims=True))).argmax(axis=1)


def _exp32(x: np.ndarray) -> np.ndarray:
    return np.exp(x.astype(np.float64)).astype(np.float32)


def _argmax_rows(x: np.ndarray) -> np.ndarray:
    return x.argmax(axis=1)


def _leaky_relu(alpha: float) -> Callable[[np.ndarray], None]:
    def f(x: np.ndarray) -> None:
        np.copyto(x, x * np.float32(alpha), where=x < 0)

    return f


def _elu(alpha: float) -> Callable[[np.ndarray], None]:
    def f(x: np.ndarray) -> None:
        neg = x < 0
        x[neg] = alpha * np.expm1(x[neg])

    return f


def _sigmoid(x: np.ndarray) -> None:
    np.negative(x, out=x)
    np.exp(x, out=x)
    x += 1.0
    np.reciprocal(x, out=x)


def _tanh(x: np.ndarray) -> None:
    np.tanh(x, out=x)


def _relu(x: np.ndarray) -> None:
    np.maximum(x, np.float32(0.0), out=x)


def activation_fn(name: str, alpha: float | None = None) -> Callable[[np.ndarray], None]:
    """In-place numpy activation for a manifest activation name."""
    if alpha is not None and (
        isinstance(alpha, bool) or not isinstance(alpha, int | float) or not np.isfinite(alpha)
    ):
        raise BundleError(f"activation {name!r}: alpha must be a finite number, got {alpha!r:.40}")
    if name == "tanh":
        return _tanh
    if name == "relu":
        return _relu
    if name == "leaky_relu":
        return _leaky_relu(0.01 if alpha is None else alpha)
    if name == "elu":
        return _elu(1.0 if alpha is None else alpha)
    if name == "sigmoid":
        return _sigmoid
    raise BundleError(f"unknown activation {name!r} in the bundle's network")


class Controller:
    """A loaded bundle. ``decide(obs) -> (k, bits)``; ``act(obs) -> flat action index``."""

    def __init__(
        self,
        manifest: dict[str, Any],
        weights: dict[str, np.ndarray],
        path: Path,
        backend: str = "numpy",
        onnx: bytes | None = None,
    ) -> None:
        self.manifest = manifest
        self.path = path
        obs = manifest["observation"]
        act = manifest["action"]
        self.observation_names: list[str] = list(obs["names"])
        self.obs_dim = len(self.observation_names)
        self.action_table: list[tuple[int, int]] = [(int(k), int(b)) for k, b in act["table"]]
        self.kind: str = act["kind"]
        self.nvec: list[int] = [int(n) for n in act["nvec"]]
        self.maskable = bool(act.get("maskable", False))
        self._categorical = manifest["network"].get("head", "logits") == "logits"
        if self.kind not in ("discrete", "multidiscrete"):
            raise BundleError(f"{path}: unknown action space kind {self.kind!r}")
        if int(np.prod(self.nvec)) != len(self.action_table):
            raise BundleError(
                f"{path}: action table has {len(self.action_table)} entries, "
                f"the action space {self.nvec} has {int(np.prod(self.nvec))}"
            )
        self._offsets = np.cumsum([0, *self.nvec])
        self.default_mask = self._scenario_mask() if self.maskable else None
        self.strides = [int(np.prod(self.nvec[i + 1 :])) for i in range(len(self.nvec))]

        norm = obs.get("normalize") or {}
        self.normalize = bool(norm.get("enabled", False))
        try:
            if self.normalize:
                self._mean = np.asarray(weights["obs_mean"], dtype=np.float64)
                self._std = np.asarray(weights["obs_std"], dtype=np.float64)
                self._clip = float(norm["clip_obs"])
                if not (np.isfinite(self._clip) and self._clip > 0) or not np.all(self._std > 0):
                    raise BundleError(
                        f"{path}: normalisation needs clip_obs > 0 and obs_std > 0 (finite)"
                    )
            layers = manifest["network"]["layers"]
            self._W = [
                np.ascontiguousarray(weights[f"W{i}"], dtype=np.float32) for i in range(len(layers))
            ]
            self._b = [
                np.ascontiguousarray(weights[f"b{i}"], dtype=np.float32) for i in range(len(layers))
            ]
        except KeyError as exc:
            raise BundleError(f"{path / NPZ_FILE}: missing array {exc}") from None
        self._acts = [
            None
            if lay.get("activation") in (None, "identity")
            else activation_fn(lay["activation"], lay.get("alpha"))
            for lay in layers
        ]
        self._check_shapes()
        # Preallocated buffers for the single-observation fast path.
        self._x64 = np.empty(self.obs_dim, dtype=np.float64)
        self._x32 = np.empty(self.obs_dim, dtype=np.float32)
        self._h = [np.empty(W.shape[1], dtype=np.float32) for W in self._W]
        self._logits = self._h[-1]
        self._fast = list(zip(self._W, self._b, self._acts, self._h, strict=True))
        if self.normalize:
            self._hi = np.full(self.obs_dim, self._clip)
            self._lo = -self._hi
        self._segments = [
            self._logits[a:b] for a, b in zip(self._offsets[:-1], self._offsets[1:], strict=True)
        ]
        self.backend = backend
        self._session = None
        if backend == "onnx":
            if onnx is None:
                raise BundleError(f"{path / ONNX_FILE}: not read through the verified loader")
            self._session = _onnx_session(path / ONNX_FILE, onnx)
        elif backend != "numpy":
            raise BundleError(f"unknown backend {backend!r}; expected 'numpy' or 'onnx'")

    def _scenario_mask(self) -> np.ndarray | None:
        """The valid-action mask of the scenario's allowed ``modes`` (as the env builds it)."""
        modes = (self.manifest.get("scenario") or {}).get("modes")
        if not modes:
            return None
        ok_k, ok_b = set(modes["k"]), set(modes["bits"])
        if self.kind == "discrete":
            return np.array([k in ok_k and b in ok_b for k, b in self.action_table])
        ks = sorted({k for k, _ in self.action_table})
        bits = sorted({b for _, b in self.action_table})
        return np.array([k in ok_k for k in ks] + [b in ok_b for b in bits])

    def _check_shapes(self) -> None:
        dim = self.obs_dim
        if self.normalize and (self._mean.shape != (dim,) or self._std.shape != (dim,)):
            raise BundleError(
                f"{self.path / NPZ_FILE}: normalisation stats do not have {dim} values"
            )
        for i, (W, b) in enumerate(zip(self._W, self._b, strict=True)):
            if W.ndim != 2 or W.shape[0] != dim or b.shape != (W.shape[1],):
                raise BundleError(
                    f"{self.path / NPZ_FILE}: layer {i} has shape {W.shape}/{b.shape}, "
                    f"expected ({dim}, n)/(n,)"
                )
            dim = W.shape[1]
        if dim != int(self._offsets[-1]):
            raise BundleError(
                f"{self.path / NPZ_FILE}: network outputs {dim} values, the action space needs "
                f"{int(self._offsets[-1])}"
            )

    @classmethod
    def load(
        cls, path: str | os.PathLike, backend: str = "numpy", verify: bool = True
    ) -> Controller:
        """Load and verify a bundle folder (checksums, schema version, sizes, shapes, finite
        weights). Each file is read once, checked against its sha256 and parsed from those
        bytes; ``verify=False`` skips the checksums (never the limits)."""
        path = Path(path)
        manifest = read_manifest(path, verify=False)
        npz = _read_file(path, manifest, NPZ_FILE, verify)
        weights = read_npz(
            npz,
            BundleError,
            str(path / NPZ_FILE),
            max_file_bytes=MAX_FILE_BYTES,
            max_members=MAX_NPZ_MEMBERS,
            max_member_bytes=MAX_NPZ_MEMBER_BYTES,
            max_total_bytes=MAX_NPZ_TOTAL_BYTES,
            kinds="iuf",
        )
        for name, arr in weights.items():
            if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
                raise BundleError(f"{path / NPZ_FILE}: array {name!r} holds NaN or infinite values")
        onnx = None
        if backend == "onnx":
            onnx = _read_file(path, manifest, ONNX_FILE, verify)
        elif verify and ONNX_FILE in (manifest.get("files") or {}):
            _read_file(path, manifest, ONNX_FILE, verify)  # a bundle is verified whole
        try:
            return cls(manifest, weights, path, backend, onnx)
        except BundleError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError) as exc:
            raise BundleError(f"{path}: malformed manifest ({str(exc)[:200]!r})") from None

    # -- decisions ----------------------------------------------------------------------------
    def decide(self, obs: np.ndarray, mask: np.ndarray | None = None) -> tuple[int, int]:
        """The mode ``(k, bits)`` for one observation.

        ``mask`` (maskable runs only): valid actions in MaskablePPO's format; by default the
        modes the bundle's scenario allows.
        """
        return self.action_table[self.flat_action(obs, mask)]

    def flat_action(self, obs: np.ndarray, mask: np.ndarray | None = None) -> int:
        """Flat action index (k-major) for one observation."""
        if self._session is not None:
            return int(
                self.act_batch(
                    np.asarray(obs, np.float32)[None],
                    None if mask is None else np.asarray(mask)[None],
                )[0]
            )
        h = self._x32
        if self.normalize:
            x = self._x64  # float64 like VecNormalize, then rounded to float32 like SB3
            np.subtract(obs, self._mean, out=x)
            np.divide(x, self._std, out=x)
            np.minimum(x, self._hi, out=x)  # = np.clip, at a third of its call overhead
            np.maximum(x, self._lo, out=x)
            h[...] = x
        else:
            h[...] = obs
        for W, b, act, out in self._fast:
            np.dot(h, W, out=out)
            np.add(out, b, out=out)
            if act is not None:
                act(out)
            h = out
        if mask is None:
            mask = self.default_mask
        if mask is not None:
            np.copyto(self._logits, HUGE_NEG, where=~np.asarray(mask, dtype=bool))
        a = 0
        for seg, stride in zip(self._segments, self.strides, strict=True):
            a += self._choose(seg) * stride
        return a

    def _choose(self, seg: np.ndarray) -> int:
        """Index SB3 picks in one action dimension (fast path; exact emulation on near-ties)."""
        vals = seg.tolist()
        best = max(vals)
        i = vals.index(best)
        if self._categorical and len(vals) > 1:
            vals.sort()
            if best - vals[-2] < TIE_TOL:
                i = int(categorical_mode(seg[None])[0])
        return i

    def logits_batch(self, obs: np.ndarray) -> np.ndarray:
        """Network outputs (logits or Q-values) for a batch ``(N, obs_dim)``, chosen backend."""
        x = np.asarray(obs, dtype=np.float32).reshape(-1, self.obs_dim)
        if self._session is not None:
            return self._session.run(["logits"], self._feeds(x, None))[0]
        if self.normalize:
            x = np.clip((x - self._mean) / self._std, -self._clip, self._clip)
        h = x.astype(np.float32)
        for W, b, act in zip(self._W, self._b, self._acts, strict=True):
            h = h @ W + b
            if act is not None:
                act(h)
        return h

    def act_batch(self, obs: np.ndarray, masks: np.ndarray | None = None) -> np.ndarray:
        """Flat action indices ``(N,)`` for a batch, with the chosen backend."""
        obs = np.asarray(obs, dtype=np.float32).reshape(-1, self.obs_dim)
        if self._session is not None:
            actions = self._session.run(["action"], self._feeds(obs, masks))[0]
        else:
            logits = self.logits_batch(obs)
            if masks is None:
                masks = self.default_mask
            if masks is not None:
                masks = np.broadcast_to(np.asarray(masks, bool), logits.shape)
                logits = np.where(masks, logits, HUGE_NEG)
            mode = categorical_mode if self._categorical else _argmax_rows
            actions = np.stack(
                [
                    mode(logits[:, a:b])
                    for a, b in zip(self._offsets[:-1], self._offsets[1:], strict=True)
                ],
                axis=1,
            )
        return self.flat_index(actions)

    def flat_index(self, actions: np.ndarray) -> np.ndarray:
        """Per-dimension actions ``(N, dims)`` (or ``(N,)`` for Discrete) -> flat indices."""
        a = np.asarray(actions, dtype=np.int64).reshape(-1, len(self.nvec))
        return a @ np.asarray(self.strides, dtype=np.int64)

    def env_action(self, flat: int) -> int | np.ndarray:
        """A flat index as the env's action (``[ki, bi]`` for MultiDiscrete)."""
        if self.kind == "discrete":
            return int(flat)
        return np.array(np.unravel_index(int(flat), self.nvec), dtype=np.int64)

    def _feeds(self, obs: np.ndarray, masks: np.ndarray | None) -> dict[str, np.ndarray]:
        feeds = {"obs": obs}
        if self.maskable:
            n_out = int(self._offsets[-1])
            m = masks if masks is not None else self.default_mask
            m = np.ones(n_out, bool) if m is None else np.asarray(m, dtype=bool)
            feeds["action_mask"] = np.ascontiguousarray(np.broadcast_to(m, (len(obs), n_out)))
        return feeds

    def __repr__(self) -> str:
        return (
            f"Controller({str(self.path)!r}, algo={self.manifest.get('algo')}, "
            f"actions={len(self.action_table)}, backend={self.backend!r})"
        )


def _read_file(path: Path, manifest: dict[str, Any], name: str, verify: bool) -> bytes:
    """The bytes of a bundle file the manifest lists (sha256-checked when ``verify``)."""
    if verify:
        return read_verified(path, manifest, name)
    files = manifest.get("files")
    if not isinstance(files, dict) or name not in files:
        raise BundleError(f"{path / name}: not listed in the manifest; refusing to load it")
    return read_bytes(path / name, MAX_FILE_BYTES, BundleError)


def _onnx_session(path: Path, model: bytes):
    """An onnxruntime session of the (verified) ONNX bytes ``model`` read from ``path``."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise BundleError("backend 'onnx' needs onnxruntime: pip install onnxruntime") from exc
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types
        raise BundleError(f"{path}: onnxruntime cannot load it ({exc})") from exc
