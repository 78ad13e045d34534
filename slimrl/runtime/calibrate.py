"""Calibrate a scenario from a real run: ``slimrl calibrate device.jsonl --out my-scenario.yaml``.

From a device log (:mod:`slimrl.runtime.device`: per frame its mode, payload bytes, trace time,
compute, transfer, edge and end-to-end times) it fits

- the link: every uplink transfer is ``L + bytes * s_w``, a per-transfer latency ``L`` shared by
  the run and a time per byte ``s_w`` per time window ``w`` (``window_s`` of trace time), by least
  squares over all frames (``L`` needs windows that saw several payload sizes; otherwise give it
  with ``latency_ms``). The capacity of window ``w`` is ``1 / s_w``: the fitted capacity trace
  (canonical CSV, on the log's trace clock). The per-transfer latency's distribution is the
  residuals ``transfer - bytes * s_w`` of the transfers the fit kept (measured samples, mean
  ``L``); a transfer far slower than its window's fit was caught in a fade shorter than the
  window: the trace takes it (its bytes over ``transfer - L`` for its own stretch), not the
  latency;
- the answer's way back: per frame ``e2e - compute - transfer - edge`` (base delays, the answer's
  transfer, framing), measured samples;
- compute and edge times (queue + service, as the edge reported them): measured samples per mode.
  Modes the run never used borrow the samples of the nearest mode it used (same k first), shifted
  (compute) or scaled (edge service) by the base scenario's profile figures of the two modes;

and writes a scenario (``OUT.yaml``) with its capacity trace (``OUT.trace.csv``) and samples
(``OUT.samples.csv``) next to it: the base scenario's model, device, reward, modes and
observation, the log's deadline, an edge serving only this device, no base delay (the answer's
samples hold it), no domain randomisation.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from slimrl.errors import SlimrlError
from slimrl.io import atomic_path, write_text
from slimrl.paths import portable
from slimrl.runtime.device import read_log

#: fewest answered frames a calibration accepts
MIN_FRAMES = 20


@dataclass
class Calibration:
    """What :func:`calibrate` fitted and wrote."""

    scenario_path: Path
    trace_path: Path
    samples_path: Path
    frames: int
    latency_ms: float  # mean per-transfer latency of the uplink
    latency_fitted: bool  # False: given with ``latency_ms``
    answer_ms: float  # mean remainder of the round trip
    capacity_mbps: float  # mean fitted capacity over the run's windows
    windows: int
    modes_measured: int
    modes_filled: int
    residual_ms: float  # std of the per-transfer latency samples
    fades: int  # transfers far slower than their window's fit, put into the trace
    delivery: float | None  # fitted / pacing capacity (median over windows), if the log names one


def _answered(frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    keys = ("compute_ms", "transfer_ms", "edge_ms", "e2e_ms", "t_s")
    out = []
    for f in frames:
        if f.get("error") is not None or int(f.get("bytes") or 0) <= 0:
            continue
        vals = [f.get(k) for k in keys]
        if all(v is not None and math.isfinite(float(v)) for v in vals):
            out.append(f)
    return out


@dataclass
class LinkFit:
    """``transfer = latency + bytes * s_w`` fitted over a run's transfers."""

    latency_ms: float
    windows: np.ndarray  # window indices (time // window_s) that saw transfers
    s: np.ndarray  # ms per byte of each of those windows
    resid: np.ndarray  # transfer - bytes * s_w of every transfer (ms)
    inlier: np.ndarray  # transfers the final fit used (bool)


