"""The scenario schema: every field, its default and its check, declared once.

Each section is a frozen dataclass whose fields carry their check (:mod:`slimrl.validate`);
:meth:`slimrl.validate.Fields.build` reads a mapping into it and takes every default from here.
Cross-field rules live in each section's ``validated`` classmethod. ``envs/README.md`` documents
the fields for users.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from slimrl.errors import ProfileError, ScenarioError
from slimrl.paths import portable, resolve_path
from slimrl.profiles import DeviceProfile, ModelProfile
from slimrl.scenario.samples import SampleFile, read_samples
from slimrl.traces.limits import MIN_RESOLUTION_MS
from slimrl.validate import (
    Boolean,
    Custom,
    Fields,
    File,
    Nested,
    Number,
    String,
    Text,
    read_yaml,
    short,
    spec,
)

# z-score of the 90th percentile of a standard normal
Z90 = 1.2815515655446004
#: longest episode (s of trace time): a day
MAX_EPISODE_S = 86_400.0
#: most backlog slots an edge-load bank may hold (realisations x duration / resolution)
MAX_LOAD_SLOTS = 50_000_000
#: most states of the edge-load chain
MAX_LOAD_STATES = 64
#: most other-tenant requests a bank may expect (realisations x duration x highest rate)
MAX_LOAD_ARRIVALS = 10_000_000
#: most state switches a bank may expect (realisations x duration / shortest dwell)
MAX_LOAD_SWITCHES = 1_000_000
#: longest job or service time (ms): an hour
MAX_JOB_MS = 3_600_000.0


def lognormal_params(median_ms: float, p90_ms: float) -> tuple[float, float]:
    """(mu, sigma) of a lognormal with this median and 90th percentile (sigma 0 if equal)."""
    if median_ms <= 0:
        raise ValueError(f"median_ms must be > 0, got {median_ms}")
    if p90_ms < median_ms:
        raise ValueError(f"p90_ms ({p90_ms}) must be >= median_ms ({median_ms})")
    return math.log(median_ms), math.log(p90_ms / median_ms) / Z90


# -- traces -------------------------------------------------------------------------------------
def _fractions(value: Any, path: str, f: Fields) -> tuple[float, float, float]:
    if not isinstance(value, list | tuple) or len(value) != 3:
        raise f.error(path, f"expected 3 numbers (train, val, test), got {short(value)}")
    fr = tuple(f.number(x, f"{path}[{i}]", ge=0, le=1) for i, x in enumerate(value))
    if abs(sum(fr) - 1.0) > 1e-6:
        raise f.error(path, f"expected fractions that sum to 1, got {short(value)}")
    return fr  # type: ignore[return-value]


@dataclass(frozen=True)
class DatasetConfig:
    """One dataset of a trace corpus: a folder (or file) and the files it contributes."""

    name: str
    path: Path
    pattern: str = "*"


@dataclass(frozen=True, kw_only=True)
class _DatasetFields:
    path: Path = spec(check=File("path"))
    pattern: str = spec("*", String())


def _datasets(value: Any, path: str, f: Fields) -> tuple[DatasetConfig, ...]:
    if not isinstance(value, Mapping) or not value:
        raise f.error(
            path, f"expected a mapping name -> {{path, pattern}} with at least one dataset, "
            f"got {short(value)}"
        )  # fmt: skip
    out = []
    for name, body in value.items():
        if not isinstance(name, str) or not name or "/" in name or ":" in name:
            raise f.error(path, f"dataset names must be plain words, got {short(name)}")
        d = f.build(_DatasetFields, body, f"{path}.{name}")
        _check_pattern(d.path, d.pattern, f, f"{path}.{name}.pattern")
        out.append(DatasetConfig(name, d.path, d.pattern))
    return tuple(out)


def _names(value: Any, path: str, f: Fields) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise f.error(path, f"expected a list of dataset names, got {short(value)}")
    return tuple(value)


def _check_pattern(folder: Path, pattern: str, f: Fields, path: str) -> None:
    if folder.is_dir() and not any(p.is_file() for p in folder.rglob(pattern)):
        raise f.error(path, f"no file in {folder} matches {pattern!r}")


@dataclass(frozen=True, kw_only=True)
class TracesConfig:
    """One trace folder (``path``, ``pattern``) or a corpus of named datasets (``sets``), of
    which ``holdout`` ones are kept out of training and validation (test only)."""

    path: Path | None = spec(None, File("path"))
    pattern: str = spec("*", String())
    sets: tuple[DatasetConfig, ...] | None = spec(None, Custom(_datasets))
    holdout: tuple[str, ...] = spec((), Custom(_names))
    sample: str = spec("dataset", String(("dataset", "file")))
    fractions: tuple[float, float, float] = spec((0.7, 0.15, 0.15), Custom(_fractions))
    scale: float = spec(1.0, Number(gt=0))
    resolution_ms: float = spec(100.0, Number(ge=MIN_RESOLUTION_MS))
    column: str = spec("DL_bitrate", String())

    @classmethod
    def validated(cls, obj: TracesConfig, f: Fields, path: str) -> TracesConfig:
        if (obj.path is None) == (obj.sets is None):
            raise f.error(path, "expected either path (one trace folder) or sets (a corpus)")
        if obj.path is not None:
            _check_pattern(obj.path, obj.pattern, f, f"{path}.pattern")
            if obj.holdout:
                raise f.error(f"{path}.holdout", "only valid with sets")
        else:
            names = [d.name for d in obj.sets]
            for h in obj.holdout:
                if h not in names:
                    raise f.error(f"{path}.holdout", f"no dataset {h!r} (datasets: {names})")
            if len(set(obj.holdout)) == len(names):
                raise f.error(f"{path}.holdout", "every dataset is held out: nothing to train on")
        return obj

    @property
    def datasets(self) -> tuple[DatasetConfig, ...]:
        """The corpus: the ``sets``, or the one folder as a dataset named after it."""
        if self.sets is not None:
            return self.sets
        return (DatasetConfig(self.path.stem or "traces", self.path, self.pattern),)


# -- measured samples and time distributions ---------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class SamplesConfig:
    """Measured samples of a time (ms): a CSV column or a file of numbers
    (:mod:`slimrl.scenario.samples`); the samples are read once, on validation."""

    path: Path = spec(check=File())
    column: str | None = spec(None, String())
    data: SampleFile | None = field(default=None, compare=False, repr=False)

    @classmethod
    def validated(cls, obj: SamplesConfig, f: Fields, path: str) -> SamplesConfig:
        try:
            data = read_samples(obj.path, obj.column)
        except ScenarioError as exc:
            raise f.error(path, str(exc)) from None
        return dataclasses.replace(obj, data=data)

    def per_mode(self, model: ModelProfile, f: Fields, path: str) -> list:
        """Sorted samples per mode (k-major), or a field error naming the modes without any."""
        try:
            return self.data.per_mode(model.ks, model.bits)
        except ScenarioError as exc:
            raise f.error(path, str(exc)) from None


def _samples(value: Any, path: str, f: Fields) -> SamplesConfig:
    """``samples: FILE`` or ``samples: {path: FILE, column: NAME}``."""
    if isinstance(value, str):
        value = {"path": value}
    return f.build(SamplesConfig, value, path)


@dataclass(frozen=True, kw_only=True)
class TimeDistribution:
    """A time (ms) drawn per frame: ``fixed_ms``, a lognormal through ``median_ms`` and
    ``p90_ms``, or measured ``samples`` (drawn from their empirical distribution)."""

    fixed_ms: float | None = spec(None, Number(ge=0))
    median_ms: float | None = spec(None, Number(gt=0))
    p90_ms: float | None = spec(None, Number(gt=0))
    samples: SamplesConfig | None = spec(None, Custom(_samples))

    @classmethod
    def validated(cls, obj: TimeDistribution, f: Fields, path: str) -> TimeDistribution:
        forms = [
            name
            for name, given in (
                ("fixed_ms", obj.fixed_ms is not None),
                ("median_ms/p90_ms", obj.median_ms is not None or obj.p90_ms is not None),
                ("samples", obj.samples is not None),
            )
            if given
        ]
        if len(forms) != 1:
            raise f.error(
                path,
                "expected exactly one of fixed_ms, median_ms with p90_ms, or samples"
                + (f" (got {', '.join(forms)})" if forms else ""),
            )
        if forms[0] == "median_ms/p90_ms":
            for key in ("median_ms", "p90_ms"):
                if getattr(obj, key) is None:
                    raise f.error(f"{path}.{key}", "missing (median_ms and p90_ms go together)")
            f.number(obj.p90_ms, f"{path}.p90_ms", ge=obj.median_ms)
        return obj


# -- model and device profiles ------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    profile: Path = spec(check=File())
    per_sample: bool = spec(True, Boolean())

    @classmethod
    def validated(cls, obj: ModelConfig, f: Fields, path: str) -> ModelConfig:
        try:
            f.context["model_profile"] = ModelProfile.load(obj.profile, samples=obj.per_sample)
        except ProfileError as exc:
            raise f.error(f"{path}.profile", str(exc)) from None
        return obj


@dataclass(frozen=True, kw_only=True)
class DeviceConfig:
    """The device profile; ``compute_samples``: measured compute times instead of its figures
    (per mode with ``k``/``bits`` columns, else pooled)."""

    profile: Path = spec(check=File())
    compute_samples: SamplesConfig | None = spec(None, Custom(_samples))

    @classmethod
    def validated(cls, obj: DeviceConfig, f: Fields, path: str) -> DeviceConfig:
        try:
            device = DeviceProfile.load(obj.profile)
            device.compute_table(f.context["model_profile"])
        except ProfileError as exc:
            raise f.error(f"{path}.profile", str(exc)) from None
        f.context["device_profile"] = device
        if obj.compute_samples is not None:
            obj.compute_samples.per_mode(f.context["model_profile"], f, f"{path}.compute_samples")
        return obj


# -- edge -----------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class ServiceConfig:
    """Edge decoder/tail time: lognormal from median and p90, per mode from the model profile,
    or measured ``samples`` (per mode with ``k``/``bits`` columns, else pooled)."""

    median_ms: float | None = spec(None, Number(gt=0, le=MAX_JOB_MS))
    p90_ms: float | None = spec(None, Number(gt=0, le=MAX_JOB_MS))
    from_model: str | None = spec(None, String())
    p90_over_median: float | None = spec(None, Number(ge=1))
    samples: SamplesConfig | None = spec(None, Custom(_samples))

    @classmethod
    def validated(cls, obj: ServiceConfig, f: Fields, path: str) -> ServiceConfig:
        model: ModelProfile = f.context["model_profile"]
        if obj.samples is not None:
            for key in ("median_ms", "p90_ms", "from_model", "p90_over_median"):
                if getattr(obj, key) is not None:
                    raise f.error(f"{path}.{key}", f"not allowed with {path}.samples")
            obj.samples.per_mode(model, f, f"{path}.samples")
            return obj
        if obj.from_model is not None:
            for key in ("median_ms", "p90_ms"):
                if getattr(obj, key) is not None:
                    raise f.error(f"{path}.{key}", f"not allowed with {path}.from_model")
            col = obj.from_model
            if col not in model.columns:
                have = ", ".join(model.edge_columns) or "none"
                raise f.error(
                    f"{path}.from_model",
                    f"the model profile has no column {col!r} (edge columns: {have})",
                )
            if (model.columns[col] <= 0).any():
                raise f.error(f"{path}.from_model", f"column {col!r} must be > 0 in every mode")
            ratio = 1.0 if obj.p90_over_median is None else obj.p90_over_median
            return dataclasses.replace(obj, p90_over_median=ratio)
        for key in ("median_ms", "p90_ms"):
            if getattr(obj, key) is None:
                raise f.error(f"{path}.{key}", f"missing (or give {path}.from_model or .samples)")
        if obj.p90_over_median is not None:
            raise f.error(f"{path}.p90_over_median", "only valid with from_model")
        f.number(obj.p90_ms, f"{path}.p90_ms", ge=obj.median_ms)
        return obj


@dataclass(frozen=True)
class LoadState:
    """One state of the modulating chain: arrival rate (requests/s) and mean dwell time (s)."""

    name: str
    rate_per_s: float
    dwell_s: float


@dataclass(frozen=True, kw_only=True)
class _StateFields:
    rate_per_s: float = spec(check=Number(ge=0))
    dwell_s: float = spec(check=Number(gt=0))


def _states(value: Any, path: str, f: Fields) -> tuple[LoadState, ...]:
    if not isinstance(value, Mapping) or not value:
        raise f.error(
            path,
            "expected a mapping name -> {rate_per_s, dwell_s} with at least one state, "
            f"got {short(value)}",
        )
    if len(value) > MAX_LOAD_STATES:
        raise f.error(path, f"{len(value)} states; at most {MAX_LOAD_STATES}")
    out = []
    for name, body in value.items():
        st = f.build(_StateFields, body, f"{path}.{name}")
        out.append(LoadState(str(name), st.rate_per_s, st.dwell_s))
    return tuple(out)


@dataclass(frozen=True, kw_only=True)
class JobSize:
    """Lognormal work (ms) each request of another tenant brings."""

    median_ms: float = spec(check=Number(gt=0, le=MAX_JOB_MS))
    p90_ms: float = spec(check=Number(gt=0, le=MAX_JOB_MS))

    @classmethod
    def validated(cls, obj: JobSize, f: Fields, path: str) -> JobSize:
        f.number(obj.p90_ms, f"{path}.p90_ms", ge=obj.median_ms)
        return obj


@dataclass(frozen=True, kw_only=True)
class EdgeLoadSpec:
    """Everything that determines a bank of other tenants' backlog realisations (a cache key)."""

    states: tuple[LoadState, ...] = spec(check=Custom(_states))
    job: JobSize | None = spec(None, Nested(JobSize))
    realisations: int = spec(16, Number(ge=1, le=1024, integer=True))
    duration_s: float = spec(600.0, Number(gt=0, le=MAX_EPISODE_S))
    resolution_ms: float = spec(10.0, Number(ge=MIN_RESOLUTION_MS))
    seed: int = spec(0, Number(ge=0, integer=True))

    @classmethod
    def validated(cls, obj: EdgeLoadSpec, f: Fields, path: str) -> EdgeLoadSpec:
        if obj.n_slots * obj.realisations > MAX_LOAD_SLOTS:
            raise f.error(
                path,
                "realisations x duration_s / resolution_ms is too large "
                f"(> {MAX_LOAD_SLOTS // 1_000_000} million slots)",
            )
        for st in obj.states:
            where = f"{path}.states.{st.name}"
            if st.dwell_s * 1000.0 < obj.resolution_ms:
                f.number(st.dwell_s, f"{where}.dwell_s", ge=obj.resolution_ms / 1000.0)
            if obj.realisations * obj.duration_s / st.dwell_s > MAX_LOAD_SWITCHES:
                raise f.error(
                    f"{where}.dwell_s",
                    f"realisations x duration_s / dwell_s expects more than {MAX_LOAD_SWITCHES:,} "
                    f"state switches; expected a longer dwell, got {short(st.dwell_s)}",
                )
            if obj.realisations * obj.duration_s * st.rate_per_s > MAX_LOAD_ARRIVALS:
                raise f.error(
                    f"{where}.rate_per_s",
                    f"realisations x duration_s x rate_per_s expects more than "
                    f"{MAX_LOAD_ARRIVALS:,} requests; got {short(st.rate_per_s)}",
                )
        return obj

    @property
    def n_slots(self) -> int:
        return max(1, int(round(self.duration_s * 1000.0 / self.resolution_ms)))

    @property
    def utilisation(self) -> float:
        """Long-run mean load offered by the other tenants (work per unit time)."""
        mu, sigma = lognormal_params(self.job.median_ms, self.job.p90_ms)
        mean_job_s = math.exp(mu + 0.5 * sigma * sigma) / 1000.0
        w = sum(s.dwell_s for s in self.states)
        return sum(s.dwell_s * s.rate_per_s for s in self.states) / w * mean_job_s


