"""Evaluation figures fit for a paper (matplotlib, Agg backend).

Every figure is written as PNG (300 dpi) and, next to it under the same stem, as PDF and SVG
(vector, text kept as text). Each policy keeps one style in every figure (:func:`policy_styles`):
a colour of the Okabe-Ito colour-blind-safe palette *and* a marker, a line style and a bar hatch,
so figures stay readable in greyscale. The reference policies (``optimal``, ``oracle``, the best
static mode) are drawn in black and greys. Axes are not squashed by one very bad policy: a value
far below the others is clipped at the axis edge and labelled with its true value
(:func:`robust_limits`); latency CDFs use a log axis when the latencies span more than a decade.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

PLOT_FILES = ("reward_score.png", "latency_cdf.png", "accuracy_energy.png", "timeline.png")
#: formats written for every figure (the first is the path's own suffix)
FORMATS = ("png", "pdf", "svg")
DPI = 300
#: Okabe & Ito (2008), without black (kept for the references)
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#E69F00", "#CC79A7", "#56B4E9", "#F0E442")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h")
LINESTYLES = ("-", "--", "-.", ":", (0, (5, 1.5)), (0, (3, 1, 1, 1, 1, 1)), (0, (1, 1)))
HATCHES = ("", "//", "\\\\", "xx", "..", "--", "++", "oo", "||", "**")
#: reference policies: fixed greys and styles
REFERENCE_STYLES = {
    "optimal": ("#000000", "*", "-", "////"),
    "oracle": ("#555555", "d", "--", "\\\\\\\\"),
}
STATIC_REF = ("#999999", "p", ":", "....")
#: a value is clipped when it lies further below the rest than this many times their span
OUTLIER_FACTOR = 2.0
#: a CDF gets a log axis when its 99th and 1st percentiles are this far apart
LOG_RATIO = 10.0
#: points per curve in a CDF (vector files stay small)
CDF_POINTS = 600

RC = {
    "font.size": 8,
    "axes.titlesize": 9,
    "axes.labelsize": 8,
    "legend.fontsize": 7,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.5,
    "lines.linewidth": 1.2,
    "hatch.linewidth": 0.6,
    "pdf.fonttype": 42,  # TrueType in PDFs (venues refuse Type 3 fonts)
    "ps.fonttype": 42,
    "svg.fonttype": "none",  # text stays text in SVGs
    "savefig.bbox": "tight",
    "savefig.pad_inches": 0.02,
}


@dataclass(frozen=True)
class Style:
    """How one policy is drawn everywhere."""

    color: str
    marker: str
    linestyle: Any
    hatch: str

    def line(self) -> dict[str, Any]:
        return {"color": self.color, "linestyle": self.linestyle, "marker": self.marker}


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


@contextlib.contextmanager
def _style() -> Iterator[Any]:
    plt = _plt()
    with plt.rc_context(RC):
        yield plt


def policy_styles(names: Sequence[str]) -> dict[str, Style]:
    """One style per policy: references fixed, the others in order through colour, marker,
    line style and hatch (so no two policies share all four, and greyscale still tells them
    apart by marker, line style and hatch)."""
    out: dict[str, Style] = {}
    i = 0
    for n in names:
        if n in REFERENCE_STYLES:
            out[n] = Style(*REFERENCE_STYLES[n])
        elif n.startswith("static:") and n not in out and _is_reference_static(n, names):
            out[n] = Style(*STATIC_REF)
        else:
            out[n] = Style(
                PALETTE[i % len(PALETTE)],
                MARKERS[i % len(MARKERS)],
                LINESTYLES[i % len(LINESTYLES)],
                HATCHES[i % len(HATCHES)],
            )
            i += 1
    return out


def _is_reference_static(name: str, names: Sequence[str]) -> bool:
    """The best static mode the evaluator adds comes last, after ``optimal`` and ``oracle``."""
    return bool(names) and name == names[-1] and "optimal" in names


def _short(name: str, width: int = 28) -> str:
    return name if len(name) <= width else "..." + name[-(width - 3) :]


def figure_paths(path: str | Path) -> list[Path]:
    """The files :func:`save` writes for ``path``: its own suffix first, then the others."""
    path = Path(path)
    own = path.suffix.lstrip(".").lower() or "png"
    stem = path.with_suffix("")
    return [path if path.suffix else stem.with_suffix(".png")] + [
        stem.with_suffix(f".{f}") for f in FORMATS if f != own
    ]


def save(fig: Any, path: str | Path) -> list[Path]:
    """Write ``fig`` as PNG (300 dpi), PDF and SVG under ``path``'s stem; close it."""
    plt = _plt()
    paths = figure_paths(path)
    try:
        for p in paths:
            fig.savefig(p, dpi=DPI, metadata=_metadata(p))
    finally:
        plt.close(fig)
    return paths


