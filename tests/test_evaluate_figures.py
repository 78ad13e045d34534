"""Paper figures (PNG 300 dpi + PDF + SVG, greyscale-safe styles, clipped outliers, log CDFs) and
rliable-style aggregates across evaluation folders."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from slimrl.errors import PolicyError
from slimrl.evaluate import plots as P
from slimrl.evaluate import run_evaluation
from slimrl.evaluate.aggregate import COLUMNS, aggregate_evaluations

FAST = {"episode_s": 16}
STATICS = ("static:1,2", "static:2,1")


@pytest.fixture(scope="module")
def evals(tmp_path_factory):
    """Two evaluation folders on the same episodes (one static mode each, as two "seeds")."""
    root = tmp_path_factory.mktemp("evals")
    out = []
    for i, st in enumerate(STATICS):
        d = root / f"ev{i}"
        run_evaluation("default", "val", ["paper-ewma", "rate-threshold", st], d, episodes=4,
                       seed=0, overrides=FAST, progress=False, plots=i == 0)  # fmt: skip
        out.append(d)
    return out


def _svg_text(path) -> str:
    return " ".join(re.findall(r">([^<>]+)</text>", path.read_text()))


def test_every_figure_is_png_300_dpi_pdf_and_svg(evals):
    from PIL import Image

    out = evals[0]
    for png in P.PLOT_FILES:
        stem = (out / png).with_suffix("")
        with Image.open(stem.with_suffix(".png")) as im:
            assert round(im.info["dpi"][0]) == 300
        pdf = stem.with_suffix(".pdf").read_bytes()
        assert pdf.startswith(b"%PDF") and b"/Type3" not in pdf  # TrueType fonts, not Type 3
        svg = stem.with_suffix(".svg")
        assert svg.read_text().lstrip().startswith("<?xml") and _svg_text(svg)  # text as text
    text = _svg_text(out / "reward_score.svg")
    assert "reward per second" in text and "difference to" in text and "(baseline)" in text


def test_styles_tell_policies_apart_without_colour():
    names = [f"p{i}" for i in range(10)] + ["optimal", "oracle", "static:1,1"]
    styles = P.policy_styles(names)
    own = [styles[n] for n in names[:10]]
    assert len({(s.marker, str(s.linestyle), s.hatch) for s in own}) == 10
    assert len({s.marker for s in own}) == 10 and {s.color for s in own} <= set(P.PALETTE)
    assert styles["optimal"].color == "#000000" and styles["static:1,1"].color == "#999999"


def test_one_very_bad_policy_is_clipped_not_squashing_the_rest(tmp_path):
    lo, hi, clipped = P.robust_limits(np.array([-0.5, -0.55, -0.6, -14.4, 0.1]))
    assert clipped.tolist() == [False, False, False, True, False] and -1.0 < lo < -0.6
    assert not P.robust_limits(np.array([-1.5, -0.5, -1.7, -1.8, -0.53]))[2].any()
    assert not P.robust_limits(np.array([0.85, 0.86, 0.88]))[2].any()
    summary = pd.DataFrame(
        {
            "policy": ["a", "b", "broken", "optimal"],
            "reward_per_s": [-0.5, -0.55, -14.4, -0.1],
            "score": [0.1, 0.0, -40.0, 1.0],
            "baseline": "a",
            "diff_per_s": [0.0, -0.05, -13.9, 0.4],
        }
    )
    for k in ("reward", "score", "diff"):
        mid = summary["reward_per_s" if k == "reward" else f"{k}_per_s" if k == "diff" else k]
        summary[f"{k}_ci_low"], summary[f"{k}_ci_high"] = mid - 0.05, mid + 0.05
    paths = P.reward_score_bars(summary, tmp_path / "bars.png")
    assert [p.suffix for p in paths] == [".png", ".pdf", ".svg"]
    text = _svg_text(tmp_path / "bars.svg")
    assert "-14.4 (off scale)" in text and "-40 (off scale)" in text and "-13.9 (off scale)" in text


def test_latency_cdf_goes_log_when_latencies_span_decades(tmp_path):
    rng = np.random.default_rng(0)
    assert P.wants_log_axis(np.geomspace(10, 10_000, 500))
    assert not P.wants_log_axis(rng.uniform(200, 400, 500))
    steps = pd.DataFrame(
        {"policy": np.repeat(["a", "b"], 500),
         "e2e_ms": np.concatenate([np.geomspace(10, 10_000, 500), rng.uniform(200, 400, 500)])}
    )  # fmt: skip
    P.latency_cdf(steps, ["a", "b"], 300.0, tmp_path / "cdf.png")
    assert "log scale" in _svg_text(tmp_path / "cdf.svg")
    P.latency_cdf(steps[steps["policy"] == "b"], ["b"], 300.0, tmp_path / "lin.png")
    assert "log scale" not in _svg_text(tmp_path / "lin.svg")


def test_aggregate_across_folders(evals, tmp_path):
    groups = {st: "static" for st in STATICS}
    out = tmp_path / "agg"
    table = aggregate_evaluations(evals, out, groups=groups, n_boot=300, seed=1)
    assert list(table.columns) == list(COLUMNS)
    t = table.set_index("group")
    assert list(t.index) == ["paper-ewma", "rate-threshold", "static"]
    assert (t["runs"] == 2).all() and (t["episodes"] == 4).all()
    assert set(t.loc["static", "policies"].split()) == set(STATICS)
    for a in ("iqm", "mean", "median", "optimality_gap", "prob_improvement"):
        assert (t[f"{a}_ci_low"] <= t[a] + 1e-9).all() and (t[a] <= t[f"{a}_ci_high"] + 1e-9).all()
    # equal spans: the mean per-episode score is the summary's score
    summary = pd.read_csv(evals[0] / "summary.csv").set_index("policy")
    assert t.loc["rate-threshold", "mean"] == pytest.approx(summary.loc["rate-threshold", "score"])
    base = str(summary["baseline"].iloc[0])
    assert t.loc[base, "prob_improvement"] == 0.5 and (t["baseline"] == base).all()
    # the IQM is scipy's trimmed mean of the pooled (run, episode) scores
    score_of = {}
    for d in evals:
        rates = (
            pd.read_parquet(d / "per_step.parquet").groupby(["policy", "episode"])["reward"].sum()
        )
        s = pd.read_csv(d / "summary.csv").set_index("policy")["reward_per_s"]
        static = json.loads((d / "evaluation.json").read_text())["best_static"]
        span = 16.0
        score_of[d] = (rates["paper-ewma"] / span - s[static]) / (s["optimal"] - s[static])
    pooled = np.concatenate([v.to_numpy() for v in score_of.values()])
    assert t.loc["paper-ewma", "iqm"] == pytest.approx(stats.trim_mean(pooled, 0.25), rel=1e-6)
    prof = pd.read_csv(out / "performance_profile.csv")
    for _, g in prof.groupby("group"):
        assert (np.diff(g.sort_values("tau")["fraction"]) <= 1e-12).all()
    for stem in ("aggregate_intervals", "performance_profile"):
        for ext in ("png", "pdf", "svg"):
            assert (out / f"{stem}.{ext}").is_file()
    assert (out / "aggregate.csv").is_file() and (out / "aggregate.json").is_file()


def test_aggregate_refuses_folders_of_other_episodes(evals, tmp_path):
    other = tmp_path / "other"
    run_evaluation("default", "val", ["paper-ewma"], other, episodes=4, seed=5, overrides=FAST,
                   progress=False, plots=False)  # fmt: skip
    with pytest.raises(PolicyError, match="episodes differ"):
        aggregate_evaluations([evals[0], other], plots=False)
    with pytest.raises(PolicyError, match="metric"):
        aggregate_evaluations(evals, metric="accuracy")
    shutil.copytree(evals[0], tmp_path / "broken")
    (tmp_path / "broken" / "per_step.parquet").unlink()
    with pytest.raises(PolicyError, match="per_step.parquet: missing"):
        aggregate_evaluations([tmp_path / "broken"])


def test_aggregate_command_line(evals, tmp_path, capsys):
    from slimrl.evaluate.aggregate import main

    argv = [*map(str, evals), "--out", str(tmp_path / "a"), "--n-boot", "100", "--no-plots",
            "--group", f"{STATICS[0]}=static", "--group", f"{STATICS[1]}=static"]  # fmt: skip
    assert main(argv) == 0
    assert "static" in capsys.readouterr().out
    assert set(pd.read_csv(tmp_path / "a" / "aggregate.csv")["group"]) >= {"static", "paper-ewma"}
    assert main([str(evals[0]), "--out", str(tmp_path / "b"), "--baseline", "nope"]) == 2
    assert "baseline 'nope'" in capsys.readouterr().err