@dataclass(frozen=True, kw_only=True)
class EdgeConfig:
    service: ServiceConfig = spec(check=Nested(ServiceConfig))
    load: EdgeLoadSpec | None = field(
        default=None, metadata={"check": Nested(EdgeLoadSpec), "keep_none": True}
    )

    @classmethod
    def validated(cls, obj: EdgeConfig, f: Fields, path: str) -> EdgeConfig:
        load = obj.load
        if load is None or load.job is not None:
            return obj
        svc = obj.service
        if svc.median_ms is None:
            raise f.error(
                f"{path}.load.job", "missing (required when the service is from_model or samples)"
            )
        job = JobSize(median_ms=svc.median_ms, p90_ms=svc.p90_ms)
        return dataclasses.replace(obj, load=dataclasses.replace(load, job=job))


# -- link, arrivals, reward, observation, modes -------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class _LinkProfile:
    """A link profile file (``envs/profiles/links/*.yaml``): the latencies of a kind of link."""

    name: str = spec("link", String())
    description: str = spec("", Text())
    latency: TimeDistribution | None = spec(None, Nested(TimeDistribution))
    answer_latency: TimeDistribution | None = spec(None, Nested(TimeDistribution))


@dataclass(frozen=True, kw_only=True)
class LinkConfig:
    """The path between device and edge: a base one-way delay paid each way, a per-transfer
    ``latency`` added to every uplink transfer (it precedes the payload's bytes on the trace) and
    an ``answer_latency`` added to the answer's way back; ``profile`` (a link profile file) gives
    the latencies the scenario does not set itself."""

    profile: Path | None = spec(None, File())
    base_delay_ms: float = spec(0.0, Number(ge=0))
    latency: TimeDistribution | None = spec(None, Nested(TimeDistribution))
    answer_latency: TimeDistribution | None = spec(None, Nested(TimeDistribution))

    @classmethod
    def validated(cls, obj: LinkConfig, f: Fields, path: str) -> LinkConfig:
        if obj.profile is None:
            return obj
        where = str(obj.profile)
        lf = Fields(where, ScenarioError, base=obj.profile.parent, resolve=resolve_path)
        try:
            prof = lf.build(_LinkProfile, read_yaml(obj.profile, ScenarioError, where), "")
        except ScenarioError as exc:
            raise f.error(f"{path}.profile", str(exc)) from None
        return dataclasses.replace(
            obj,
            latency=obj.latency if obj.latency is not None else prof.latency,
            answer_latency=(
                obj.answer_latency if obj.answer_latency is not None else prof.answer_latency
            ),
        )