def _metadata(path: Path) -> dict[str, Any] | None:
    # reproducible vector files: no creation date
    suffix = path.suffix.lower()
    if suffix == ".pdf":
        return {"CreationDate": None}
    if suffix == ".svg":
        return {"Date": None}
    return None


def robust_limits(
    mid: np.ndarray, low: np.ndarray | None = None, high: np.ndarray | None = None
) -> tuple[float, float, np.ndarray]:
    """Axis limits that keep the bulk of the values readable, and which values fall off them.

    Values are dropped from the low end while one lies more than :data:`OUTLIER_FACTOR` times the
    span of the others below them (at most a third of the values). Returns ``(lo, hi, clipped)``
    where ``clipped`` flags the values drawn at the edge with their true value printed; ``lo``
    includes 0 unless that alone would squash the rest."""
    mid = np.asarray(mid, dtype=float)
    low = mid if low is None else np.where(np.isfinite(low), low, mid)
    high = mid if high is None else np.where(np.isfinite(high), high, mid)
    ok = np.isfinite(mid)
    clipped = np.zeros(mid.shape, bool)
    if not ok.any():
        return -1.0, 1.0, clipped
    order = [i for i in np.argsort(mid) if ok[i]]
    for _ in range(len(order) // 3):
        rest = order[1:]
        span = max(float(mid[rest].max() - mid[rest].min()), 1e-12)
        if mid[rest].min() - mid[order[0]] > OUTLIER_FACTOR * span and len(rest) >= 2:
            clipped[order[0]] = True
            order = rest
        else:
            break
    keep = ok & ~clipped
    lo, hi = float(np.min(low[keep])), float(np.max(high[keep]))
    span = max(hi - lo, 1e-12)
    if lo > 0 and lo < OUTLIER_FACTOR * span:
        lo = 0.0  # bars from zero, unless zero is far away
    if hi < 0 and -hi < OUTLIER_FACTOR * span:
        hi = 0.0
    pad = 0.06 * max(hi - lo, 1e-12)
    lo, hi = lo - (pad * (3 if clipped.any() else 1)), hi + pad
    return lo, hi, clipped


def _bar_panel(
    ax: Any,
    names: Sequence[str],
    styles: dict[str, Style],
    mid: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    title: str,
    bars: bool = True,
    ref_line: float | None = None,
    clip: bool = True,
) -> None:
    """Horizontal bars (or points) with 95 % intervals; with ``clip``, values far below the
    others are clipped at the axis edge and labelled with their value."""
    y = np.arange(len(names))
    if clip:
        lo, hi, clipped = robust_limits(mid, low, high)
    else:
        both = np.concatenate([mid, low, high])
        both = both[np.isfinite(both)]
        lo, hi = (float(both.min()), float(both.max())) if both.size else (-1.0, 1.0)
        pad = 0.08 * max(hi - lo, 1e-9)
        lo, hi, clipped = lo - pad, hi + pad, np.zeros(len(mid), bool)
    shown = np.clip(mid, lo, hi)
    err = np.vstack(
        [
            np.clip(shown - np.clip(low, lo, hi), 0, None),
            np.clip(np.clip(high, lo, hi) - shown, 0, None),
        ]
    )
    err = np.nan_to_num(err)
    for i, n in enumerate(names):
        s = styles[n]
        if not np.isfinite(mid[i]):
            continue
        if bars:
            ax.barh(
                y[i],
                shown[i],
                height=0.7,
                color=s.color,
                alpha=0.85,
                hatch=s.hatch,
                edgecolor="black",
                linewidth=0.5,
            )
            ax.errorbar(
                shown[i],
                y[i],
                xerr=err[:, i : i + 1],
                fmt="none",
                ecolor="black",
                elinewidth=0.8,
                capsize=2,
            )
        else:
            ax.errorbar(
                shown[i],
                y[i],
                xerr=err[:, i : i + 1],
                fmt=s.marker,
                color=s.color,
                ecolor=s.color,
                elinewidth=1.2,
                capsize=2.5,
                markersize=4,
                markeredgecolor="black",
                markeredgewidth=0.4,
            )
        if clipped[i]:
            ax.annotate(
                f"{mid[i]:.3g} (off scale)",
                xy=(lo, y[i]),
                xytext=(3, 0),
                textcoords="offset points",
                va="center",
                ha="left",
                fontsize=6.5,
                bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "0.4", "lw": 0.5},
            )
    ax.axvline(0, color="black", lw=0.7)
    if ref_line is not None:
        ax.axvline(ref_line, color="0.3", lw=0.8, ls="--")
    ax.set_xlim(lo, hi)
    ax.set_title(title)
    ax.grid(axis="y", visible=False)


