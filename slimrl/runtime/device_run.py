"""``slimrl device run``: wire a policy, the split model, a trace and an edge into a DeviceLoop.

SIGINT and SIGTERM stop a run cleanly: the frame in flight is dropped, the frames run so far are
written to the log and its meta file (``interrupted`` names the signal) and
:class:`RunInterrupted` is raised (the CLI exits 128 + signal number: 130 or 143). A run in which
no frame got an answer raises :class:`RunFailed` once its log is written.
"""

from __future__ import annotations

import contextlib
import datetime
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from slimrl.bundle.format import read_manifest
from slimrl.errors import BundleError, PolicyError, SlimrlError
from slimrl.paths import AGENTS_DIR
from slimrl.runtime.device import (
    Decide,
    DeviceLoop,
    FrameRecord,
    record_to_json,
    summarize,
    write_log,
)
from slimrl.runtime.edge_client import EdgeClient, EdgeUnavailable, parse_address
from slimrl.runtime.uplink import TraceUplink

#: the shipped Fashion-MNIST reference policy bundle (written by the training room)
REFERENCE_BUNDLE = AGENTS_DIR / "reference"
#: the reference trained for the real loop's scenario (fmnist-iot: this model, an IoT link)
DEVICE_REFERENCE = "ppo-fmnist-iot"
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class RunInterrupted(SlimrlError):
    """A device run stopped by a signal; its log holds the frames run until then."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.signum = int(signum)

    @property
    def exit_code(self) -> int:
        """The shell's convention for a process ended by a signal: 128 + its number."""
        return 128 + self.signum


class RunFailed(SlimrlError):
    """A device run in which no frame got an answer; its log holds the failed frames."""


class _Interrupt(BaseException):  # not an Exception: no handler on the way may swallow it
    pass