def fit_link(
    t_send: np.ndarray,
    nbytes: np.ndarray,
    tx_ms: np.ndarray,
    window_s: float,
    latency_ms: float | None = None,
) -> LinkFit:
    """Least squares of ``tx = L + bytes * s_w`` (``latency_ms`` fixes ``L``), in two passes:
    transfers whose residual is beyond 4 robust standard deviations of the first fit (one
    caught in a fade shorter than the window, a stall) are left out of the second."""
    w = np.floor(t_send / window_s).astype(np.int64)
    windows, wi = np.unique(w, return_inverse=True)
    W = windows.size
    fixed = latency_ms is not None
    if not fixed:
        distinct = [np.unique(nbytes[wi == j]).size for j in range(W)]
        if max(distinct) < 2:
            raise SlimrlError(
                "every window of the run used a single payload size, so the per-transfer latency "
                "cannot be told apart from the capacity; pass --latency-ms (e.g. from a link "
                "profile) or calibrate on a run whose policy changes modes (random, paper-ewma)"
            )
    A = np.zeros((tx_ms.size, W + (0 if fixed else 1)))
    A[np.arange(tx_ms.size), wi + (0 if fixed else 1)] = nbytes
    if not fixed:
        A[:, 0] = 1.0
    y = tx_ms - (latency_ms if fixed else 0.0)
    keep = np.ones(tx_ms.size, dtype=bool)
    for _ in range(2):
        sol, *_ = np.linalg.lstsq(A[keep], y[keep], rcond=None)
        lat = float(latency_ms) if fixed else max(float(sol[0]), 0.0)
        s = sol if fixed else sol[1:]
        if not fixed and sol[0] < 0.0:  # refit the slopes with L = 0
            s = np.linalg.lstsq(A[keep][:, 1:], tx_ms[keep], rcond=None)[0]
        seen = np.bincount(wi[keep], minlength=W) > 0
        pos = s[seen & (s > 0)]
        s = _fill(np.where(seen & (s > 0), s, np.nan), float(pos.min()) if pos.size else 1e-6)
        resid = tx_ms - nbytes * s[wi]
        dev = resid - lat
        mad = float(np.median(np.abs(dev - np.median(dev)))) * 1.4826 + 1e-9
        keep = np.abs(dev - np.median(dev)) <= 4.0 * mad
    return LinkFit(lat, windows, s, resid, keep)