def _col(summary: pd.DataFrame, key: str) -> np.ndarray:
    if key not in summary.columns:
        return np.full(len(summary), np.nan)
    return pd.to_numeric(summary[key], errors="coerce").to_numpy(dtype=float, copy=True)


def reward_score_bars(summary: pd.DataFrame, path: Path) -> list[Path]:
    """Reward per second of trace, normalised score, and the paired difference to the baseline
    per policy, each with its 95 % bootstrap interval (three panels, policies on the y axis)."""
    names = [str(n) for n in summary["policy"]]
    styles = policy_styles(names)
    baseline = (
        str(summary["baseline"].dropna().iloc[0])
        if "baseline" in summary and summary["baseline"].notna().any()
        else None
    )
    panels = [
        ("reward_per_s", "reward_ci_low", "reward_ci_high", "reward per second\nof trace", True),
        (
            "score",
            "score_ci_low",
            "score_ci_high",
            "normalised score S\n(1: offline optimum)",
            True,
        ),
    ]
    if baseline is not None:
        panels.append(
            (
                "diff_per_s",
                "diff_ci_low",
                "diff_ci_high",
                f"difference to {_short(baseline, 20)}\n(reward/s, paired)",
                False,
            )
        )
    height = max(2.0, 0.24 * len(names) + 0.9)
    with _style() as plt:
        fig, axes = plt.subplots(1, len(panels), figsize=(7.0, height), sharey=True, squeeze=False)
        for ax, (key, lo, hi, title, bars) in zip(axes[0], panels, strict=True):
            mid = _col(summary, key)
            low, high = _col(summary, lo), _col(summary, hi)
            if key == "diff_per_s" and baseline in names:
                mid[names.index(baseline)] = np.nan  # the baseline itself: no bar
            _bar_panel(
                ax,
                names,
                styles,
                mid,
                low,
                high,
                title,
                bars=bars,
                ref_line=1.0 if key == "score" else None,
            )
            if key == "diff_per_s" and baseline in names:
                ax.annotate(
                    "(baseline)",
                    xy=(0, names.index(baseline)),
                    xytext=(3, 0),
                    textcoords="offset points",
                    va="center",
                    fontsize=6.5,
                )
        axes[0][0].set_yticks(np.arange(len(names)), [_short(n) for n in names])
        axes[0][0].invert_yaxis()
        fig.tight_layout()
        return save(fig, path)


