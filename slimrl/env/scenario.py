"""Scenarios: which traces, model and device profiles, edge load, deadline and reward (YAML).

``load_scenario(name_or_path, overrides)`` reads a scenario, applies overrides (a mapping whose
keys may be dotted paths, e.g. ``{"reward.energy": 0.1}``), validates every field and returns a
frozen :class:`Scenario`. Errors name the file and the field path, e.g.
``envs/x.yaml: reward.miss_penalty: expected a number >= 0, got 'abc'``.
``envs/README.md`` documents the schema field by field.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from slimrl.env.edge import EdgeLoadSpec, LoadState
from slimrl.errors import ProfileError, ScenarioError
from slimrl.paths import ROOT, resolve_scenario
from slimrl.profiles import DeviceProfile, ModelProfile


@dataclass(frozen=True)
class TracesConfig:
    path: Path
    pattern: str = "*"
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)
    scale: float = 1.0
    resolution_ms: float = 100.0
    column: str = "DL_bitrate"


@dataclass(frozen=True)
class ModelConfig:
    profile: Path
    per_sample: bool = True


@dataclass(frozen=True)
class DeviceConfig:
    profile: Path


@dataclass(frozen=True)
class ServiceConfig:
    """Edge decoder/tail time: lognormal from median and p90, or per mode from the model profile."""

    median_ms: float | None = None
    p90_ms: float | None = None
    from_model: str | None = None
    p90_over_median: float | None = None


@dataclass(frozen=True)
class EdgeConfig:
    service: ServiceConfig
    load: EdgeLoadSpec | None = None


@dataclass(frozen=True)
class LinkConfig:
    base_delay_ms: float = 0.0


@dataclass(frozen=True)
class ArrivalConfig:
    mode: str = "closed"
    fps: float | None = None


@dataclass(frozen=True)
class RewardConfig:
    accuracy: float = 1.0
    miss_penalty: float = 1.0
    energy: float = 0.0


@dataclass(frozen=True)
class ObservationConfig:
    history: int = 4
    max_mbps: float = 1000.0
    max_time_s: float = 10.0


@dataclass(frozen=True)
class ModesConfig:
    k: tuple[int, ...]
    bits: tuple[int, ...]


@dataclass(frozen=True)
class Scenario:
    """A validated scenario. Paths are absolute; the profiles are loaded."""

    name: str
    description: str
    path: Path | None
    traces: TracesConfig
    model: ModelConfig
    device: DeviceConfig
    edge: EdgeConfig
    link: LinkConfig
    arrival: ArrivalConfig
    deadline_ms: float
    reward: RewardConfig
    episode_length: int
    observation: ObservationConfig
    modes: ModesConfig
    model_profile: ModelProfile = field(compare=False, repr=False, default=None)
    device_profile: DeviceProfile = field(compare=False, repr=False, default=None)

    def to_dict(self) -> dict[str, Any]:
        """The resolved configuration (every default filled in), YAML-ready.

        Paths under the slimrl root are written relative to it, so saved runs and bundles move
        between machines; other paths are absolute.

        ``load_scenario`` accepts the result (saved as a YAML file or as a mapping) unchanged.
        """
        svc = {k: v for k, v in asdict(self.edge.service).items() if v is not None}
        load = None
        if self.edge.load is not None:
            sp = self.edge.load
            load = {
                "states": {
                    s.name: {"rate_per_s": s.rate_per_s, "dwell_s": s.dwell_s} for s in sp.states
                },
                "job": {"median_ms": sp.job_median_ms, "p90_ms": sp.job_p90_ms},
                "realisations": sp.realisations,
                "duration_s": sp.duration_s,
                "resolution_ms": sp.resolution_ms,
                "seed": sp.seed,
            }
        arrival: dict[str, Any] = {"mode": self.arrival.mode}
        if self.arrival.fps is not None:
            arrival["fps"] = self.arrival.fps
        tr = self.traces
        return {
            "name": self.name,
            "description": self.description,
            "traces": {
                "path": _portable(tr.path),
                "pattern": tr.pattern,
                "fractions": list(tr.fractions),
                "scale": tr.scale,
                "resolution_ms": tr.resolution_ms,
                "column": tr.column,
            },
            "model": {
                "profile": _portable(self.model.profile),
                "per_sample": self.model.per_sample,
            },
            "device": {"profile": _portable(self.device.profile)},
            "edge": {"service": svc, "load": load},
            "link": {"base_delay_ms": self.link.base_delay_ms},
            "arrival": arrival,
            "deadline_ms": self.deadline_ms,
            "reward": asdict(self.reward),
            "episode_length": self.episode_length,
            "observation": asdict(self.observation),
            "modes": {"k": list(self.modes.k), "bits": list(self.modes.bits)},
        }

    def with_overrides(self, overrides: Mapping[str, Any] | None) -> Scenario:
        """A new scenario with ``overrides`` applied (validated like a file)."""
        if not overrides:
            return self
        where = _display(self.path) if self.path else f"scenario {self.name!r}"
        base = self.path.parent if self.path else Path.cwd()
        sc = scenario_from_dict(self.to_dict(), base, where, overrides, default_name=self.name)
        return _replace(sc, path=self.path)


# ---------------------------------------------------------------------------------------------
# loading


def _portable(path: Path) -> str:
    """``path`` relative to the slimrl root when it lies under it (shipped data), else absolute."""
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def load_scenario(
    name_or_path: str | os.PathLike | Scenario | Mapping[str, Any],
    overrides: Mapping[str, Any] | None = None,
) -> Scenario:
    """Load a shipped scenario by name (``"default"``), a YAML path, a mapping or a Scenario."""
    if isinstance(name_or_path, Scenario):
        return name_or_path.with_overrides(overrides)
    if isinstance(name_or_path, Mapping):
        return scenario_from_dict(name_or_path, Path.cwd(), "scenario", overrides)
    path = resolve_scenario(name_or_path)
    where = _display(path)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"{where}: cannot read ({exc})") from exc
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{where}: not valid YAML ({exc})".replace("\n", " ")) from exc
    if data is None:
        data = {}
    sc = scenario_from_dict(data, path.parent, where, overrides, default_name=path.stem)
    return _replace(sc, path=path)


def parse_set_args(items: Iterable[str] | None) -> dict[str, Any]:
    """``["reward.energy=0.1", "deadline_ms=600"]`` -> ``{"reward.energy": 0.1, ...}``.

    Values are parsed as YAML scalars (``600`` -> int, ``0.1`` -> float, ``null``, ``[1, 2]``).
    """
    out: dict[str, Any] = {}
    for item in items or ():
        key, sep, raw = str(item).partition("=")
        key = key.strip()
        if not sep or not key:
            raise ScenarioError(f"--set {item!r}: expected key=value (e.g. reward.energy=0.1)")
        if any(not part for part in key.split(".")):
            raise ScenarioError(f"--set {item!r}: bad field path {key!r}")
        try:
            out[key] = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            raise ScenarioError(f"--set {item!r}: cannot parse value {raw!r}") from None
    return out


def apply_overrides(
    data: Mapping[str, Any], overrides: Mapping[str, Any] | None, where: str = "scenario"
) -> tuple[dict[str, Any], set[str]]:
    """Deep-merge ``overrides`` (dotted keys or nested mappings) into a copy of ``data``.

    Returns the merged mapping and the set of overridden field paths.
    """
    out = copy.deepcopy(dict(data)) if data else {}
    touched: set[str] = set()

    def put(target: dict, path: list[str], value: Any) -> None:
        cur = target
        for i, part in enumerate(path[:-1]):
            nxt = cur.get(part)
            if nxt is None:
                nxt = cur[part] = {}
            elif not isinstance(nxt, dict):
                dotted = ".".join(path[: i + 1])
                raise ScenarioError(
                    f"{where}: override {'.'.join(path)}: {dotted} is not a mapping (it is {nxt!r})"
                )
            cur = nxt
        last = path[-1]
        if isinstance(value, Mapping) and isinstance(cur.get(last), dict):
            for k, v in value.items():
                put(cur[last], [str(k)], v)
                touched.add(".".join([*path, str(k)]))
        else:
            cur[last] = copy.deepcopy(value)
        touched.add(".".join(path))

    for key, value in (overrides or {}).items():
        parts = str(key).split(".")
        if any(not p for p in parts):
            raise ScenarioError(f"{where}: override {key!r}: bad field path")
        put(out, parts, value)
    return out, touched


# ---------------------------------------------------------------------------------------------
# validation

_TOP = {
    "name",
    "description",
    "traces",
    "model",
    "device",
    "edge",
    "link",
    "arrival",
    "deadline_ms",
    "reward",
    "episode_length",
    "observation",
    "modes",
}


class _Checker:
    """Field-path-aware validation helpers that raise ``ScenarioError``."""

    def __init__(self, where: str, touched: set[str]) -> None:
        self.where = where
        self.touched = touched

    def error(self, path: str, msg: str) -> ScenarioError:
        tag = " (override)" if path in self.touched else ""
        return ScenarioError(f"{self.where}: {path}{tag}: {msg}")

    def mapping(
        self, value: Any, path: str, known: Iterable[str], required: Iterable[str] = ()
    ) -> dict[str, Any]:
        known = list(known)
        if value is None:
            value = {}
        if not isinstance(value, Mapping):
            label = path or "top level"
            raise ScenarioError(
                f"{self.where}: {label}: expected a mapping with fields {', '.join(known)}, "
                f"got {value!r}"
            )
        for key in value:
            if key not in known:
                sub = f"{path}.{key}" if path else str(key)
                raise self.error(sub, f"unknown field (known: {', '.join(known)})")
        for key in required:
            if value.get(key) is None:
                sub = f"{path}.{key}" if path else key
                raise self.error(sub, "missing (required)")
        return dict(value)

    def number(
        self,
        value: Any,
        path: str,
        *,
        gt: float | None = None,
        ge: float | None = None,
        le: float | None = None,
        integer: bool = False,
    ) -> Any:
        kind = "an integer" if integer else "a number"
        bounds = []
        if gt is not None:
            bounds.append(f"> {gt:g}")
        if ge is not None:
            bounds.append(f">= {ge:g}")
        if le is not None:
            bounds.append(f"<= {le:g}")
        expect = f"expected {kind}" + (f" {' and '.join(bounds)}" if bounds else "")
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if ok and integer and not (isinstance(value, int) or float(value).is_integer()):
            ok = False
        if ok and not math.isfinite(value):
            ok = False
        if (
            not ok
            or (gt is not None and not value > gt)
            or (ge is not None and not value >= ge)
            or (le is not None and not value <= le)
        ):
            raise self.error(path, f"{expect}, got {value!r}")
        return int(value) if integer else float(value)

    def string(self, value: Any, path: str, choices: Iterable[str] | None = None) -> str:
        if not isinstance(value, str) or not value:
            raise self.error(path, f"expected a non-empty string, got {value!r}")
        if choices is not None and value not in choices:
            raise self.error(path, f"expected one of {', '.join(choices)}, got {value!r}")
        return value

    def boolean(self, value: Any, path: str) -> bool:
        if not isinstance(value, bool):
            raise self.error(path, f"expected true or false, got {value!r}")
        return value

    def file(self, value: Any, path: str, base: Path, kind: str = "file") -> Path:
        s = self.string(value, path)
        p = Path(s).expanduser()
        if not p.is_absolute():
            # shipped data is written relative to the slimrl root (see Scenario.to_dict)
            p = next((q for q in (base / p, ROOT / p) if q.exists()), base / p).resolve()
        ok = p.is_dir() or p.is_file() if kind == "path" else p.is_file()
        if not ok:
            raise self.error(path, f"{kind} not found: {p}")
        return p


def scenario_from_dict(
    data: Mapping[str, Any],
    base_dir: Path,
    where: str = "scenario",
    overrides: Mapping[str, Any] | None = None,
    default_name: str = "scenario",
) -> Scenario:
    """Validate a scenario mapping; relative paths are resolved against ``base_dir``."""
    if not isinstance(data, Mapping):
        raise ScenarioError(f"{where}: expected a mapping of scenario fields, got {data!r}")
    data, touched = apply_overrides(data, overrides, where)
    c = _Checker(where, touched)
    base_dir = Path(base_dir)
    d = c.mapping(data, "", _TOP, required=("traces", "model", "device", "edge", "deadline_ms"))

    name = c.string(d.get("name", default_name), "name")
    description = d.get("description", "")
    if not isinstance(description, str):
        raise c.error("description", f"expected a string, got {description!r}")

    traces = _traces(c, d["traces"], base_dir)

    m = c.mapping(d["model"], "model", ("profile", "per_sample"), required=("profile",))
    model_cfg = ModelConfig(
        profile=c.file(m["profile"], "model.profile", base_dir),
        per_sample=c.boolean(m.get("per_sample", True), "model.per_sample"),
    )
    try:
        model_profile = ModelProfile.load(model_cfg.profile, samples=model_cfg.per_sample)
    except ProfileError as exc:
        raise c.error("model.profile", str(exc)) from None

    dv = c.mapping(d["device"], "device", ("profile",), required=("profile",))
    device_cfg = DeviceConfig(profile=c.file(dv["profile"], "device.profile", base_dir))
    try:
        device_profile = DeviceProfile.load(device_cfg.profile)
        device_profile.compute_table(model_profile)
    except ProfileError as exc:
        raise c.error("device.profile", str(exc)) from None

    edge = _edge(c, d["edge"], model_profile)

    lk = c.mapping(d.get("link"), "link", ("base_delay_ms",))
    link = LinkConfig(c.number(lk.get("base_delay_ms", 0.0), "link.base_delay_ms", ge=0))

    ar = c.mapping(d.get("arrival"), "arrival", ("mode", "fps"))
    mode = c.string(ar.get("mode", "closed"), "arrival.mode", ("closed", "periodic"))
    fps = ar.get("fps")
    if mode == "periodic":
        if fps is None:
            raise c.error("arrival.fps", "missing (required when arrival.mode is periodic)")
        fps = c.number(fps, "arrival.fps", gt=0)
    elif fps is not None:
        fps = c.number(fps, "arrival.fps", gt=0)  # kept, unused in closed loop
    arrival = ArrivalConfig(mode=mode, fps=fps)

    deadline = c.number(d["deadline_ms"], "deadline_ms", gt=0)

    rw = c.mapping(d.get("reward"), "reward", ("accuracy", "miss_penalty", "energy"))
    reward = RewardConfig(
        accuracy=c.number(rw.get("accuracy", 1.0), "reward.accuracy", ge=0),
        miss_penalty=c.number(rw.get("miss_penalty", 1.0), "reward.miss_penalty", ge=0),
        energy=c.number(rw.get("energy", 0.0), "reward.energy", ge=0),
    )

    episode_length = c.number(d.get("episode_length", 500), "episode_length", ge=1, integer=True)

    ob = c.mapping(d.get("observation"), "observation", ("history", "max_mbps", "max_time_s"))
    observation = ObservationConfig(
        history=c.number(ob.get("history", 4), "observation.history", ge=1, le=64, integer=True),
        max_mbps=c.number(ob.get("max_mbps", 1000.0), "observation.max_mbps", gt=0),
        max_time_s=c.number(ob.get("max_time_s", 10.0), "observation.max_time_s", gt=0),
    )

    md = c.mapping(d.get("modes"), "modes", ("k", "bits"))
    modes = ModesConfig(
        k=_mode_list(c, md.get("k"), "modes.k", model_profile.ks),
        bits=_mode_list(c, md.get("bits"), "modes.bits", model_profile.bits),
    )

    return Scenario(
        name=name,
        description=description,
        path=None,
        traces=traces,
        model=model_cfg,
        device=device_cfg,
        edge=edge,
        link=link,
        arrival=arrival,
        deadline_ms=deadline,
        reward=reward,
        episode_length=episode_length,
        observation=observation,
        modes=modes,
        model_profile=model_profile,
        device_profile=device_profile,
    )


def _traces(c: _Checker, value: Any, base_dir: Path) -> TracesConfig:
    t = c.mapping(
        value,
        "traces",
        ("path", "pattern", "fractions", "scale", "resolution_ms", "column"),
        required=("path",),
    )
    path = c.file(t["path"], "traces.path", base_dir, kind="path")
    pattern = c.string(t.get("pattern", "*"), "traces.pattern")
    if path.is_dir() and not any(p.is_file() for p in path.rglob(pattern)):
        raise c.error("traces.pattern", f"no file in {path} matches {pattern!r}")
    fr = t.get("fractions", [0.7, 0.15, 0.15])
    if not isinstance(fr, list | tuple) or len(fr) != 3:
        raise c.error("traces.fractions", f"expected 3 numbers (train, val, test), got {fr!r}")
    fractions = tuple(c.number(x, f"traces.fractions[{i}]", ge=0, le=1) for i, x in enumerate(fr))
    if abs(sum(fractions) - 1.0) > 1e-6:
        raise c.error("traces.fractions", f"expected fractions that sum to 1, got {fr!r}")
    return TracesConfig(
        path=path,
        pattern=pattern,
        fractions=fractions,  # type: ignore[arg-type]
        scale=c.number(t.get("scale", 1.0), "traces.scale", gt=0),
        resolution_ms=c.number(t.get("resolution_ms", 100.0), "traces.resolution_ms", gt=0),
        column=c.string(t.get("column", "DL_bitrate"), "traces.column"),
    )


def _edge(c: _Checker, value: Any, model: ModelProfile) -> EdgeConfig:
    e = c.mapping(value, "edge", ("service", "load"), required=("service",))
    s = c.mapping(
        e["service"], "edge.service", ("median_ms", "p90_ms", "from_model", "p90_over_median")
    )
    if "from_model" in s:
        for key in ("median_ms", "p90_ms"):
            if key in s:
                raise c.error(f"edge.service.{key}", "not allowed with edge.service.from_model")
        col = c.string(s["from_model"], "edge.service.from_model")
        if col not in model.columns:
            have = ", ".join(model.edge_columns) or "none"
            raise c.error(
                "edge.service.from_model",
                f"the model profile has no column {col!r} (edge columns: {have})",
            )
        ratio = c.number(s.get("p90_over_median", 1.0), "edge.service.p90_over_median", ge=1)
        if (model.columns[col] <= 0).any():
            raise c.error("edge.service.from_model", f"column {col!r} must be > 0 in every mode")
        service = ServiceConfig(from_model=col, p90_over_median=ratio)
    else:
        for key in ("median_ms", "p90_ms"):
            if s.get(key) is None:
                raise c.error(f"edge.service.{key}", "missing (or give edge.service.from_model)")
        if "p90_over_median" in s:
            raise c.error("edge.service.p90_over_median", "only valid with from_model")
        med = c.number(s["median_ms"], "edge.service.median_ms", gt=0)
        p90 = c.number(s["p90_ms"], "edge.service.p90_ms", ge=med)
        service = ServiceConfig(median_ms=med, p90_ms=p90)

    load = None
    if e.get("load") is not None:
        ld = c.mapping(
            e["load"],
            "edge.load",
            ("states", "job", "realisations", "duration_s", "resolution_ms", "seed"),
            required=("states",),
        )
        st = ld["states"]
        if not isinstance(st, Mapping) or not st:
            raise c.error(
                "edge.load.states",
                f"expected a mapping name -> {{rate_per_s, dwell_s}} with at least one state, "
                f"got {st!r}",
            )
        states = []
        for nm, spec in st.items():
            p = f"edge.load.states.{nm}"
            sp = c.mapping(spec, p, ("rate_per_s", "dwell_s"), required=("rate_per_s", "dwell_s"))
            states.append(
                LoadState(
                    name=str(nm),
                    rate_per_s=c.number(sp["rate_per_s"], f"{p}.rate_per_s", ge=0),
                    dwell_s=c.number(sp["dwell_s"], f"{p}.dwell_s", gt=0),
                )
            )
        if ld.get("job") is None:
            if service.median_ms is None:
                raise c.error("edge.load.job", "missing (required when the service is from_model)")
            job = (service.median_ms, service.p90_ms)
        else:
            jb = c.mapping(
                ld["job"],
                "edge.load.job",
                ("median_ms", "p90_ms"),
                required=("median_ms", "p90_ms"),
            )
            jm = c.number(jb["median_ms"], "edge.load.job.median_ms", gt=0)
            job = (jm, c.number(jb["p90_ms"], "edge.load.job.p90_ms", ge=jm))
        load = EdgeLoadSpec(
            states=tuple(states),
            job_median_ms=job[0],
            job_p90_ms=job[1],
            realisations=c.number(
                ld.get("realisations", 16), "edge.load.realisations", ge=1, le=1024, integer=True
            ),
            duration_s=c.number(ld.get("duration_s", 600.0), "edge.load.duration_s", gt=0),
            resolution_ms=c.number(ld.get("resolution_ms", 10.0), "edge.load.resolution_ms", gt=0),
            seed=c.number(ld.get("seed", 0), "edge.load.seed", ge=0, integer=True),
        )
        if load.n_slots * load.realisations > 50_000_000:
            raise c.error(
                "edge.load",
                "realisations x duration_s / resolution_ms is too large (> 50 million slots)",
            )
    return EdgeConfig(service=service, load=load)


def _mode_list(c: _Checker, value: Any, path: str, allowed: tuple[int, ...]) -> tuple[int, ...]:
    if value is None:
        return tuple(allowed)
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list | tuple) or not value:
        raise c.error(
            path, f"expected a non-empty list of values from {list(allowed)}, got {value!r}"
        )
    out = []
    for i, v in enumerate(value):
        if isinstance(v, bool) or not isinstance(v, int) or v not in allowed:
            raise c.error(
                f"{path}[{i}]", f"expected one of {list(allowed)} (the model profile's), got {v!r}"
            )
        out.append(v)
    return tuple(sorted(set(out)))


def _replace(sc: Scenario, **changes: Any) -> Scenario:
    from dataclasses import replace

    return replace(sc, **changes)


def _display(path: Path | None) -> str:
    if path is None:
        return "scenario"
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)