@dataclass(frozen=True, kw_only=True)
class ArrivalConfig:
    mode: str = spec("closed", String(("closed", "periodic")))
    fps: float | None = spec(None, Number(gt=0))

    @classmethod
    def validated(cls, obj: ArrivalConfig, f: Fields, path: str) -> ArrivalConfig:
        if obj.mode == "periodic" and obj.fps is None:
            raise f.error(f"{path}.fps", f"missing (required when {path}.mode is periodic)")
        return obj


@dataclass(frozen=True, kw_only=True)
class RewardConfig:
    accuracy: float = spec(1.0, Number(ge=0))
    miss_penalty: float = spec(1.0, Number(ge=0))
    energy: float = spec(0.0, Number(ge=0))


@dataclass(frozen=True, kw_only=True)
class ObservationConfig:
    history: int = spec(4, Number(ge=1, le=64, integer=True))


def _mode_list(attr: str, value: Any, path: str, f: Fields) -> tuple[int, ...]:
    allowed = getattr(f.context["model_profile"], attr)
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list | tuple) or not value:
        raise f.error(
            path, f"expected a non-empty list of values from {list(allowed)}, got {short(value)}"
        )
    out = []
    for i, v in enumerate(value):
        if isinstance(v, bool) or not isinstance(v, int) or v not in allowed:
            raise f.error(
                f"{path}[{i}]",
                f"expected one of {list(allowed)} (the model profile's), got {short(v)}",
            )
        out.append(v)
    return tuple(sorted(set(out)))


