"""The summary as a rich table in the terminal."""

from __future__ import annotations

import math

import pandas as pd


def _fmt(v: float, spec: str) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def print_summary(df: pd.DataFrame, title: str | None = None, console=None) -> None:
    """Print a summary DataFrame (as returned by ``run_evaluation``) as a rich table."""
    from rich.console import Console
    from rich.table import Table

    if console is None:
        console = Console()
        if not console.is_terminal:  # pipes and logs: do not squeeze the table into 80 columns
            console = Console(width=160)
    table = Table(title=title, show_lines=False)
    cols = [
        ("policy", "left"),
        ("reward/s", "right"),
        ("95% CI", "right"),
        ("score", "right"),
        ("vs baseline /s [95% CI]", "right"),
        ("accuracy", "right"),
        ("on time", "right"),
        ("e2e p50 ms", "right"),
        ("e2e p95 ms", "right"),
        ("energy J", "right"),
        ("frames", "right"),
    ]
    for name, justify in cols:
        table.add_column(name, justify=justify, no_wrap=name != "policy")
    for _, r in df.iterrows():
        name = str(r["policy"])
        if bool(r.get("reference", False)):
            name += " [dim](ref)[/dim]"
        ci = "-"
        if "reward_ci_low" in r and not math.isnan(r["reward_ci_low"]):
            ci = f"[{r['reward_ci_low']:.3f}, {r['reward_ci_high']:.3f}]"
        diff = "(baseline)" if r.get("baseline") == r["policy"] else "-"
        if diff == "-" and not math.isnan(r.get("diff_per_s", math.nan)):
            diff = f"{r['diff_per_s']:+.3f} [{r['diff_ci_low']:+.3f}, {r['diff_ci_high']:+.3f}]"
        table.add_row(
            name,
            _fmt(r["reward_per_s"], ".4f"),
            ci,
            _fmt(r["score"], ".3f"),
            diff,
            _fmt(r["accuracy_mean"], ".4f"),
            _fmt(100 * r["on_time_rate"], ".1f") + " %",
            _fmt(r["e2e_p50_ms"], ".0f"),
            _fmt(r["e2e_p95_ms"], ".0f"),
            _fmt(r["energy_j_mean"], ".3f"),
            str(int(r["frames"])),
        )
    console.print(table)
