"""How faithful is the simulator? Two views of a measured device log against a scenario.

- Per frame (:func:`compare_log`): each logged frame (its mode and its start time on the trace)
  is run through the scenario's :class:`~slimrl.env.dynamics.World`: the median outcome over the
  edge's backlog realisations and a spread of random draws, next to the measured one.
- Closed loop (:func:`closed_loop`): the log's policy runs in the simulator over the same stretch
  of the same trace, deciding on simulated measurements as it did on real ones, with several
  keys of common random numbers; its on-time rate and e2e p50/p95 sit next to the run's. This is
  what a simulator must predict to be worth training on.
"""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from slimrl.errors import SlimrlError
from slimrl.io import atomic_path
from slimrl.runtime.device import read_log

COLUMNS = ("compute_ms", "transfer_ms", "edge_ms", "e2e_ms")


_SIM_KEYS = ("compute_ms", "transfer_ms", "edge_ms", "edge_queue_ms", "e2e_ms", "bytes")


def simulate_frames(
    frames: list[dict[str, Any]],
    meta: dict[str, Any],
    scenario: Any,
    trace_path: str | os.PathLike | None = None,
) -> list[dict[str, Any]]:
    """Per logged frame: the simulator's ``sim_*`` figures for the same mode and start time
    (on the log's trace times its ``trace_scale``, or on ``trace_path`` as it is)."""
    from slimrl.env.dynamics import Episode, World
    from slimrl.env.frame import INDEX
    from slimrl.scenario import load_scenario
    from slimrl.traces import TraceSet, load_trace

    scenario = load_scenario(scenario)
    path = trace_path or meta.get("trace")
    if not path:
        raise SlimrlError("the log names no trace (missing .meta.json); pass --trace FILE")
    trace = load_trace(path, resolution_ms=float(meta.get("trace_resolution_ms", 100)))
    if trace_path is None:  # the log's own trace, as it paced the run; a given one as it is
        trace = trace.scaled(float(meta.get("trace_scale", 1.0)))
    world = World(scenario, TraceSet([trace], [Path(path)]))
    index = {mode: m for m, mode in enumerate(world.action_table)}
    reals = np.arange(world.n_real)[:, None]
    keys = np.arange(1, 33, dtype=np.uint64)[None, :] * np.uint64(0x9E3779B97F4A7C15)
    deadline = float(meta.get("deadline_ms", world.deadline_ms))
    out = []
    for f in frames:
        m = index.get((int(f["k"]), int(f["bits"])))
        if m is None:
            raise SlimrlError(
                f"frame {f['frame']}: mode k={f['k']} bits={f['bits']} is not in the scenario's "
                f"model profile ({world.scenario.model.profile}); compare with the scenario the "
                "policy was trained on"
            )
        t = float(f.get("t_s", 0.0))
        # the frame under every edge-load realisation and a spread of random draws
        fr = world.frames(m, 0, Episode(0, t, reals, 0, keys, 1.0, world.delay_ms), sample=False)
        e2e = fr[INDEX["e2e_ms"]].ravel()
        j = int(np.argsort(e2e)[len(e2e) // 2])  # the median outcome
        pick = {k: float(np.ravel(fr[INDEX[k]])[j]) for k in _SIM_KEYS}
        out.append(
            {
                "sim_compute_ms": pick["compute_ms"],
                "sim_transfer_ms": pick["transfer_ms"],
                "sim_edge_ms": pick["edge_ms"],
                "sim_edge_queue_ms": pick["edge_queue_ms"],
                "sim_e2e_ms": pick["e2e_ms"],
                "sim_on_time": pick["e2e_ms"] <= deadline,
                "sim_bytes": int(pick["bytes"]),
            }
        )
    return out


def compare_log(
    log: str | os.PathLike, scenario: Any, trace_path: str | os.PathLike | None = None
) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any]]:
    """Rows (measured next to simulated, per frame), a summary of the differences, the log meta."""
    frames, meta = read_log(log)
    sims = simulate_frames(frames, meta, scenario, trace_path)
    rows = []
    for f, s in zip(frames, sims, strict=True):
        row = {
            "frame": f["frame"],
            "k": f["k"],
            "bits": f["bits"],
            "t_s": f.get("t_s"),
            "error": f.get("error"),
        }
        for c in COLUMNS:
            row[c] = f.get(c)
            row[f"sim_{c}"] = s[f"sim_{c}"]
        row["bytes"], row["sim_bytes"] = f.get("bytes"), s["sim_bytes"]
        row["on_time"], row["sim_on_time"] = bool(f["on_time"]), bool(s["sim_on_time"])
        ok = row["error"] is None and row["e2e_ms"] is not None
        row["e2e_error_ms"] = row["sim_e2e_ms"] - row["e2e_ms"] if ok else None
        rows.append(row)
    return rows, compare_summary(rows), meta