@dataclass(frozen=True, kw_only=True)
class ModesConfig:
    """Allowed modes (None: every mode of the model profile)."""

    k: tuple[int, ...] | None = spec(None, Custom(partial(_mode_list, "ks")))
    bits: tuple[int, ...] | None = spec(None, Custom(partial(_mode_list, "bits")))

    @classmethod
    def validated(cls, obj: ModesConfig, f: Fields, path: str) -> ModesConfig:
        model: ModelProfile = f.context["model_profile"]
        return ModesConfig(
            k=tuple(model.ks) if obj.k is None else obj.k,
            bits=tuple(model.bits) if obj.bits is None else obj.bits,
        )


def _range(lo_min: float, positive: bool = False):
    def check(value: Any, path: str, f: Fields) -> tuple[float, float]:
        if not isinstance(value, list | tuple) or len(value) != 2:
            raise f.error(path, f"expected [low, high], got {short(value)}")
        kw = {"gt": 0} if positive else {"ge": lo_min}
        lo = f.number(value[0], f"{path}[0]", **kw)
        hi = f.number(value[1], f"{path}[1]", ge=lo)
        return lo, hi

    return Custom(check)


def _levels(value: Any, path: str, f: Fields) -> tuple[float, ...]:
    if not isinstance(value, list | tuple) or not value or len(value) > 16:
        raise f.error(path, f"expected a list of 1 to 16 multipliers, got {short(value)}")
    return tuple(f.number(v, f"{path}[{i}]", gt=0) for i, v in enumerate(value))


