"""Evaluation plots (matplotlib, Agg backend): PNG files in the output folder."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

PLOT_FILES = ("reward_score.png", "latency_cdf.png", "accuracy_energy.png", "timeline.png")


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _colors(names: Sequence[str]) -> dict[str, Any]:
    plt = _plt()
    cmap = plt.get_cmap("tab10" if len(names) <= 10 else "tab20")
    return {n: cmap(i % cmap.N) for i, n in enumerate(names)}


def _short(name: str, width: int = 28) -> str:
    return name if len(name) <= width else "..." + name[-(width - 3) :]


def reward_score_bars(summary: pd.DataFrame, path: Path) -> None:
    """Reward per second and normalised score per policy, with 95 % bootstrap intervals."""
    plt = _plt()
    names = list(summary["policy"])
    x = np.arange(len(names))
    col = _colors(names)
    fig, axes = plt.subplots(1, 2, figsize=(max(8, 1.4 * len(names) + 4), 4.2))
    for ax, key, title in (
        (axes[0], "reward", "reward per second of trace"),
        (axes[1], "score", "normalised score S"),
    ):
        mid = summary["reward_per_s" if key == "reward" else key].to_numpy(dtype=float)
        lo = summary[f"{key}_ci_low"].to_numpy(dtype=float)
        hi = summary[f"{key}_ci_high"].to_numpy(dtype=float)
        err = np.vstack([np.maximum(mid - lo, 0), np.maximum(hi - mid, 0)])
        ax.bar(x, mid, yerr=np.nan_to_num(err), capsize=4, color=[col[n] for n in names])
        ax.axhline(0, color="black", lw=0.8)
        ax.set_xticks(x, [_short(n) for n in names], rotation=30, ha="right", fontsize=8)
        ax.set_title(title)
        ax.grid(axis="y", alpha=0.3)
    axes[1].axhline(1, color="grey", lw=0.8, ls="--")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def latency_cdf(steps: pd.DataFrame, names: Sequence[str], deadline_ms: float, path: Path) -> None:
    """Empirical CDF of the end-to-end latency per policy, deadline marked."""
    plt = _plt()
    col = _colors(names)
    fig, ax = plt.subplots(figsize=(7, 4.2))
    hi = deadline_ms * 1.5
    for n in names:
        e2e = np.sort(steps.loc[steps["policy"] == n, "e2e_ms"].to_numpy())
        if e2e.size == 0:
            continue
        hi = max(hi, float(np.quantile(e2e, 0.99)))
        ax.step(
            e2e, np.arange(1, e2e.size + 1) / e2e.size, where="post", label=_short(n), color=col[n]
        )
    ax.axvline(deadline_ms, color="red", ls="--", lw=1.2, label=f"deadline {deadline_ms:g} ms")
    ax.set_xlim(0, hi)
    ax.set_ylim(0, 1.0)
    ax.set_xlabel("end-to-end latency (ms)")
    ax.set_ylabel("fraction of frames")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def accuracy_energy(summary: pd.DataFrame, path: Path) -> None:
    """Mean accuracy vs mean energy per frame, one point per policy (marker size: on-time)."""
    plt = _plt()
    names = list(summary["policy"])
    col = _colors(names)
    fig, ax = plt.subplots(figsize=(7, 4.8))
    for _, r in summary.iterrows():
        ax.scatter(
            r["energy_j_mean"],
            r["accuracy_mean"],
            s=30 + 170 * r["on_time_rate"],
            color=col[r["policy"]],
            label=_short(r["policy"]),
            edgecolor="black",
            lw=0.5,
        )
    ax.set_xlabel("energy per frame (J)")
    ax.set_ylabel("accuracy per frame")
    ax.set_title("accuracy vs energy (marker size: on-time rate)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def timeline(
    steps: pd.DataFrame,
    names: Sequence[str],
    world: Any,
    trace_index: int,
    start_s: float,
    mode_labels: Sequence[str],
    path: Path,
    episode: int = 0,
) -> None:
    """Capacity of one episode's trace, and the mode each policy chose over time."""
    plt = _plt()
    col = _colors(names)
    ep = steps[steps["episode"] == episode]
    span = max(float(ep["t_s"].max() - start_s), 1.0) if len(ep) else 1.0
    t = np.linspace(start_s, start_s + span, 2000)
    cap = world.bank.capacity_at(np.full(t.shape, trace_index), t) * 8e-6
    fig, (ax1, ax2) = plt.subplots(
        2, 1, figsize=(10, 6), sharex=True, gridspec_kw={"height_ratios": [1, 1.6]}
    )
    ax1.plot(t - start_s, cap, color="tab:gray", lw=0.9)
    ax1.set_ylabel("capacity (Mbit/s)")
    ax1.set_title(f"episode {episode}: {world.trace_names[trace_index]} from {start_s:.1f} s")
    ax1.grid(alpha=0.3)
    for j, n in enumerate(names):
        d = ep[ep["policy"] == n]
        jitter = (j - (len(names) - 1) / 2) * 0.08
        ax2.step(
            d["t_s"] - start_s,
            d["action"] + jitter,
            where="post",
            lw=1.0,
            color=col[n],
            alpha=0.4 if n == "random" else 1.0,  # random flips every frame: keep it faint
            label=_short(n),
        )
    ax2.set_yticks(range(len(mode_labels)), mode_labels, fontsize=7)
    ax2.set_ylabel("mode (k,bits)")
    ax2.set_xlabel("time since episode start (s)")
    ax2.grid(alpha=0.3)
    ax2.legend(fontsize=7, loc="upper right", ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