def _cdf_points(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """An empirical CDF as at most :data:`CDF_POINTS` steps (quantiles), extremes kept."""
    x = np.sort(x[np.isfinite(x)])
    n = x.size
    if n <= CDF_POINTS:
        return x, np.arange(1, n + 1) / n
    q = np.linspace(0, 1, CDF_POINTS)
    idx = np.unique(np.clip(np.round(q * (n - 1)).astype(int), 0, n - 1))
    return x[idx], (idx + 1) / n


def wants_log_axis(values: np.ndarray) -> bool:
    """True when positive ``values`` span more than :data:`LOG_RATIO` (0.1 % to 99.9 %)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v) & (v > 0)]
    if v.size < 2:
        return False
    lo, hi = np.quantile(v, [0.001, 0.999])
    return bool(hi / max(lo, 1e-12) > LOG_RATIO)


def _log_ticks(ax: Any) -> None:
    """1-2-5 ticks with short plain numbers (``2k`` for 2000) on a log x axis."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(
        FuncFormatter(lambda v, _: f"{v:g}" if v < 1000 else f"{v / 1000:g}k")
    )
    ax.xaxis.set_minor_formatter(NullFormatter())


def latency_cdf(
    steps: pd.DataFrame, names: Sequence[str], deadline_ms: float, path: Path
) -> list[Path]:
    """Empirical CDF of the end-to-end latency per policy, the deadline marked; a log axis when
    the latencies span more than a decade."""
    styles = policy_styles(names)
    data = {n: steps.loc[steps["policy"] == n, "e2e_ms"].to_numpy(dtype=float) for n in names}
    data = {n: v[np.isfinite(v) & (v > 0)] for n, v in data.items()}
    pooled = np.concatenate([v for v in data.values() if v.size] or [np.array([deadline_ms])])
    p99 = float(np.quantile(pooled, 0.99))
    log = wants_log_axis(pooled)
    with _style() as plt:
        fig, ax = plt.subplots(figsize=(3.5, 2.6))
        for n in names:
            if data[n].size == 0:
                continue
            x, y = _cdf_points(data[n])
            s = styles[n]
            ax.step(x, y, where="post", label=_short(n, 22), color=s.color, ls=s.linestyle, lw=1.1)
            _markers(ax, x, y, s, 6)
        ax.axvline(deadline_ms, color="black", ls=(0, (4, 2, 1, 2)), lw=1.0)
        from matplotlib.lines import Line2D

        shown = [n for n in names if data[n].size]
        handles = [
            *_handles(shown, styles),
            Line2D(
                [], [], color="black", ls=(0, (4, 2, 1, 2)), label=f"deadline {deadline_ms:g} ms"
            ),
        ]
        if log:
            ax.set_xscale("log")
            _log_ticks(ax)
            ax.set_xlim(max(float(pooled.min()) * 0.8, 1e-3), float(pooled.max()) * 1.25)
        else:
            ax.set_xlim(0, max(float(p99) * 1.05, deadline_ms * 1.3))
        ax.set_ylim(0, 1.0)
        ax.set_xlabel("end-to-end latency (ms)" + (", log scale" if log else ""))
        ax.set_ylabel("fraction of frames")
        _legend(ax, len(handles), handles)
        fig.tight_layout()
        return save(fig, path)


def _legend(ax: Any, n: int, handles: list[Any] | None = None, loc: str = "lower right") -> None:
    """Inside the axes for a few entries, to the right of them for many."""
    kw: dict[str, Any] = {} if handles is None else {"handles": handles}
    if n <= 5:
        ax.legend(loc=loc, frameon=True, framealpha=0.9, **kw)
    else:
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False, **kw)


