"""``slimrl calibrate``: fit a scenario to a device log, and the closed-loop comparison.

The "real" run here is the simulator itself on a known world (a Bluetooth-like link: latency plus
bytes over a capacity trace), logged like a device run, so the fit can be checked against the
truth without a device (bench/fidelity.py closes the loop with the real edge server and device)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from slimrl.cli import main
from slimrl.env.slimsplit import SlimSplitEnv
from slimrl.errors import SlimrlError
from slimrl.paths import TRACES_DIR
from slimrl.policies import make_policy
from slimrl.runtime.calibrate import calibrate
from slimrl.runtime.compare import closed_loop, closed_loop_log, run_figures
from slimrl.scenario import load_scenario
from slimrl.traces import load_trace

TRUTH = {
    "traces.scale": 1.0,
    "link.latency": {"median_ms": 8, "p90_ms": 14},
    "link.answer_latency": {"fixed_ms": 5},
    "deadline_ms": 200,
    "episode_s": 60,
}


def _trace(tmp_path):
    tr = load_trace(TRACES_DIR / "bluetooth-synthetic" / "1m" / "bt-1m-2.csv").scaled(0.01)
    path = tmp_path / "link.csv"
    tr.to_csv(path)
    return path


def _log(tmp_path, trace, policy="random", name="run", start=30.0):
    """A run of ``policy`` in the true world, written as a device log (+ meta)."""
    sc = load_scenario("fmnist-iot", TRUTH)
    env = SlimSplitEnv(sc, trace_dir=trace, split=None, action_space="flat")
    pol = make_policy(policy, env, seed=0)
    obs, info = env.reset(seed=3, options={"trace_index": 0, "start_s": start})
    pol.reset()
    lines, trunc, i = [], False, 0
    while not trunc:
        a = pol.act(obs, info)
        obs, _r, _t, trunc, info = env.step(a)
        rec = {k: info[k] for k in ("k", "bits", "compute_ms", "transfer_ms", "edge_ms",
                                    "edge_queue_ms", "e2e_ms", "t_s")}  # fmt: skip
        rec.update(frame=i, bytes=int(info["bytes"]), on_time=bool(info["on_time"]), correct=True,
                   label=0, prediction=0, image=0, decide_us=1.0, error=None)  # fmt: skip
        lines.append(json.dumps({k: (float(v) if isinstance(v, np.floating) else v)
                                 for k, v in rec.items()}, default=int))  # fmt: skip
        i += 1
    log = tmp_path / f"{name}.jsonl"
    log.write_text("\n".join(lines) + "\n")
    meta = {"policy": policy, "trace": str(trace), "trace_scale": 1.0, "deadline_ms": 200.0,
            "scenario": "fmnist-iot", "seed": 0}  # fmt: skip
    (tmp_path / f"{name}.jsonl.meta.json").write_text(json.dumps(meta))
    return log, sc


def test_fit_recovers_the_link_and_reproduces_other_policies(tmp_path):
    trace = _trace(tmp_path)
    log, truth = _log(tmp_path, trace)
    base = load_scenario("fmnist-iot", {"deadline_ms": 200})
    cal = calibrate(log, base, tmp_path / "cal.yaml")
    # lognormal(8, p90 14): mean 8.8 ms
    assert cal.latency_ms == pytest.approx(8.8, abs=1.5) and cal.latency_fitted
    assert cal.answer_ms == pytest.approx(5.0, abs=1e-3)
    assert cal.delivery == pytest.approx(1.0, abs=0.05)  # the simulator delivers its trace
    fitted = load_trace(cal.trace_path)
    true = load_trace(trace)
    t = np.arange(32.0, 88.0, 0.5)
    rel = np.abs(fitted.capacity_at(t) / true.capacity_at(t) - 1.0)
    assert np.median(rel) < 0.15
    sc = load_scenario(cal.scenario_path)
    assert sc.edge.load is None and sc.link.base_delay_ms == 0 and sc.deadline_ms == 200
    # predict runs of other policies on the true capacity trace: close to the truth
    for policy in ("static:1,4", "rate-threshold", "paper-ewma"):
        want = closed_loop(truth, trace, policy, 30.0, 60.0, keys=4)
        got = closed_loop(sc, trace, policy, 30.0, 60.0, keys=4)
        assert abs(got["on_time"] - want["on_time"]) < 0.05, policy
        assert got["e2e_p50_ms"] == pytest.approx(want["e2e_p50_ms"], rel=0.1), policy


def test_closed_loop_log_row_and_cli(tmp_path, capsys):
    trace = _trace(tmp_path)
    log, truth = _log(tmp_path, trace, policy="rate-threshold", name="rt")
    row = closed_loop_log(log, truth, keys=3)
    meas = run_figures([json.loads(x) for x in log.read_text().splitlines()])
    assert row["on_time_measured"] == meas["on_time"] and row["policy"] == "rate-threshold"
    assert abs(row["on_time_error"]) < 0.08 and abs(row["e2e_p50_error"]) < 0.1
    out = tmp_path / "fit" / "mine.yaml"
    assert main(["calibrate", str(log), "--out", str(out), "--keys", "2"]) == 0
    text = capsys.readouterr().out
    assert "mine.trace.csv" in text and "rate-threshold" in text and "on time" in text
    assert (tmp_path / "fit" / "mine.samples.csv").is_file()
    summary = tmp_path / "s.csv"
    fitted = str(tmp_path / "fit" / "mine.trace.csv")
    rc = main(["device", "compare", str(log), "--env", str(out), "--trace", fitted,
               "--keys", "2", "--summary", str(summary)])  # fmt: skip
    assert rc == 0 and "closed loop" in capsys.readouterr().out
    assert summary.read_text().startswith("log,policy,frames_measured")


def test_one_payload_size_needs_a_given_latency(tmp_path):
    trace = _trace(tmp_path)
    log, _ = _log(tmp_path, trace, policy="static:2,2", name="static")
    base = load_scenario("fmnist-iot", {"deadline_ms": 200})
    with pytest.raises(SlimrlError, match="--latency-ms"):
        calibrate(log, base, tmp_path / "x.yaml")
    cal = calibrate(log, base, tmp_path / "y.yaml", latency_ms=8.8)
    assert not cal.latency_fitted and cal.modes_measured == 1 and cal.modes_filled == 15
    lat = load_scenario(cal.scenario_path).link.latency.samples.data.values
    assert lat.mean() == pytest.approx(8.8, abs=1.5)