@dataclass(frozen=True, kw_only=True)
class RandomizeConfig:
    """Domain randomisation, drawn per training episode (evaluation keeps the scenario's values
    unless asked): capacity scale (log-uniform), base one-way delay (uniform), a multiplier of the
    device's compute jitter (uniform), and the other tenants' load (one of the given
    multipliers of their arrival rates)."""

    capacity_scale: tuple[float, float] | None = spec(None, _range(0, positive=True))
    base_delay_ms: tuple[float, float] | None = spec(None, _range(0))
    compute_jitter: tuple[float, float] | None = spec(None, _range(0))
    edge_load: tuple[float, ...] | None = spec(None, Custom(_levels))


# -- the scenario -------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class Scenario:
    """A validated scenario: absolute paths, every default filled in, profiles loaded."""

    name: str = spec("scenario", String())
    description: str = spec("", Text())
    traces: TracesConfig = spec(check=Nested(TracesConfig))
    model: ModelConfig = spec(check=Nested(ModelConfig))
    device: DeviceConfig = spec(check=Nested(DeviceConfig))
    edge: EdgeConfig = spec(check=Nested(EdgeConfig))
    link: LinkConfig = spec(LinkConfig(), Nested(LinkConfig))
    arrival: ArrivalConfig = spec(ArrivalConfig(), Nested(ArrivalConfig))
    deadline_ms: float = spec(check=Number(gt=0))
    reward: RewardConfig = spec(RewardConfig(), Nested(RewardConfig))
    episode_s: float = spec(120.0, Number(gt=0, le=MAX_EPISODE_S))
    time_grid_ms: float = spec(1.0, Number(ge=0.1, le=1000))
    observation: ObservationConfig = spec(ObservationConfig(), Nested(ObservationConfig))
    modes: ModesConfig = spec(ModesConfig(), Nested(ModesConfig))
    randomize: RandomizeConfig | None = spec(None, Nested(RandomizeConfig))
    #: the YAML file it was read from (None for a mapping)
    path: Path | None = None
    model_profile: ModelProfile = field(compare=False, repr=False, default=None)
    device_profile: DeviceProfile = field(compare=False, repr=False, default=None)

    @classmethod
    def validated(cls, obj: Scenario, f: Fields, path: str) -> Scenario:
        if obj.arrival.mode == "closed" and obj.episode_s * 1000.0 / obj.time_grid_ms > 1e8:
            raise f.error("time_grid_ms", "episode_s / time_grid_ms exceeds 100 million slots")
        return dataclasses.replace(
            obj,
            model_profile=f.context["model_profile"],
            device_profile=f.context["device_profile"],
        )

    def to_dict(self) -> dict[str, Any]:
        """The resolved configuration (every default filled in), YAML-ready.

        Paths under the slimrl root are written relative to it, so saved runs and bundles move
        between machines; other paths are absolute. ``load_scenario`` accepts the result (saved
        as a YAML file or as a mapping) unchanged.
        """
        return _plain(self)

    def sample_files(self) -> dict[str, Path]:
        """Field path -> samples file of every measured distribution (their content counts in
        the scenario's digest)."""
        found = {
            "device.compute_samples": self.device.compute_samples,
            "edge.service.samples": self.edge.service.samples,
        }
        for key in ("latency", "answer_latency"):
            dist = getattr(self.link, key)
            found[f"link.{key}.samples"] = dist.samples if dist is not None else None
        return {k: v.path for k, v in found.items() if v is not None}


def _plain(obj: Any) -> Any:
    """A schema object as plain YAML data: checked fields only, ``None`` fields left out."""
    if isinstance(obj, LoadState):
        return {"rate_per_s": obj.rate_per_s, "dwell_s": obj.dwell_s}
    if isinstance(obj, DatasetConfig):
        return {"path": portable(obj.path), "pattern": obj.pattern}
    if dataclasses.is_dataclass(obj):
        out: dict[str, Any] = {}
        for fd in dataclasses.fields(obj):
            if fd.metadata.get("check") is None:
                continue
            value = getattr(obj, fd.name)
            if value is None and not fd.metadata.get("keep_none"):
                continue
            out[fd.name] = _plain(value)
        return out
    if isinstance(obj, tuple) and obj and isinstance(obj[0], LoadState | DatasetConfig):
        return {s.name: _plain(s) for s in obj}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    if isinstance(obj, Path):
        return portable(obj)
    return obj