def compare_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [r for r in rows if r["e2e_error_ms"] is not None]
    err = np.array([r["e2e_error_ms"] for r in ok], dtype=float)
    summary: dict[str, Any] = {
        "frames": len(rows),
        "failed_frames": len(rows) - len(ok),
        "on_time_measured": float(np.mean([r["on_time"] for r in rows])),
        "on_time_simulated": float(np.mean([r["sim_on_time"] for r in rows])),
        "on_time_agreement": float(np.mean([r["on_time"] == r["sim_on_time"] for r in rows])),
    }
    if err.size:
        summary.update(
            {
                "e2e_error_mean_ms": float(err.mean()),
                "e2e_error_p5_ms": float(np.percentile(err, 5)),
                "e2e_error_p50_ms": float(np.percentile(err, 50)),
                "e2e_error_p95_ms": float(np.percentile(err, 95)),
                "e2e_abs_error_p50_ms": float(np.percentile(np.abs(err), 50)),
            }
        )
    for c in COLUMNS:
        meas = np.array([r[c] for r in ok if r[c] is not None], dtype=float)
        sim = np.array([r[f"sim_{c}"] for r in ok], dtype=float)
        summary[c] = {
            "measured_p50": float(np.median(meas)) if meas.size else math.nan,
            "measured_p95": float(np.percentile(meas, 95)) if meas.size else math.nan,
            "simulated_p50": float(np.median(sim)) if sim.size else math.nan,
            "simulated_p95": float(np.percentile(sim, 95)) if sim.size else math.nan,
        }
    return summary


# -- closed loop ------------------------------------------------------------------------------
def run_figures(frames: list[dict[str, Any]]) -> dict[str, float]:
    """Frames, on-time rate (a failed frame is a miss) and e2e p50/p95 (answered frames) of a
    logged run."""
    e2e = np.array(
        [f["e2e_ms"] for f in frames if f.get("error") is None and f.get("e2e_ms") is not None],
        dtype=float,
    )
    return {
        "frames": len(frames),
        "on_time": float(np.mean([bool(f["on_time"]) for f in frames])),
        "e2e_p50_ms": float(np.percentile(e2e, 50)) if e2e.size else math.nan,
        "e2e_p95_ms": float(np.percentile(e2e, 95)) if e2e.size else math.nan,
    }


def run_span(frames: list[dict[str, Any]]) -> tuple[float, float]:
    """(trace time of the first frame's start, seconds until the last frame's answer)."""
    t0 = float(frames[0].get("t_s") or 0.0)
    last = frames[-1]
    end = float(last.get("t_s") or 0.0) + float(last.get("e2e_ms") or 0.0) / 1e3
    return t0, max(end - t0, 1e-3)


def log_policy(meta: dict[str, Any]) -> str:
    """The policy a log was run with: its bundle folder, else its name."""
    name = meta.get("bundle") or meta.get("policy")
    if not name:
        raise SlimrlError("the log names no policy (missing .meta.json); pass --policy NAME")
    return str(name)


