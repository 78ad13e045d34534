"""The device loop: decide a mode, run head + encoder, send over the paced uplink, await the edge.

Closed loop, as in the simulator: the next frame starts when the previous answer is back (or the
request failed). The observation comes from the env's :class:`ObservationBuilder`, fed with the
measurements of the previous frame. A frame whose request fails (edge down, timeout, refused)
is logged as a miss with its ``error``; the loop reconnects with exponential backoff and never
blocks longer than its timeouts; after ``max_outage_s`` without an answer it gives up
(:class:`EdgeUnavailable`).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from slimrl.io import atomic_path
from slimrl.runtime.edge_client import EdgeClient, EdgeRejected, EdgeUnavailable
from slimrl.runtime.uplink import TraceUplink

Decide = Callable[[np.ndarray, dict[str, float]], tuple[int, int]]
"""``(observation, info) -> (k, bits)``; ``info`` holds the last frame's measurements
(``bytes``, ``transfer_ms``, ``compute_ms``, ``e2e_ms``, ``edge_ms``, ``edge_queue_ms``; empty at
the start and after a failed frame), as the env's info does for stateful heuristics."""

Encode = Callable[[int, int, int], bytes]
"""``(image index, k, bits) -> payload``: head + encoder at that mode on the device."""

LOG_FIELDS = (
    "frame", "k", "bits", "bytes", "compute_ms", "transfer_ms", "edge_ms", "edge_queue_ms",
    "e2e_ms", "on_time", "correct", "label", "prediction",
)  # fmt: skip


@dataclass
class FrameRecord:
    """One line of the device log (times in ms; ``t_s`` is the trace time at frame start)."""

    frame: int
    k: int
    bits: int
    bytes: int
    compute_ms: float
    transfer_ms: float | None
    edge_ms: float | None  # queue + compute reported by the edge (the env's edge_ms)
    edge_queue_ms: float | None
    e2e_ms: float
    on_time: bool
    correct: bool
    label: int
    prediction: int | None
    t_s: float
    image: int
    decide_us: float
    edge_compute_ms: float | None = None
    rtt_ms: float | None = None  # last byte sent -> answer received, as the device sees it
    goodput_mbps: float | None = None
    error: str | None = None


@dataclass
class Backoff:
    """Exponential reconnect backoff: ``initial_s``, doubling, at most ``max_s``."""

    initial_s: float = 0.05
    max_s: float = 2.0
    current_s: float = field(default=0.0, init=False)

    def failed(self) -> float:
        self.current_s = min(self.max_s, self.current_s * 2 if self.current_s else self.initial_s)
        return self.current_s

    def reset(self) -> None:
        self.current_s = 0.0