def _handles(names: Sequence[str], styles: dict[str, Style], marker_only: bool = False) -> list:
    """Legend entries that show each policy's colour, line style and marker together."""
    from matplotlib.lines import Line2D

    return [
        Line2D(
            [],
            [],
            color=styles[n].color,
            ls="none" if marker_only else styles[n].linestyle,
            marker=styles[n].marker,
            markersize=4,
            markeredgecolor="black",
            markeredgewidth=0.3,
            label=_short(n, 22),
        )
        for n in names
    ]


def accuracy_energy(summary: pd.DataFrame, path: Path) -> list[Path]:
    """Mean accuracy vs mean energy per frame, one marker per policy (size: on-time rate)."""
    names = [str(n) for n in summary["policy"]]
    styles = policy_styles(names)
    with _style() as plt:
        fig, ax = plt.subplots(figsize=(3.5, 2.8))
        for _, r in summary.iterrows():
            s = styles[str(r["policy"])]
            on_time = float(r["on_time_rate"]) if math.isfinite(float(r["on_time_rate"])) else 0
            ax.scatter(
                r["energy_j_mean"],
                r["accuracy_mean"],
                s=15 + 60 * on_time,
                color=s.color,
                marker=s.marker,
                label=_short(str(r["policy"]), 22),
                edgecolor="black",
                linewidth=0.4,
                zorder=3,
            )
        ax.set_xlabel("energy per frame (J)")
        ax.set_ylabel("accuracy per frame")
        ax.set_title("accuracy vs energy\n(marker area: on-time rate)")
        _legend(ax, len(names), _handles(names, styles, marker_only=True), loc="best")
        fig.tight_layout()
        return save(fig, path)


def timeline(
    steps: pd.DataFrame,
    names: Sequence[str],
    world: Any,
    trace_index: int,
    start_s: float,
    mode_labels: Sequence[str],
    path: Path,
    episode: int = 0,
) -> list[Path]:
    """Capacity of one episode's trace, and the mode each policy chose over time."""
    styles = policy_styles(names)
    ep = steps[steps["episode"] == episode]
    span = max(float(ep["t_s"].max() - start_s), 1.0) if len(ep) else 1.0
    t = np.linspace(start_s, start_s + span, 2000)
    cap = world.bank.capacity_at(np.full(t.shape, trace_index), t) * 8e-6
    with _style() as plt:
        fig, (ax1, ax2) = plt.subplots(
            2, 1, figsize=(7.0, 3.8), sharex=True, gridspec_kw={"height_ratios": [1, 1.7]}
        )
        ax1.plot(t - start_s, cap, color="0.35", lw=0.8)
        ax1.fill_between(t - start_s, cap, color="0.85", lw=0)
        ax1.set_ylabel("capacity\n(Mbit/s)")
        ax1.set_title(f"episode {episode}: {world.trace_names[trace_index]} from {start_s:.1f} s")
        for j, n in enumerate(names):
            d = ep[ep["policy"] == n]
            if d.empty:
                continue
            s = styles[n]
            jitter = (j - (len(names) - 1) / 2) * 0.08
            x = d["t_s"].to_numpy(dtype=float) - start_s
            y = d["action"].to_numpy(dtype=float) + jitter
            faint = n == "random"  # random flips every frame: keep it faint
            ax2.step(
                x,
                y,
                where="post",
                lw=0.9,
                color=s.color,
                ls=s.linestyle,
                alpha=0.35 if faint else 1.0,
                label=_short(n, 22),
            )
            _markers(ax2, x, y, s, 8, size=3, alpha=0.35 if faint else 1.0)
        ax2.set_yticks(range(len(mode_labels)), mode_labels, fontsize=6)
        ax2.set_ylabel("mode (k,bits)")
        ax2.set_xlabel("time since episode start (s)")
        ax2.legend(
            handles=_handles([n for n in names if not ep[ep["policy"] == n].empty], styles),
            loc="upper left",
            bbox_to_anchor=(1.01, 1.0),
            frameon=False,
        )
        fig.tight_layout()
        return save(fig, path)


