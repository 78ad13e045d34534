"""Evaluation: same episodes for every policy, hand-checked static rows, the optimum as ceiling,
paired statistics, outputs."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from slimrl.cli import main
from slimrl.env.slimsplit import FRAME_INFO_KEYS
from slimrl.evaluate import plan_episodes, print_summary, run_evaluation
from slimrl.evaluate.metrics import SUMMARY_COLUMNS
from slimrl.paths import shipped_scenarios
from slimrl.policies import POLICIES

FAST = {"episode_s": 15}
RPI4 = {1: 100.0, 2: 173.0, 3: 246.0, 4: 321.0}
ACC = {  # the shipped model profile's accuracy per (k, bits)
    (1, 1): 0.145,
    (1, 4): 0.343,
    (2, 2): 0.294,
    (2, 4): 0.361,
    (3, 4): 0.364,
    (4, 4): 0.368,
}


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "xdg"))


@pytest.fixture()
def const_setup(tmp_path):
    """A 20 s constant 8 Mbit/s trace, a jitter-free device, no edge load, fixed service."""
    traces = tmp_path / "traces"
    traces.mkdir()
    (traces / "const.csv").write_text("time_s,mbps\n0,8\n20,\n")
    dev = tmp_path / "dev.yaml"
    dev.write_text(
        "compute:\n  mean_ms: {1: 100, 2: 173, 3: 246, 4: 321}\n  jitter_ms: 0\n"
        "  power_w: 3.7\nradio: {base_w: 1.28804, alpha_w_per_mbps: 0.43839}\n"
    )
    sets = [f"device.profile={dev}", "edge.load=null", "edge.service.p90_ms=56"]
    return traces, sets


def hand_static(k: int, bits: int, duration_s: float = 20.0) -> dict:
    """One frame of mode (k, bits) on the constant trace, by hand, and the frame count."""
    payload = 6912 * bits
    c = RPI4[k]
    tx_s = payload / 1e6
    e2e = c + tx_s * 1000 + 2 * 20 + 56
    on = e2e <= 300
    energy = 3.7e-3 * c + 1.28804 * tx_s + 0.43839 * 8e-6 * payload
    reward = (ACC[(k, bits)] if on else -0.5 * e2e / 300) - 0.05 * energy
    busy_ms = math.ceil(e2e)  # frames start on the 1 ms grid
    frames = math.ceil(duration_s * 1000 / busy_ms)  # every frame that starts before the end
    return {"reward": reward, "e2e": e2e, "on": on, "energy": energy, "frames": frames}


def test_static_rows_match_hand_computation(const_setup, tmp_path, capsys):
    traces, sets = const_setup
    out = tmp_path / "out"
    modes = ["static:1,1", "static:1,4", "static:2,2", "static:2,4", "static:3,4", "static:4,4"]
    args = ["evaluate", "--env", "default", "--traces", str(traces), "--out", str(out),
            "--policies", *modes, "--no-progress"]  # fmt: skip
    for s in sets:
        args += ["--set", s]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "static:3,4" in printed and "optimal" in printed and "oracle" in printed
    df = pd.read_csv(out / "summary.csv").set_index("policy")
    for name in modes:
        k, b = (int(v) for v in name.split(":")[1].split(","))
        h = hand_static(k, b)
        row = df.loc[name]
        assert row["reward_mean"] == pytest.approx(h["reward"], abs=1e-12)
        assert row["reward_per_s"] == pytest.approx(h["reward"] * h["frames"] / 20.0, abs=1e-9)
        assert row["e2e_p50_ms"] == pytest.approx(h["e2e"], abs=1e-9)
        assert row["e2e_p95_ms"] == pytest.approx(h["e2e"], abs=1e-9)
        assert row["energy_j_mean"] == pytest.approx(h["energy"], abs=1e-12)
        assert row["on_time_rate"] == (1.0 if h["on"] else 0.0)
        assert row["accuracy_mean"] == pytest.approx(ACC[(k, b)])
        assert row["frames"] == h["frames"] and row["episodes"] == 1
    # the optimum is the ceiling and scores 1; everything else scores below
    r = df["reward_per_s"]
    assert (r["optimal"] >= r.drop("optimal") - 1e-12).all()
    assert df.loc["optimal", "score"] == pytest.approx(1.0) and bool(df.loc["optimal", "reference"])
    assert (df["score"].drop("optimal") <= 1.0 + 1e-12).all()


def test_outputs_and_same_episodes(tmp_path):
    out = tmp_path / "eval"
    pols = ["paper-ewma", "rate-threshold", "mpc", "random", "static:2,2"]
    df = run_evaluation(
        "default", "train", pols, out, episodes=4, seed=3, overrides=FAST, progress=False
    )
    assert list(df.columns[: len(SUMMARY_COLUMNS)]) == list(SUMMARY_COLUMNS)
    assert list(df["policy"]) == [*pols, "optimal", "oracle", df["policy"].iloc[-1]]
    assert df["policy"].iloc[-1].startswith("static:") and df["reference"].iloc[-1]
    # the paired baseline is the best heuristic evaluated; its own row says so
    baseline = df["baseline"].iloc[0]
    assert baseline in ("rate-threshold", "mpc", "paper-ewma")
    b = df.set_index("policy").loc[baseline]
    assert np.isnan(b["diff_per_s"]) or b["diff_per_s"] == 0.0
    for f in [
        "summary.csv",
        "per_trace.csv",
        "per_step.parquet",
        "evaluation.json",
        "reward_score.png",
        "latency_cdf.png",
        "accuracy_energy.png",
        "timeline.png",
    ]:
        assert (out / f).is_file(), f  # fmt: skip
    for png in out.glob("*.png"):
        assert png.read_bytes()[:4] == b"\x89PNG"
    assert not list(tmp_path.glob(".*.tmp"))
    steps = pd.read_parquet(out / "per_step.parquet")
    for col in ["policy", "episode", "trace", "step", "action", "reward", *FRAME_INFO_KEYS]:
        assert col in steps.columns, col
    assert np.allclose(
        steps["reward"], steps[["reward_accuracy", "reward_miss", "reward_energy"]].sum(axis=1)
    )
    # every policy replays the same episodes: trace and start time
    first = steps[steps["step"] == 0]
    for _e, g in first.groupby("episode"):
        assert g["trace"].nunique() == 1 and g["t_s"].nunique() == 1
    # common random numbers: the same instant and the same k means the same compute jitter
    same = steps.groupby(["episode", "t_s", "k"])["compute_ms"].nunique()
    assert (same == 1).all() and (steps.groupby(["episode", "t_s"]).size() > 1).any()
    pt = pd.read_csv(out / "per_trace.csv")
    assert set(pt["policy"]) == set(df["policy"])
    assert (
        pt.groupby("policy")["frames"].sum().to_dict() == df.set_index("policy")["frames"].to_dict()
    )
    meta = json.loads((out / "evaluation.json").read_text())
    assert meta["episodes"] == 4 and len(meta["plan"]["seeds"]) == 4
    assert meta["span_s"] == [15.0] * 4
    # deterministic: the same call gives the same numbers
    again = run_evaluation(
        "default", "train", pols, None, episodes=4, seed=3, overrides=FAST, progress=False
    )
    pd.testing.assert_frame_equal(df, again)


SHIPPED = shipped_scenarios()  # every scenario in envs/


@pytest.mark.parametrize("arrival", ["closed", "periodic"])
@pytest.mark.parametrize("scenario", SHIPPED)
def test_optimal_is_the_ceiling_on_every_episode(scenario, arrival):
    """No shipped policy beats the offline optimum on any episode, in both arrival modes."""
    from slimrl.env.vector import SlimSplitVectorEnv
    from slimrl.evaluate.rollout import simulate
    from slimrl.policies import make_policy, static_names
    from slimrl.scenario import load_scenario

    over = {"episode_s": 8, "arrival": {"mode": arrival}}
    if arrival == "periodic":
        over["arrival"]["fps"] = 1000.0 / load_scenario(scenario).deadline_ms
    sc = load_scenario(scenario, over)

    def make_env(n):
        return SlimSplitVectorEnv(n, sc, split="test", action_space="flat")

    probe = make_env(1)
    names = ["optimal", "oracle", "paper-ewma", "rate-threshold", "mpc", "random",
             "rate-threshold:window=2,margin=0.7", "mpc:window=3,margin=0.8",
             *static_names(probe)]  # fmt: skip
    pols = [make_policy(n, probe) for n in names]
    plan = plan_episodes(probe.world, 4, seed=hash(scenario) % 100)
    totals = simulate(make_env, pols, plan, keep_steps=False).totals["reward"]  # (P, E)
    gap = totals[0][None, :] - totals[1:]
    assert (gap >= -1e-9).all(), dict(zip(names[1:], gap.min(axis=1), strict=True))


def test_full_trace_folder_and_episodes(tmp_path):
    traces = tmp_path / "tr"
    traces.mkdir()
    (traces / "a.csv").write_text("time_s,mbps\n0,2\n5,0.5\n10,\n")
    (traces / "b.csv").write_text("time_s,mbps\n0,4\n6,\n")
    df = run_evaluation("default", traces, ["rate-threshold"], tmp_path / "o", progress=False)
    steps = pd.read_parquet(tmp_path / "o" / "per_step.parquet")
    assert df.set_index("policy").loc["rate-threshold", "episodes"] == 2
    end = steps.groupby(["policy", "trace"]).apply(
        lambda g: g["t_s"].iloc[-1] + g["e2e_ms"].iloc[-1] / 1e3, include_groups=False
    )
    dur = {"a.csv": 10.0, "b.csv": 6.0}
    for (_p, tr), t_end in end.items():
        assert t_end >= dur[tr] - 0.001
    assert (steps.groupby(["policy", "episode"])["t_s"].min() == 0.0).all()
    # --episodes on a folder: random start offsets, fixed-length episodes
    df = run_evaluation(
        "default",
        traces,
        ["rate-threshold"],
        None,
        episodes=3,
        overrides={"episode_s": 5},
        progress=False,
    )
    assert (df["episodes"] == 3).all()


def test_plan_is_the_same_for_every_call():
    from slimrl.env.vector import SlimSplitVectorEnv

    w = SlimSplitVectorEnv(1, "default", split="train").world
    a, b = plan_episodes(w, 8, seed=1), plan_episodes(w, 8, seed=1)
    assert a == b and len(a) == 8 and not a.full_trace
    # the datasets take turns: 4 training datasets, each twice
    ds = [w.traces.datasets[i] for i in a.trace_index]
    assert ds[:4] == ["mahimahi", "norway-3g", "fcc", "oboe"] and ds[4:] == ds[:4]
    assert a.trace_index[0] != a.trace_index[4]  # the next trace of the dataset
    assert all(0 <= s < w.durations[i] for s, i in zip(a.start_s, a.trace_index, strict=True))
    assert plan_episodes(w, 8, seed=2).seeds != a.seeds


def _one_line_error(capsys, args, out):
    rc = main(args)
    cap = capsys.readouterr()
    assert rc == 2, cap.err
    lines = cap.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in cap.err, cap.err
    assert not out.exists()
    assert not list(out.parent.glob(f".{out.name}*"))
    return lines[0]


def test_cli_errors_exit_2_without_output(tmp_path, capsys):
    out = tmp_path / "out"
    base = ["evaluate", "--env", "default", "--out", str(out), "--no-progress"]
    msg = _one_line_error(capsys, [*base, "--traces", "test", "--policies", "no-such"], out)
    assert "no-such" in msg
    empty = tmp_path / "empty"
    empty.mkdir()
    msg = _one_line_error(capsys, [*base, "--traces", str(empty), "--policies", "oracle"], out)
    assert "empty" in msg
    msg = _one_line_error(capsys, [*base, "--traces", "nosplit", "--policies", "oracle"], out)
    assert "nosplit" in msg
    for bad in ["deadline_ms=abc", "nokey", "reward.nope=1"]:
        args = [*base, "--traces", "test", "--policies", "oracle", "--set", bad]
        msg = _one_line_error(capsys, args, out)
    _one_line_error(capsys, [*base, "--policies", "oracle", "--episodes", "0"], out)


def test_print_summary_and_api(capsys):
    df = run_evaluation(
        "default", "test", ["paper-ewma"], None, episodes=2, overrides=FAST, progress=False
    )
    print_summary(df, title="t")
    out = capsys.readouterr().out
    assert "paper-ewma" in out and "oracle" in out and "(ref)" in out
    assert math.isfinite(df.set_index("policy").loc["paper-ewma", "score"])
    assert "tuned-threshold" in POLICIES