def closed_loop(
    scenario: Any,
    trace_path: str | os.PathLike,
    policy: str,
    start_s: float,
    span_s: float,
    *,
    trace_scale: float = 1.0,
    deadline_ms: float | None = None,
    keys: int = 8,
    seed: int = 0,
) -> dict[str, float]:
    """Run ``policy`` in the simulator from ``start_s`` for ``span_s`` of the trace at
    ``trace_path`` (times ``trace_scale``), once per key of common random numbers (``keys``
    parallel episodes); frames, on-time rate and e2e p50/p95 pooled over the episodes."""
    from slimrl.env.vector import SlimSplitVectorEnv
    from slimrl.policies import make_policy
    from slimrl.scenario import load_scenario

    overrides: dict[str, Any] = {"traces.scale": float(trace_scale), "episode_s": float(span_s)}
    if deadline_ms is not None:
        overrides["deadline_ms"] = float(deadline_ms)
    sc = load_scenario(scenario, overrides)
    venv = SlimSplitVectorEnv(keys, sc, trace_dir=trace_path, split=None, action_space="flat")
    dur = float(venv.world.durations[0])
    obs, infos = venv.reset(seed=seed, options={"trace_index": 0, "start_s": start_s % dur})
    pol = make_policy(policy, venv, seed=seed)
    pol.reset(keys)
    done = np.zeros(keys, dtype=bool)
    e2e: list[np.ndarray] = []
    on: list[np.ndarray] = []
    while not done.all():
        if pol.needs_lookahead:
            infos = {**infos, "lookahead": venv.lookahead()}
        if pol.needs_episode:
            infos = {**infos, "episode": venv.episode_state()}
        obs, _r, _te, trunc, infos = venv.step(pol.act_batch(obs, infos))
        src = infos.get("final_info", infos) if trunc.any() else infos
        live = ~done
        e2e.append(np.asarray(src["e2e_ms"])[live])
        on.append(np.asarray(src["on_time"])[live])
        done |= trunc
    e2e_a, on_a = np.concatenate(e2e), np.concatenate(on)
    return {
        "frames": e2e_a.size / keys,
        "on_time": float(on_a.mean()),
        "e2e_p50_ms": float(np.percentile(e2e_a, 50)),
        "e2e_p95_ms": float(np.percentile(e2e_a, 95)),
    }


def closed_loop_log(
    log: str | os.PathLike,
    scenario: Any,
    trace_path: str | os.PathLike | None = None,
    *,
    trace_scale: float | None = None,
    keys: int = 8,
) -> dict[str, Any]:
    """One row of the closed-loop comparison: a log's run next to its simulated replay.

    The trace is the log's (``--trace`` to override, e.g. a calibrated capacity trace, then
    ``trace_scale`` defaults to 1), over the same stretch, with the log's policy and deadline."""
    frames, meta = read_log(log)
    path = trace_path or meta.get("trace")
    if not path:
        raise SlimrlError(f"{log}: the log names no trace (missing .meta.json); pass --trace FILE")
    if trace_scale is None:
        trace_scale = 1.0 if trace_path is not None else float(meta.get("trace_scale", 1.0))
    t0, span = run_span(frames)
    policy = log_policy(meta)
    sim = closed_loop(
        scenario,
        path,
        policy,
        t0,
        span,
        trace_scale=trace_scale,
        deadline_ms=meta.get("deadline_ms"),
        keys=keys,
        seed=int(meta.get("seed", 0) or 0),
    )
    meas = run_figures(frames)
    row: dict[str, Any] = {"log": Path(log).name, "policy": meta.get("policy") or policy}
    for key in ("frames", "on_time", "e2e_p50_ms", "e2e_p95_ms"):
        row[f"{key}_measured"] = meas[key]
        row[f"{key}_simulated"] = sim[key]
    row["on_time_error"] = sim["on_time"] - meas["on_time"]
    row["e2e_p50_error"] = sim["e2e_p50_ms"] / meas["e2e_p50_ms"] - 1.0
    row["e2e_p95_error"] = sim["e2e_p95_ms"] / meas["e2e_p95_ms"] - 1.0
    return row