def capacity_pieces(
    fit: LinkFit, window_s: float, fades: list[tuple[float, float, float]]
) -> tuple[np.ndarray, np.ndarray, float]:
    """``(times, capacity bytes/s, duration)`` of the fitted trace on the log's clock: window
    ``w`` covers ``[w, w + 1) * window_s`` at ``1 / s_w`` (windows without transfers hold the
    previous one's, the time before the first window takes the first's), and each fade
    ``(start, end, capacity)`` (a transfer far slower than its window) lowers its own stretch."""
    lo, hi = int(fit.windows[0]), int(fit.windows[-1])
    per = np.full(hi - lo + 1, np.nan)
    per[fit.windows - lo] = fit.s
    cap_w = 1000.0 / _fill(per, float(np.nanmin(per)))
    end = (hi + 1) * window_s
    edges = {0.0, end, *(np.arange(lo, hi + 1) * window_s).tolist()}
    for a, b, _ in fades:
        edges.update((min(max(a, 0.0), end), min(max(b, 0.0), end)))
    pts = sorted(edges)
    times, caps = [], []
    for a, b in zip(pts[:-1], pts[1:], strict=True):
        if b - a < 1e-6:
            continue
        mid = 0.5 * (a + b)
        c = float(cap_w[min(max(int(mid // window_s), lo), hi) - lo])
        for fa, fb, fc in fades:
            if fa <= mid < fb:
                c = min(c, fc)
        if caps and c == caps[-1]:
            continue
        times.append(a)
        caps.append(c)
    return np.array(times), np.array(caps), end


def _fill(s: np.ndarray, floor: float) -> np.ndarray:
    """Windows without a usable slope take the previous window's (the first: the next one's)."""
    out = s.copy()
    ok = np.isfinite(out)
    if not ok.any():
        return np.full_like(out, floor)
    first = int(np.argmax(ok))
    out[:first] = out[first]
    for i in range(first + 1, out.size):
        if not np.isfinite(out[i]):
            out[i] = out[i - 1]
    return out


def _fill_modes(
    table: list[tuple[int, int]],
    measured: dict[tuple[int, int], np.ndarray],
    prof: np.ndarray,
    how: str,
) -> tuple[dict[tuple[int, int], np.ndarray], dict[tuple[int, int], tuple[int, int]]]:
    """Every mode's samples: its own, or the nearest measured mode's moved by the profile."""
    out, borrowed = {}, {}
    have = list(measured)
    for m, mode in enumerate(table):
        if mode in measured:
            out[mode] = measured[mode]
            continue
        src = min(have, key=lambda o: (o[0] != mode[0], abs(o[0] - mode[0]), abs(o[1] - mode[1])))
        o = table.index(src)
        v = measured[src]
        if how == "shift":
            v = np.maximum(v + (prof[m] - prof[o]), 0.0)
        else:
            v = v * (prof[m] / prof[o] if prof[o] > 0 else 1.0)
        out[mode], borrowed[mode] = v, src
    return out, borrowed


def calibrate(
    log: str | os.PathLike,
    base: Any,
    out: str | os.PathLike,
    *,
    window_s: float = 2.0,
    latency_ms: float | None = None,
) -> Calibration:
    """Fit a scenario to a device log (see the module docstring) and write it to ``out``."""
    from slimrl.env.dynamics import World
    from slimrl.scenario import load_scenario
    from slimrl.traces import Trace, TraceSet

    if not window_s > 0:
        raise SlimrlError(f"--window-s {window_s}: expected a number > 0")
    if latency_ms is not None and not latency_ms >= 0:
        raise SlimrlError(f"--latency-ms {latency_ms}: expected a number >= 0")
    frames, meta = read_log(log)
    ok = _answered(frames)
    if len(ok) < MIN_FRAMES:
        raise SlimrlError(
            f"{log}: {len(ok)} answered frames; calibration needs at least {MIN_FRAMES}"
        )
    base_sc = load_scenario(base)
    keys = ("compute_ms", "transfer_ms", "edge_ms", "e2e_ms", "t_s")
    col = {k: np.array([float(f[k]) for f in ok]) for k in keys}
    nbytes = np.array([float(f["bytes"]) for f in ok])
    t_send = col["t_s"] + col["compute_ms"] * 1e-3
    tx = col["transfer_ms"]
    fit = fit_link(t_send, nbytes, tx, window_s, latency_ms)
    lat, windows, s = fit.latency_ms, fit.windows, fit.s
    lat_samples = np.maximum(fit.resid[fit.inlier], 0.0)
    slow = ~fit.inlier & (fit.resid > lat)  # caught in a fade: the trace takes it, not L
    fades = [
        (t_send[i] + lat * 1e-3, t_send[i] + tx[i] * 1e-3, nbytes[i] / ((tx[i] - lat) * 1e-3))
        for i in np.flatnonzero(slow)
    ]
    answer = np.maximum(col["e2e_ms"] - col["compute_ms"] - tx - col["edge_ms"], 0.0)
    times, cap, duration = capacity_pieces(fit, window_s, fades)
    out = Path(out)
    stem = out.name.removesuffix(".yaml").removesuffix(".yml")
    trace_path = out.with_name(f"{stem}.trace.csv")
    samples_path = out.with_name(f"{stem}.samples.csv")
    trace = Trace(times, cap, duration, name=trace_path.name)
    out.parent.mkdir(parents=True, exist_ok=True)
    trace.to_csv(trace_path)

    # compute and edge samples per mode, unused modes filled from the nearest used one
    world = World(base_sc, TraceSet([trace]))
    table = [tuple(m) for m in world.action_table]
    modes = [(int(f["k"]), int(f["bits"])) for f in ok]
    for mode in set(modes):
        if mode not in table:
            raise SlimrlError(
                f"{log}: mode k={mode[0]} bits={mode[1]} is not in the base scenario's model "
                f"profile ({base_sc.model.profile}); calibrate against the scenario the run used"
            )
    idx = {mode: np.array([i for i, x in enumerate(modes) if x == mode]) for mode in set(modes)}
    comp, comp_src = _fill_modes(
        table, {m: col["compute_ms"][i] for m, i in idx.items()}, world.compute_mean, "shift"
    )
    edge, _ = _fill_modes(
        table, {m: col["edge_ms"][i] for m, i in idx.items()}, world.service_median, "scale"
    )
    rows = ["k,bits,compute_ms,service_ms,latency_ms,answer_ms,source"]
    for mode in table:
        src = comp_src.get(mode)
        tag = "measured" if src is None else f"from k={src[0]} bits={src[1]}"
        for c, e in zip(comp[mode], edge[mode], strict=True):
            rows.append(f"{mode[0]},{mode[1]},{c:.4f},{e:.4f},,,{tag}")
    for x in lat_samples:
        rows.append(f",,,,{x:.4f},,link")
    for y in answer:
        rows.append(f",,,,,{y:.4f},link")
    with atomic_path(samples_path) as tmp:
        tmp.write_text("\n".join(rows) + "\n")

    base_d = base_sc.to_dict()
    samples = samples_path.name
    link_latency = {"samples": {"path": samples, "column": "latency_ms"}}
    data = {
        "name": stem,
        "description": (
            f"calibrated by `slimrl calibrate` from {Path(log).name} ({len(ok)} frames, policy "
            f"{meta.get('policy', '?')}) on the base scenario {base_sc.name}"
        ),
        "traces": {"path": trace_path.name, "scale": 1.0},
        "model": base_d["model"],
        "device": {
            "profile": portable(base_sc.device.profile),
            "compute_samples": {"path": samples, "column": "compute_ms"},
        },
        "edge": {"service": {"samples": {"path": samples, "column": "service_ms"}}, "load": None},
        "link": {
            "base_delay_ms": 0.0,
            "latency": link_latency,
            "answer_latency": {"samples": {"path": samples, "column": "answer_ms"}},
        },
        "arrival": base_d["arrival"],
        "deadline_ms": float(meta.get("deadline_ms") or base_sc.deadline_ms),
        "reward": base_d["reward"],
        "episode_s": base_d["episode_s"],
        "time_grid_ms": base_d["time_grid_ms"],
        "observation": base_d["observation"],
        "modes": base_d["modes"],
    }
    header = (
        f"# Written by `slimrl calibrate {Path(log).name}`: a scenario fitted to a real run.\n"
        f"# Link: per-transfer latency mean {lat:.2f} ms "
        f"({'fitted' if latency_ms is None else 'given'}), capacity per {window_s:g} s window "
        f"in {trace_path.name}; compute, edge and answer times as measured samples in "
        f"{samples}.\n"
    )
    write_text(out, header + yaml.safe_dump(data, sort_keys=False))
    load_scenario(out)  # it must load as written
    return Calibration(
        scenario_path=out,
        trace_path=trace_path,
        samples_path=samples_path,
        frames=len(ok),
        latency_ms=lat,
        latency_fitted=latency_ms is None,
        answer_ms=float(answer.mean()),
        capacity_mbps=float(np.mean(1000.0 / s) * 8e-6),
        windows=int(windows.size),
        modes_measured=len(idx),
        modes_filled=len(table) - len(idx),
        residual_ms=float(np.std(lat_samples)),
        fades=len(fades),
        delivery=_delivery(meta, fit, window_s),
    )


def _delivery(meta: dict[str, Any], fit: LinkFit, window_s: float) -> float | None:
    """How much of the trace that paced the run (an emulated link: ``meta["trace"]`` times
    ``trace_scale``) the fitted capacity shows: the median over windows of the pacing trace's
    time per byte over the fitted one. Scale that trace by it to predict other runs on it."""
    from slimrl.errors import TraceError
    from slimrl.traces import load_trace

    path = meta.get("trace")
    if not path or not Path(path).is_file():
        return None
    try:
        tr = load_trace(path, resolution_ms=float(meta.get("trace_resolution_ms", 100)))
        tr = tr.scaled(float(meta.get("trace_scale", 1.0)))
    except (TraceError, ValueError):
        return None
    grid = (np.arange(0.0, window_s, 1e-3))[None, :]
    with np.errstate(divide="ignore"):
        per = np.mean(1000.0 / tr.capacity_at(fit.windows[:, None] * window_s + grid), axis=1)
    ratio = per / fit.s
    ratio = ratio[np.isfinite(ratio)]
    return float(np.median(ratio)) if ratio.size else None