#: labels of the aggregate panels
AGGREGATE_TITLES = {
    "median": "median",
    "iqm": "IQM",
    "mean": "mean",
    "optimality_gap": "optimality gap",
    "prob_improvement": "P(better than baseline)",
}


def aggregate_intervals(table: pd.DataFrame, path: Path, level: float = 0.95) -> list[Path]:
    """rliable's interval-estimate figure: per aggregate (median, IQM, mean, optimality gap,
    probability of improvement), each group's point estimate and stratified-bootstrap interval."""
    groups = [str(g) for g in table["group"]]
    styles = policy_styles(groups)
    aggs = [a for a in AGGREGATE_TITLES if a in table.columns and table[a].notna().any()]
    metric = str(table["metric"].iloc[0]) if "metric" in table.columns and len(table) else ""
    with _style() as plt:
        fig, axes = plt.subplots(
            1,
            len(aggs),
            figsize=(7.0, max(1.6, 0.26 * len(groups) + 0.9)),
            sharey=True,
            squeeze=False,
        )
        for ax, a in zip(axes[0], aggs, strict=True):
            mid = _col(table, a)
            low, high = _col(table, f"{a}_ci_low"), _col(table, f"{a}_ci_high")
            title = AGGREGATE_TITLES[a]
            if a == "prob_improvement" and "baseline" in table.columns:
                title = f"P(better than\n{_short(str(table['baseline'].iloc[0]), 18)})"
            _bar_panel(ax, groups, styles, mid, low, high, title, bars=False, clip=False)
            if a == "prob_improvement":
                ax.axvline(0.5, color="0.3", lw=0.8, ls="--")
        axes[0][0].set_yticks(np.arange(len(groups)), [_short(g) for g in groups])
        axes[0][0].invert_yaxis()
        fig.supxlabel(f"{metric}, {100 * level:g} % stratified-bootstrap intervals", fontsize=7)
        fig.tight_layout()
        return save(fig, path)


def performance_profile(profile: pd.DataFrame, path: Path, metric: str = "score") -> list[Path]:
    """Fraction of (run, episode) scores above each threshold, per group, with interval bands."""
    groups = list(dict.fromkeys(str(g) for g in profile["group"]))
    styles = policy_styles(groups)
    with _style() as plt:
        fig, ax = plt.subplots(figsize=(3.5, 2.6))
        for g in groups:
            d = profile[profile["group"] == g].sort_values("tau")
            s = styles[g]
            x, y = d["tau"].to_numpy(float), d["fraction"].to_numpy(float)
            ax.fill_between(x, d["ci_low"], d["ci_high"], color=s.color, alpha=0.18, lw=0)
            ax.plot(x, y, color=s.color, ls=s.linestyle, lw=1.2)
            _markers(ax, x, y, s, 7)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel(
            "normalised score tau (1: offline optimum)" if metric == "score" else f"{metric} tau"
        )
        ax.set_ylabel("fraction of runs x episodes > tau")
        _legend(ax, len(groups), _handles(groups, styles), loc="best")
        fig.tight_layout()
        return save(fig, path)


def _markers(ax: Any, x: np.ndarray, y: np.ndarray, style: Any, n: int, size: float = 3.5,
             alpha: float = 1.0) -> None:  # fmt: skip
    """About ``n`` markers spread along a line (tells lines apart in grey print)."""
    every = max(1, len(x) // n)
    ax.plot(x[every // 2 :: every], y[every // 2 :: every], ls="none", marker=style.marker,
            color=style.color, markersize=size, markeredgecolor="black", markeredgewidth=0.3,
            alpha=alpha)  # fmt: skip
