"""Device profiles (YAML): compute time per mode, compute power and a radio energy model.

Schema (every number a float unless noted)::

    name: rpi4                       # optional, defaults to the file stem
    description: "..."               # optional
    compute:
      mean_ms: {1: 100, 2: 173}      # explicit: one number, per k, or per k then per bits
      # or
      from_model: compute_ms_rpi4    # a column of the model profile ...
      scale: 1.0                     # ... times this factor
      jitter_ms: 3                   # std of Gaussian jitter: one number or per k (default 0)
      power_w: 3.7                   # device power while computing, net of idle
    radio:                           # P_send = base_w + alpha_w_per_mbps * throughput_mbps
      base_w: 1.288
      alpha_w_per_mbps: 0.438
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from slimrl.errors import ProfileError
from slimrl.profiles.model_profile import ModelProfile
from slimrl.validate import read_yaml

_TOP = {"name", "description", "compute", "radio"}
_COMPUTE = {"mean_ms", "from_model", "scale", "jitter_ms", "power_w"}
_RADIO = {"base_w", "alpha_w_per_mbps"}


@dataclass(frozen=True)
class DeviceProfile:
    """Compute and radio characteristics of the device that runs the encoder."""

    name: str
    compute_power_w: float
    radio_base_w: float
    radio_alpha_w_per_mbps: float
    mean_ms: Any = None  # float | {k: float} | {k: {bits: float}}
    from_model: str | None = None
    scale: float = 1.0
    jitter_ms: Any = 0.0  # float | {k: float}
    description: str = ""
    path: Path | None = None

    def compute_table(self, model: ModelProfile) -> tuple[np.ndarray, np.ndarray]:
        """Mean and jitter (std) of the compute time in ms for every mode: two (K, B) arrays."""
        where = str(self.path) if self.path else f"device profile {self.name!r}"
        K, B = model.shape
        if self.from_model is not None:
            try:
                mean = model.column(self.from_model) * self.scale
            except ProfileError as exc:
                raise ProfileError(f"{where}: compute.from_model: {exc}") from None
        else:
            mean = np.zeros((K, B))
            for ki, k in enumerate(model.ks):
                for bi, b in enumerate(model.bits):
                    mean[ki, bi] = _per_mode(self.mean_ms, k, b, where, "compute.mean_ms")
        jitter = np.zeros((K, B))
        for ki, k in enumerate(model.ks):
            for bi, b in enumerate(model.bits):
                jitter[ki, bi] = _per_mode(self.jitter_ms, k, b, where, "compute.jitter_ms")
        return np.array(mean, dtype=np.float64), jitter

    def radio_power_w(self, throughput_mbps: float | np.ndarray) -> float | np.ndarray:
        """Radio power while sending at ``throughput_mbps``."""
        return self.radio_base_w + self.radio_alpha_w_per_mbps * throughput_mbps

    def to_dict(self) -> dict[str, Any]:
        compute: dict[str, Any] = {"jitter_ms": self.jitter_ms, "power_w": self.compute_power_w}
        if self.from_model is not None:
            compute.update(from_model=self.from_model, scale=self.scale)
        else:
            compute["mean_ms"] = self.mean_ms
        return {
            "name": self.name,
            "description": self.description,
            "compute": compute,
            "radio": {"base_w": self.radio_base_w, "alpha_w_per_mbps": self.radio_alpha_w_per_mbps},
        }

    @classmethod
    def load(cls, path: str | os.PathLike) -> DeviceProfile:
        """Read and validate a device profile YAML."""
        path = Path(path)
        if not path.is_file():
            raise ProfileError(f"{path}: device profile not found")
        data = read_yaml(path, ProfileError)
        return cls.from_dict(data, where=str(path), path=path.resolve(), default_name=path.stem)

    @classmethod
    def from_dict(
        cls,
        data: Any,
        where: str = "device profile",
        path: Path | None = None,
        default_name: str = "device",
    ) -> DeviceProfile:
        """Validate a parsed device profile mapping."""
        d = _mapping(data, where, "", _TOP)
        comp = _mapping(d.get("compute"), where, "compute", _COMPUTE, required=True)
        radio = _mapping(d.get("radio"), where, "radio", _RADIO, required=True)
        has_mean, has_col = "mean_ms" in comp, "from_model" in comp
        if has_mean == has_col:
            raise ProfileError(
                f"{where}: compute: give exactly one of mean_ms (explicit times) or from_model "
                "(a compute_ms_<device> column of the model profile)"
            )
        if has_mean and "scale" in comp:
            raise ProfileError(f"{where}: compute.scale: only valid with compute.from_model")
        from_model = None
        if has_col:
            from_model = comp["from_model"]
            if not isinstance(from_model, str) or not from_model:
                raise ProfileError(
                    f"{where}: compute.from_model: expected a column name, got {from_model!r}"
                )
        mean = _times(comp["mean_ms"], where, "compute.mean_ms", depth=2) if has_mean else None
        jitter = _times(comp.get("jitter_ms", 0.0), where, "compute.jitter_ms", depth=1)
        name = d.get("name", default_name)
        if not isinstance(name, str):
            raise ProfileError(f"{where}: name: expected a string, got {name!r}")
        desc = d.get("description", "")
        if not isinstance(desc, str):
            raise ProfileError(f"{where}: description: expected a string, got {desc!r}")
        return cls(
            name=name,
            description=desc,
            compute_power_w=_number(comp.get("power_w"), where, "compute.power_w", required=True),
            radio_base_w=_number(radio.get("base_w"), where, "radio.base_w", required=True),
            radio_alpha_w_per_mbps=_number(
                radio.get("alpha_w_per_mbps"), where, "radio.alpha_w_per_mbps", required=True
            ),
            mean_ms=mean,
            from_model=from_model,
            scale=_number(comp.get("scale", 1.0), where, "compute.scale", positive=True),
            jitter_ms=jitter,
            path=path,
        )


def _mapping(
    value: Any, where: str, field: str, allowed: set[str], required: bool = False
) -> dict[str, Any]:
    label = f"{where}: {field}" if field else where
    if value is None and required:
        raise ProfileError(
            f"{label}: missing (expected a mapping with {', '.join(sorted(allowed))})"
        )
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise ProfileError(f"{label}: expected a mapping, got {value!r}")
    unknown = [k for k in value if k not in allowed]
    if unknown:
        pre = f"{field}." if field else ""
        raise ProfileError(
            f"{where}: {pre}{unknown[0]}: unknown field (known: {', '.join(sorted(allowed))})"
        )
    return value


def _number(
    value: Any, where: str, field: str, required: bool = False, positive: bool = False
) -> float:
    if value is None and required:
        raise ProfileError(f"{where}: {field}: missing (expected a number >= 0)")
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (positive and value == 0):
        bound = "> 0" if positive else ">= 0"
        raise ProfileError(f"{where}: {field}: expected a number {bound}, got {value!r}")
    return float(value)


def _times(value: Any, where: str, field: str, depth: int) -> Any:
    """A number, or a mapping int -> number (depth 1), or int -> (number | int -> number)."""
    if not isinstance(value, dict):
        return _number(value, where, field)
    out: dict[int, Any] = {}
    for key, sub in value.items():
        if not isinstance(key, int) or isinstance(key, bool):
            raise ProfileError(f"{where}: {field}: expected integer keys (k), got {key!r}")
        if depth > 1 and isinstance(sub, dict):
            out[key] = _times(sub, where, f"{field}.{key}", depth - 1)
        else:
            out[key] = _number(sub, where, f"{field}.{key}")
    return out


def _per_mode(spec: Any, k: int, bits: int, where: str, field: str) -> float:
    if not isinstance(spec, dict):
        return float(spec)
    if k not in spec:
        raise ProfileError(f"{where}: {field}: no value for k={k} (have k in {sorted(spec)})")
    sub = spec[k]
    if not isinstance(sub, dict):
        return float(sub)
    if bits not in sub:
        raise ProfileError(
            f"{where}: {field}.{k}: no value for bits={bits} (have bits in {sorted(sub)})"
        )
    return float(sub[bits])