def print_closed_loop(rows: list[dict[str, Any]], title: str) -> None:
    """Per policy: on-time rate and e2e p50/p95, measured vs simulated."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    cols = ("policy", "frames m/s", "on time m", "on time s", "diff", "p50 m", "p50 s", "diff",
            "p95 m", "p95 s", "diff")  # fmt: skip
    for col in cols:
        table.add_column(col, justify="left" if col == "policy" else "right")
    for r in rows:
        table.add_row(
            str(r["policy"]),
            f"{r['frames_measured']:.0f}/{r['frames_simulated']:.0f}",
            f"{r['on_time_measured']:.3f}",
            f"{r['on_time_simulated']:.3f}",
            f"{r['on_time_error']:+.3f}",
            f"{r['e2e_p50_ms_measured']:.1f}",
            f"{r['e2e_p50_ms_simulated']:.1f}",
            f"{r['e2e_p50_error']:+.1%}",
            f"{r['e2e_p95_ms_measured']:.1f}",
            f"{r['e2e_p95_ms_simulated']:.1f}",
            f"{r['e2e_p95_error']:+.1%}",
        )
    console = Console()
    if not console.is_terminal:
        console = Console(width=140)
    console.print(table)


def write_csv(path: str | os.PathLike, rows: list[dict[str, Any]]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def plot(path: str | os.PathLike, rows: list[dict[str, Any]], deadline_ms: float | None) -> None:
    """Measured vs simulated e2e per frame, and the distribution of the error."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in rows if r["e2e_error_ms"] is not None]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    ax1.plot([r["frame"] for r in rows], [r["sim_e2e_ms"] for r in rows], label="simulated", lw=1)
    ax1.plot([r["frame"] for r in ok], [r["e2e_ms"] for r in ok], label="measured", lw=1)
    failed = [r["frame"] for r in rows if r["e2e_error_ms"] is None]
    if failed:
        ax1.scatter(failed, [0] * len(failed), marker="x", color="red", label="failed", zorder=3)
    if deadline_ms:
        ax1.axhline(deadline_ms, color="gray", ls="--", lw=1, label="deadline")
    ax1.set(xlabel="frame", ylabel="e2e latency (ms)", title="end-to-end latency")
    ax1.legend()
    if ok:
        ax2.hist([r["e2e_error_ms"] for r in ok], bins=40)
    ax2.set(xlabel="simulated - measured e2e (ms)", ylabel="frames", title="simulation error")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def print_table(summary: dict[str, Any], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for col in ("", "measured p50", "simulated p50", "measured p95", "simulated p95"):
        table.add_column(col, justify="right")
    for c in COLUMNS:
        s = summary[c]
        table.add_row(
            c,
            *(
                f"{s[k]:.2f}"
                for k in ("measured_p50", "simulated_p50", "measured_p95", "simulated_p95")
            ),
        )
    table.add_row(
        "on-time rate",
        f"{summary['on_time_measured']:.3f}",
        f"{summary['on_time_simulated']:.3f}",
        "",
        "",
    )
    console = Console()
    console.print(table)
    if "e2e_error_p50_ms" in summary:
        console.print(
            f"e2e error (simulated - measured): p5 {summary['e2e_error_p5_ms']:.2f} ms, "
            f"p50 {summary['e2e_error_p50_ms']:.2f} ms, p95 {summary['e2e_error_p95_ms']:.2f} ms; "
            f"on-time agreement {summary['on_time_agreement']:.3f}; "
            f"{summary['failed_frames']} failed frame(s) of {summary['frames']}"
        )
