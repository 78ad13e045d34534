"""Load test of the edge server: N concurrent device clients on loopback.

    python bench/edge_load.py [--clients 8] [--seconds 60] [--model PATH]

Starts `slimrl edge serve` in its own process (shipped weights, or --model; an untrained model
if no weights are shipped yet), pre-encodes test images in random modes, and lets every client
send them back to back over its own connection. Every answer is checked: its request id, and
its prediction against a local decode of the same payload. Prints requests/s, the server's
latency (queue + compute, as it reports) and the client round trip, p50/p99, and the lost and
mixed-up answers.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from slimrl.runtime.edge_client import EdgeClient, EdgeRejected, EdgeUnavailable


def start_server(model: Path | None, threads: int) -> tuple[subprocess.Popen, int]:
    cmd = [
        sys.executable,
        "-m",
        "slimrl.cli",
        "edge",
        "serve",
        "--port",
        "0",
        "--threads",
        str(threads),
    ]
    if model is not None:
        cmd += ["--model", str(model)]
    proc = subprocess.Popen(
        cmd, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"}
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if "listening on" in line:
            threading.Thread(target=proc.stderr.read, daemon=True).start()  # drain
            return proc, int(line.rsplit(":", 1)[1])
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise SystemExit("edge server did not start")


def payload_pool(model, n: int, seed: int) -> list[tuple[bytes, int]]:
    """``n`` (payload, locally decoded class) pairs of test images in random modes."""
    from slimrl.errors import DataError
    from slimrl.model.data import load_fashion_mnist

    rng = np.random.default_rng(seed)
    try:
        images = load_fashion_mnist("test").images[:n]
    except DataError:
        images = (rng.random((n, 28, 28)) * 255).astype(np.uint8)
    pool = []
    for i in range(n):
        k, bits = model.modes[rng.integers(len(model.modes))]
        model.set_mode(k, bits)
        p = model.encode(images[i : i + 1])[0]
        pool.append((p, int(np.argmax(model.decode(p)))))
    return pool


def client(port: int, pool, stop_at: float, out: dict, idx: int) -> None:
    c = EdgeClient("127.0.0.1", port, connect_timeout_s=2, io_timeout_s=10)
    rid = idx << 24
    server_ms, rtt_ms = [], []
    lost = wrong = 0
    i = idx
    while time.perf_counter() < stop_at:
        payload, expected = pool[i % len(pool)]
        i += 1
        rid += 1
        t0 = time.perf_counter()
        try:
            r = c.request(rid, payload).response
        except (EdgeUnavailable, EdgeRejected):
            lost += 1  # the client also raises on a mismatched request id
            continue
        rtt_ms.append((time.perf_counter() - t0) * 1e3)
        server_ms.append(r.queue_ms + r.compute_ms)
        wrong += r.prediction != expected or r.request_id != rid
    c.close()
    out[idx] = (server_ms, rtt_ms, lost, wrong)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--threads", type=int, default=1, help="torch threads of the edge worker")
    ap.add_argument("--pool", type=int, default=512, help="distinct payloads")
    args = ap.parse_args()

    import torch

    from slimrl.model.checkpoint import DEFAULT_WEIGHTS, load_model, save_model
    from slimrl.model.network import SlimmableSplitModel

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        path, note = args.model, ""
        if path is None and not DEFAULT_WEIGHTS.is_file():
            path = save_model(SlimmableSplitModel().eval(), Path(tmp) / "untrained.pt")
            note = " (no shipped weights yet: an untrained model of the same architecture)"
        model = load_model(path or DEFAULT_WEIGHTS)
        pool = payload_pool(model, args.pool, seed=0)
        proc, port = start_server(path, args.threads)
        try:
            results: dict = {}
            stop_at = time.perf_counter() + args.seconds
            threads = [
                threading.Thread(target=client, args=(port, pool, stop_at, results, i))
                for i in range(args.clients)
            ]
            t0 = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join(args.seconds + 60)
            elapsed = time.perf_counter() - t0
        finally:
            proc.terminate()
            proc.wait(20)

    server = np.concatenate([np.asarray(r[0]) for r in results.values()])
    rtt = np.concatenate([np.asarray(r[1]) for r in results.values()])
    lost = sum(r[2] for r in results.values()) + args.clients - len(results)
    wrong = sum(r[3] for r in results.values())
    print(
        f"edge server, model {path or DEFAULT_WEIGHTS}{note}; {args.clients} clients, "
        f"{elapsed:.1f} s on loopback, {args.threads} torch thread(s), {os.cpu_count()} CPUs"
    )
    print(f"served           {len(server):,} requests, {len(server) / elapsed:,.0f} per second")
    print(
        f"server latency   p50 {np.percentile(server, 50):.2f} ms, "
        f"p99 {np.percentile(server, 99):.2f} ms (queue + compute, as reported)"
    )
    print(
        f"client round trip p50 {np.percentile(rtt, 50):.2f} ms, "
        f"p99 {np.percentile(rtt, 99):.2f} ms"
    )
    print(f"lost answers     {lost}")
    print(f"mixed-up answers {wrong} (request id or prediction differs from a local decode)")
    if lost or wrong:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