class DeviceLoop:
    """Run frames against one edge; see the module docstring."""

    def __init__(
        self,
        decide: Decide,
        encode: Encode,
        labels: np.ndarray,
        client: EdgeClient,
        uplink: TraceUplink,
        builder: Any,  # slimrl.env.observation.ObservationBuilder
        deadline_ms: float,
        *,
        base_delay_ms: float = 0.0,
        order: np.ndarray | None = None,
        backoff: Backoff | None = None,
        max_outage_s: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.decide = decide
        self.encode = encode
        self.labels = np.asarray(labels)
        self.client = client
        self.uplink = uplink
        self.builder = builder
        self.deadline_ms = float(deadline_ms)
        self.base_delay_s = base_delay_ms / 1e3
        self.order = np.arange(len(self.labels)) if order is None else np.asarray(order)
        self.backoff = backoff or Backoff()
        self.max_outage_s = max_outage_s
        self._last_ok = time.monotonic()
        self._sleep = sleep
        self.records: list[FrameRecord] = []
        self._inv = [0.0] * builder.history  # ms per byte of the last transfers, newest first
        self._count = 0
        self._obs = builder.initial()
        self._info: dict[str, float] = {}

    def observation(self) -> np.ndarray:
        """The observation for the next frame (what the device knows now)."""
        return self._obs

    def run(
        self, frames: int, on_frame: Callable[[FrameRecord], None] | None = None
    ) -> list[FrameRecord]:
        for i in range(frames):
            rec = self.step(i)
            if on_frame is not None:
                on_frame(rec)
        return self.records

    def step(self, i: int) -> FrameRecord:
        """Run frame ``i`` end to end and update the observation."""
        image = int(self.order[i % len(self.order)])
        label = int(self.labels[image])
        t_dec = time.perf_counter()
        k, bits = self.decide(self._obs, self._info)
        t0 = time.perf_counter()
        t_s = self.uplink.trace_time()
        payload = self.encode(image, k, bits)
        t1 = time.perf_counter()
        rec = FrameRecord(
            frame=i,
            k=int(k),
            bits=int(bits),
            bytes=len(payload),
            compute_ms=(t1 - t0) * 1e3,
            transfer_ms=None,
            edge_ms=None,
            edge_queue_ms=None,
            e2e_ms=math.nan,
            on_time=False,
            correct=False,
            label=label,
            prediction=None,
            t_s=t_s,
            image=image,
            decide_us=(t0 - t_dec) * 1e6,
        )
        try:
            if not self.client.connected:
                self.client.connect()
            reply = self.client.request((i + 1) & 0xFFFFFFFF, payload, self.uplink)
        except (EdgeUnavailable, EdgeRejected) as exc:
            rec.error = str(exc)
            rec.e2e_ms = (time.perf_counter() - t0) * 1e3
            self._finish(rec)
            if isinstance(exc, EdgeUnavailable):
                down = time.monotonic() - self._last_ok
                if down > self.max_outage_s:
                    raise EdgeUnavailable(
                        f"no answer from the edge for {down:.0f} s (last error: {exc}); giving up"
                    ) from exc
                self._sleep(self.backoff.failed())
            return rec
        self._last_ok = time.monotonic()
        self.backoff.reset()
        if self.base_delay_s:
            self._sleep(self.base_delay_s)  # the answer's way back
        t2 = time.perf_counter()
        resp = reply.response
        transfer_ms = max(0.0, reply.transfer_ms - self.base_delay_s * 1e3)
        rec.transfer_ms = transfer_ms
        rec.edge_queue_ms = float(resp.queue_ms)
        rec.edge_compute_ms = float(resp.compute_ms)
        rec.edge_ms = float(resp.queue_ms + resp.compute_ms)
        rec.rtt_ms = reply.wait_ms
        rec.e2e_ms = (t2 - t0) * 1e3
        rec.on_time = rec.e2e_ms <= self.deadline_ms
        rec.prediction = int(resp.prediction)
        rec.correct = rec.prediction == label
        tx_s = transfer_ms * 1e-3
        rec.goodput_mbps = len(payload) * 8e-6 / tx_s if tx_s > 0 else None
        self._finish(rec)
        return rec

    def _finish(self, rec: FrameRecord) -> None:
        self._info = (
            {}
            if rec.error is not None
            else {
                "bytes": rec.bytes,
                "transfer_ms": rec.transfer_ms,
                "compute_ms": rec.compute_ms,
                "e2e_ms": rec.e2e_ms,
                "edge_ms": rec.edge_ms,
                "edge_queue_ms": rec.edge_queue_ms,
            }
        )
        if rec.error is None and rec.transfer_ms is not None and rec.bytes > 0:
            self._inv = [rec.transfer_ms / rec.bytes, *self._inv[:-1]]
            self._count += 1
        self._obs = self.builder.build_one(
            self._inv,
            self._count,
            rec.transfer_ms if rec.transfer_ms is not None else 0.0,
            rec.compute_ms or 0.0,
            rec.edge_ms if rec.edge_ms is not None else 0.0,
            rec.edge_queue_ms if rec.edge_queue_ms is not None else 0.0,
            rec.e2e_ms if rec.e2e_ms is not None else 0.0,
            bool(rec.on_time),
            rec.k,
            rec.bits,
        )
        self.records.append(rec)


# -- logs -------------------------------------------------------------------------------------
def record_to_json(rec: FrameRecord) -> str:
    d = asdict(rec)
    for key, v in d.items():
        if isinstance(v, float):
            d[key] = None if not math.isfinite(v) else round(v, 4)
    return json.dumps(d)


def write_log(path: str | os.PathLike, records: list[FrameRecord], meta: dict[str, Any]) -> None:
    """The per-frame JSON-lines log and its ``.meta.json`` sidecar, each written atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text("".join(record_to_json(r) + "\n" for r in records))
    with atomic_path(meta_path(path)) as tmp:
        tmp.write_text(json.dumps(meta, indent=2, default=str))


def meta_path(log: str | os.PathLike) -> Path:
    log = Path(log)
    return log.with_name(log.name + ".meta.json")


def read_log(path: str | os.PathLike) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Frames and meta of a device log (meta is {} when the sidecar is missing)."""
    from slimrl.errors import SlimrlError

    path = Path(path)
    if not path.is_file():
        raise SlimrlError(f"{path}: no such device log")
    frames = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            frames.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise SlimrlError(f"{path}:{n}: not a JSON line ({exc.msg})") from None
    if not frames:
        raise SlimrlError(f"{path}: no frames in the log")
    missing = [k for k in LOG_FIELDS if k not in frames[0]]
    if missing:
        raise SlimrlError(f"{path}:1: missing field(s) {', '.join(missing)}")
    mp = meta_path(path)
    meta = json.loads(mp.read_text()) if mp.is_file() else {}
    return frames, meta


def summarize(records: list[FrameRecord]) -> dict[str, float]:
    """On-time rate, accuracy, miss and error counts, e2e percentiles of a run."""
    n = len(records)
    e2e = np.array([r.e2e_ms for r in records if r.error is None and math.isfinite(r.e2e_ms)])
    return {
        "frames": n,
        "on_time_rate": sum(r.on_time for r in records) / n if n else math.nan,
        "accuracy": sum(r.correct for r in records) / n if n else math.nan,
        "useful_rate": sum(r.correct and r.on_time for r in records) / n if n else math.nan,
        "errors": sum(r.error is not None for r in records),
        "e2e_p50_ms": float(np.percentile(e2e, 50)) if e2e.size else math.nan,
        "e2e_p95_ms": float(np.percentile(e2e, 95)) if e2e.size else math.nan,
        "decide_us_p50": float(np.median([r.decide_us for r in records])) if n else math.nan,
    }