class _SignalStop:
    """While installed, SIGINT/SIGTERM are recorded; while ``armed``, the first also raises
    :class:`_Interrupt` (once) so that blocking sends, receives and sleeps stop at once."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.armed = False

    def _handler(self, signum: int, frame: Any) -> None:
        if self.signum is None:
            self.signum = signum
        if self.armed:
            self.armed = False
            raise _Interrupt

    @contextlib.contextmanager
    def installed(self) -> Iterator[_SignalStop]:
        if threading.current_thread() is not threading.main_thread():
            yield self  # signal handlers can only be set from the main thread
            return
        old = {sig: signal.signal(sig, self._handler) for sig in STOP_SIGNALS}
        try:
            yield self
        finally:
            for sig, handler in old.items():
                signal.signal(sig, handler)


@dataclass
class DeviceRunConfig:
    edge: str
    trace: Path
    frames: int
    out: Path
    deadline_ms: float | None = None
    bundle: Path | None = None
    policy: str | None = None
    scenario: Any = None  # name, path or mapping; heuristics only (default: the bundle's)
    seed: int = 0
    model: Path | None = None
    data: Path | None = None
    start_s: float = 0.0
    trace_scale: float | None = None  # default: the scenario's traces.scale (1 without one)
    base_delay_ms: float = 0.0
    connect_timeout_s: float = 2.0
    io_timeout_s: float = 10.0
    max_outage_s: float = 60.0
    threads: int | None = 1


@dataclass
class PolicyChoice:
    decide: Decide
    name: str
    table: list[tuple[int, int]]
    builder: Any  # ObservationBuilder
    deadline_ms: float
    bundle: Path | None = None


def _bundle_dir(path: Path | None) -> Path:
    """``path``, or the shipped reference bundle: ``agents/reference`` itself, the bundle of the
    real loop's scenario (``agents/reference/ppo-fmnist-iot/bundle``), or the one bundle folder
    under it (``agents/reference/<name>[/bundle]``)."""
    if path is not None:
        path = Path(path)
        if not (path / "manifest.json").is_file():
            hint = ""
            if any(path.glob("*.zip")) or any(path.glob("*/*.zip")):
                hint = f"; it looks like a training run: `slimrl export {path} --out DIR` first"
            raise BundleError(f"{path}: not a policy bundle (no manifest.json){hint}")
        return path
    root = REFERENCE_BUNDLE
    if (root / "manifest.json").is_file():
        return root
    device = root / DEVICE_REFERENCE / "bundle"
    if (device / "manifest.json").is_file():  # the real loop's own scenario
        return device
    found = sorted(
        {m.parent for pat in ("*/manifest.json", "*/bundle/manifest.json") for m in root.glob(pat)}
    )
    if len(found) == 1:
        return found[0]
    if found:
        names = ", ".join(str(f.relative_to(root)) for f in found)
        raise BundleError(f"several reference bundles in {root} ({names}); pass --bundle DIR")
    raise BundleError(
        f"the reference policy bundle is absent (no manifest.json in {root} or its subfolders; it "
        "ships with the trained reference agent); export one with `slimrl export RUN_DIR --out "
        "DIR` and pass --bundle DIR, or pass --policy NAME for a heuristic"
    )


def builder_from_manifest(manifest: dict[str, Any], deadline_ms: float) -> Any:
    """The env's ObservationBuilder with the bundle's parameters, checked against its names."""
    from slimrl.env.observation import ObservationBuilder

    o = manifest["observation"]
    try:
        builder = ObservationBuilder.from_spec(o, deadline_ms)
    except KeyError as exc:
        raise BundleError(f"bundle manifest: observation field {exc} missing") from None
    except ValueError as exc:
        raise BundleError(f"bundle manifest: {exc}; re-export the run with this version") from None
    if list(builder.names) != list(o["names"]):
        raise BundleError(
            f"bundle observations {o['names']} differ from this slimrl's layout "
            f"{list(builder.names)}; re-export the run with this version"
        )
    return builder


def resolve_policy(cfg: DeviceRunConfig, trace: Any) -> PolicyChoice:
    """The decision function: an exported bundle (default) or a heuristic by name."""
    from slimrl.bundle.controller import Controller

    name = cfg.policy
    if name is None or (Path(name) / "manifest.json").is_file():
        path = _bundle_dir(Path(name) if name is not None else cfg.bundle)
        ctrl = Controller.load(path)
        deadline = cfg.deadline_ms
        if deadline is None:
            deadline = float(ctrl.manifest["observation"]["deadline_ms"])
        builder = builder_from_manifest(ctrl.manifest, deadline)
        return PolicyChoice(
            lambda obs, info: ctrl.decide(obs),
            str(path),
            ctrl.action_table,
            builder,
            deadline,
            path,
        )
    return _heuristic(name, cfg, trace)


def _heuristic(name: str, cfg: DeviceRunConfig, trace: Any) -> PolicyChoice:
    from slimrl.env.dynamics import World
    from slimrl.env.observation import ObservationBuilder
    from slimrl.policies import make_policy
    from slimrl.scenario import load_scenario
    from slimrl.traces import TraceSet

    if name == "oracle":
        raise PolicyError("policy 'oracle' needs to know the future; it exists only in simulation")
    scenario = cfg.scenario
    if scenario is None:
        try:
            bundle = _bundle_dir(cfg.bundle)
            scenario = read_manifest(bundle, verify=False).get("scenario")
        except BundleError:
            scenario = None
        if scenario is None:
            raise PolicyError(
                f"policy {name!r}: heuristics need the scenario's model/device figures; pass "
                "--env SCENARIO (or a --bundle whose manifest names its scenario)"
            )
    overrides = {"deadline_ms": cfg.deadline_ms} if cfg.deadline_ms is not None else None
    sc = load_scenario(scenario, overrides)
    world = World(sc, TraceSet([trace]))
    policy = make_policy(name, world, seed=cfg.seed)
    table = list(world.action_table)
    builder = ObservationBuilder.from_world(world)
    policy.reset(1)

    def decide(obs: np.ndarray, info: dict[str, float]) -> tuple[int, int]:
        return table[policy.act(obs, info)]

    return PolicyChoice(decide, name, table, builder, sc.deadline_ms)


def _scenario_trace_scale(cfg: DeviceRunConfig) -> float:
    """The capacity scale of the scenario the run mirrors (``--env``, else the bundle's)."""
    from slimrl.scenario import load_scenario

    if cfg.scenario is not None:
        return float(load_scenario(cfg.scenario).traces.scale)
    try:
        manifest = read_manifest(_bundle_dir(cfg.bundle), verify=False)
    except BundleError:
        return 1.0
    return float(((manifest.get("scenario") or {}).get("traces") or {}).get("scale", 1.0))


def run_device(cfg: DeviceRunConfig, progress: bool = True) -> tuple[list[FrameRecord], dict]:
    """Run ``cfg.frames`` frames; write the log (and its meta) atomically; return both.

    The log is written however the run ends; then an edge given up on raises
    :class:`EdgeUnavailable`, a signal :class:`RunInterrupted`, and a run without a single
    answered frame :class:`RunFailed` (so does ``frames < 1``, before anything runs). The test
    images come from ``cfg.data``, else where :func:`slimrl.model.data.locate` finds the test
    split (the copy shipped with slimrl when nothing else is installed).
    """
    from slimrl.model.data import load_fashion_mnist
    from slimrl.runtime.split_model import check_modes, device_encoder, load_split_model
    from slimrl.traces import load_trace

    if isinstance(cfg.frames, bool) or not isinstance(cfg.frames, int) or cfg.frames < 1:
        raise RunFailed(f"--frames: expected an integer >= 1, got {cfg.frames!r}")
    scale = cfg.trace_scale if cfg.trace_scale is not None else _scenario_trace_scale(cfg)
    trace = load_trace(cfg.trace).scaled(scale)
    choice = resolve_policy(cfg, trace)
    model = load_split_model(cfg.model, cfg.threads)
    check_modes(choice.table, model, f"policy {choice.name}")
    data = load_fashion_mnist("test", cfg.data)
    order = np.random.default_rng(cfg.seed).permutation(len(data))
    host, port = parse_address(cfg.edge)
    client = EdgeClient(
        host, port, connect_timeout_s=cfg.connect_timeout_s, io_timeout_s=cfg.io_timeout_s
    )
    uplink = TraceUplink(trace, start_s=cfg.start_s)
    loop = DeviceLoop(
        choice.decide,
        device_encoder(model, data.images),
        data.labels,
        client,
        uplink,
        choice.builder,
        choice.deadline_ms,
        base_delay_ms=cfg.base_delay_ms,
        order=order,
        max_outage_s=cfg.max_outage_s,
    )
    started = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    part = Path(cfg.out).with_name(Path(cfg.out).name + ".part")
    part.parent.mkdir(parents=True, exist_ok=True)
    aborted = None
    stop = _SignalStop()
    with stop.installed():
        try:
            try:
                stop.armed = True
                if stop.signum is not None:  # arrived before the handler was armed
                    raise _Interrupt
                with open(part, "w") as stream:
                    _run_with_progress(loop, cfg.frames, stream, progress)
            except EdgeUnavailable as exc:
                aborted = exc
            finally:
                stop.armed = False
                client.close()
        except _Interrupt:
            pass  # the frame in flight is dropped; the ones before it are in loop.records
        records = loop.records
        interrupted = signal.Signals(stop.signum).name if stop.signum is not None else None
        meta = _meta(cfg, choice, scale, started, records, aborted, interrupted)
        write_log(cfg.out, records, meta)  # a second signal now is only recorded
        part.unlink(missing_ok=True)
    n = len(records)
    if stop.signum is not None:
        raise RunInterrupted(
            f"interrupted by {interrupted} after {n} of {cfg.frames} frames; the log is in "
            f"{cfg.out}",
            stop.signum,
        )
    if aborted is not None:
        raise EdgeUnavailable(f"{aborted}; the {n} frames run are in {cfg.out}")
    if n and all(r.error is not None for r in records):
        raise RunFailed(
            f"none of the {n} frames got an answer from the edge (last error: "
            f"{records[-1].error}); the log is in {cfg.out}"
        )
    return records, meta


def _meta(
    cfg: DeviceRunConfig,
    choice: PolicyChoice,
    scale: float,
    started: str,
    records: list[FrameRecord],
    aborted: BaseException | None,
    interrupted: str | None,
) -> dict[str, Any]:
    return {
        "started": started,
        "policy": choice.name,
        "bundle": str(choice.bundle) if choice.bundle else None,
        "scenario": str(cfg.scenario) if isinstance(cfg.scenario, str | Path) else None,
        "edge": cfg.edge,
        "trace": str(Path(cfg.trace).resolve()),
        "trace_resolution_ms": 100,
        "trace_scale": scale,
        "start_s": cfg.start_s,
        "deadline_ms": choice.deadline_ms,
        "frames": cfg.frames,
        "seed": cfg.seed,
        "base_delay_ms": cfg.base_delay_ms,
        "model": str(cfg.model) if cfg.model else "shipped",
        "frames_run": len(records),
        "summary": summarize(records),
        "aborted": str(aborted) if aborted else None,
        "interrupted": interrupted,
    }


def _run_with_progress(loop: DeviceLoop, frames: int, stream, progress: bool) -> None:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    def write(rec: FrameRecord) -> None:
        stream.write(record_to_json(rec) + "\n")
        stream.flush()

    if not progress:
        loop.run(frames, write)
        return
    columns = (
        TextColumn("device"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
    )
    with Progress(*columns, console=Console(stderr=True)) as bar:
        task = bar.add_task("frames", total=frames, status="")
        on_time = 0

        def step(rec: FrameRecord) -> None:
            nonlocal on_time
            write(rec)
            on_time += rec.on_time
            n = rec.frame + 1
            status = f"on time {on_time / n:.1%}  k={rec.k} bits={rec.bits}  {rec.e2e_ms:.1f} ms"
            if rec.error:
                status += "  [red]edge error[/]"
            bar.update(task, advance=1, status=status)

        loop.run(frames, step)
