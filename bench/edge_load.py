"""Load test of the edge server: N concurrent device clients on loopback.

    python bench/edge_load.py [--clients 8] [--seconds 60] [--model PATH] [--attack]

Starts `slimrl edge serve` in its own process (shipped weights, or --model; an untrained model
if no weights are shipped yet), pre-encodes test images in random modes, and lets every client
send them back to back over its own connection. Every answer is checked: its request id, and
its prediction against a local decode of the same payload. Prints requests/s, the server's
latency (queue + compute, as it reports) and the client round trip, p50/p99, and the lost and
mixed-up answers.

``--attack`` splits the run in two halves: the real clients alone, then the same clients while
another process attacks the server with idle holders (connect, never send), slow senders (one
byte of a valid frame every few seconds), garbage senders and a connection flood. The real
clients also reconnect every ``--reconnect-every`` requests, so that new connections are measured
under attack too. It prints the real clients' answered rate, throughput and p99 round trip in
both halves and their ratio (attack / alone), what the attackers did, and the server's own
summary and log volume.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from slimrl.runtime.edge_client import EdgeClient, EdgeRejected, EdgeUnavailable
from slimrl.runtime.protocol import FrameType, pack_header


def start_server(
    model: Path | None, threads: int, log: list[str] | None = None
) -> tuple[subprocess.Popen, int]:
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
            keep = log if log is not None else []
            threading.Thread(target=_drain, args=(proc.stderr, keep), daemon=True).start()
            return proc, int(line.rsplit(":", 1)[1])
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise SystemExit("edge server did not start")


def _drain(stream, keep: list[str]) -> None:
    for line in stream:
        keep.append(line.rstrip("\n"))


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


def client(port: int, pool, stop_at: float, out: dict, idx: int, reconnect_every: int = 0) -> None:
    c = EdgeClient("127.0.0.1", port, connect_timeout_s=2, io_timeout_s=10)
    rid = idx << 24
    server_ms, rtt_ms = [], []
    sent: list[tuple[float, float]] = []  # (send time, round trip in ms or NaN when lost)
    lost = wrong = 0
    i = idx
    while time.perf_counter() < stop_at:
        payload, expected = pool[i % len(pool)]
        i += 1
        rid += 1
        if reconnect_every and i % reconnect_every == 0:
            c.close()  # the next request connects afresh
        t0 = time.perf_counter()
        try:
            r = c.request(rid, payload).response
        except (EdgeUnavailable, EdgeRejected):
            lost += 1  # the client also raises on a mismatched request id
            sent.append((t0, float("nan")))
            time.sleep(0.01)  # as a device would back off
            continue
        rtt_ms.append((time.perf_counter() - t0) * 1e3)
        sent.append((t0, rtt_ms[-1]))
        server_ms.append(r.queue_ms + r.compute_ms)
        wrong += r.prediction != expected or r.request_id != rid
    c.close()
    out[idx] = (server_ms, rtt_ms, lost, wrong, sent)


# -- attackers (their own process, so they do not share the real clients' interpreter) ---------
async def _idle_holder(port: int, stop_at: float, stats: dict) -> None:
    while time.time() < stop_at:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            stats["connections"] += 1
            await asyncio.wait_for(reader.read(), max(0.0, stop_at - time.time()))
            writer.close()
        except (OSError, TimeoutError):
            pass
        await asyncio.sleep(0.5)  # then hold another one


async def _slow_sender(port: int, stop_at: float, stats: dict, every_s: float) -> None:
    frame = pack_header(FrameType.REQUEST, 7, 64) + bytes(64)
    while time.time() < stop_at:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            stats["connections"] += 1
            for b in frame:
                if reader.at_eof() or time.time() >= stop_at:
                    break
                writer.write(bytes([b]))
                await writer.drain()
                stats["slow_bytes"] += 1
                await asyncio.sleep(every_s)
            writer.close()
        except OSError:
            pass
        await asyncio.sleep(0.5)


async def _garbage_sender(port: int, stop_at: float, stats: dict) -> None:
    rng = random.Random(port)
    while time.time() < stop_at:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            stats["connections"] += 1
            writer.write(rng.randbytes(rng.randint(1, 256)))
            await writer.drain()
            stats["garbage_frames"] += 1
            await asyncio.wait_for(reader.read(), 2.0)
            writer.close()
        except (OSError, TimeoutError):
            pass
        await asyncio.sleep(0.05)


async def _flood(port: int, stop_at: float, stats: dict, per_s: int) -> None:
    async def one() -> None:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            stats["connections"] += 1
            stats["flood"] += 1
            await asyncio.sleep(0.2)
            writer.close()
        except OSError:
            pass

    tasks = set()
    while time.time() < stop_at:
        for _ in range(max(1, per_s // 10)):
            t = asyncio.ensure_future(one())
            tasks.add(t)
            t.add_done_callback(tasks.discard)
        await asyncio.sleep(0.1)
    await asyncio.gather(*tasks, return_exceptions=True)


def attackers(port: int, start_at: float, stop_at: float, cfg: dict, results) -> None:
    """The attack, from ``start_at`` to ``stop_at`` (wall clock); counts go to ``results``."""

    async def main() -> None:
        await asyncio.sleep(max(0.0, start_at - time.time()))
        stats = dict.fromkeys(("connections", "flood", "slow_bytes", "garbage_frames"), 0)
        jobs = [_idle_holder(port, stop_at, stats) for _ in range(cfg["idle"])]
        jobs += [
            _slow_sender(port, stop_at, stats, cfg["slow_every_s"]) for _ in range(cfg["slow"])
        ]
        jobs += [_garbage_sender(port, stop_at, stats) for _ in range(cfg["garbage"])]
        jobs.append(_flood(port, stop_at, stats, cfg["flood_per_s"]))
        await asyncio.gather(*jobs)
        results.put(stats)

    asyncio.run(main())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--threads", type=int, default=1, help="torch threads of the edge worker")
    ap.add_argument("--pool", type=int, default=512, help="distinct payloads")
    ap.add_argument("--attack", action="store_true", help="second half under attack (see above)")
    ap.add_argument("--idle", type=int, default=300, help="idle holders (--attack)")
    ap.add_argument("--slow", type=int, default=32, help="slow senders (--attack)")
    ap.add_argument("--slow-every-s", type=float, default=2.0, help="a slow sender's byte period")
    ap.add_argument("--garbage", type=int, default=4, help="garbage senders (--attack)")
    ap.add_argument("--flood", type=int, default=150, help="flood connections per second")
    ap.add_argument(
        "--reconnect-every",
        type=int,
        default=None,
        help="real clients reconnect every N requests (default: 50 with --attack, else never)",
    )
    args = ap.parse_args()
    if args.reconnect_every is None:
        args.reconnect_every = 50 if args.attack else 0

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
        server_log: list[str] = []
        proc, port = start_server(path, args.threads, server_log)
        attack = None
        try:
            results: dict = {}
            t0 = time.perf_counter()
            stop_at = t0 + args.seconds
            attack_at = t0 + args.seconds / 2 if args.attack else None
            if args.attack:
                ctx = multiprocessing.get_context("spawn")
                counts = ctx.Queue()
                wall = time.time() - t0
                cfg = {
                    "idle": args.idle,
                    "slow": args.slow,
                    "slow_every_s": args.slow_every_s,
                    "garbage": args.garbage,
                    "flood_per_s": args.flood,
                }
                attack = ctx.Process(
                    target=attackers,
                    args=(port, wall + attack_at, wall + stop_at, cfg, counts),
                    daemon=True,
                )
                attack.start()
            threads = [
                threading.Thread(
                    target=client,
                    args=(port, pool, stop_at, results, i, args.reconnect_every),
                )
                for i in range(args.clients)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join(args.seconds + 60)
            elapsed = time.perf_counter() - t0
            attack_counts = counts.get(timeout=60) if attack is not None else None
            log_lines_before_stop = len(server_log)
        finally:
            if attack is not None:
                attack.join(10)
                if attack.is_alive():
                    attack.kill()
            proc.terminate()
            proc.wait(20)
            time.sleep(0.2)  # the drain thread reads the server's last lines

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
    if args.attack:
        report_attack(results, t0, attack_at, stop_at, args, attack_counts)
        stopped = [x for x in server_log if "edge server stopped" in x]
        print(f"server log       {log_lines_before_stop} lines during the run")
        if stopped:
            print(f"server summary   {stopped[-1].split(' INFO ', 1)[-1]}")
        if wrong:
            raise SystemExit(1)
    elif lost or wrong:
        raise SystemExit(1)


def report_attack(results, t0, attack_at, stop_at, args, counts) -> None:
    """The real clients alone (first half) and under attack (second half), and their ratio."""
    sent = np.array([x for r in results.values() for x in r[4]], dtype=np.float64).reshape(-1, 2)
    rows = {}
    for name, lo, hi in (("alone", t0, attack_at), ("attacked", attack_at, stop_at)):
        part = sent[(sent[:, 0] >= lo) & (sent[:, 0] < hi)]
        ok = part[~np.isnan(part[:, 1]), 1]
        rows[name] = (
            len(ok) / len(part) if len(part) else float("nan"),
            len(ok) / (hi - lo),
            float(np.percentile(ok, 99)) if ok.size else float("nan"),
            len(part),
        )
    print(
        f"attack           second half: {args.idle} idle holders, {args.slow} slow senders "
        f"(1 byte / {args.slow_every_s:g} s), {args.garbage} garbage senders, a flood of "
        f"{args.flood} connections/s; real clients reconnect every {args.reconnect_every} requests"
    )
    if counts:
        print(
            f"attackers did    {counts['connections']:,} connections ({counts['flood']:,} flood), "
            f"{counts['garbage_frames']:,} garbage frames, {counts['slow_bytes']:,} slow bytes"
        )
    print(f"{'real clients':16} {'answered':>9} {'answers/s':>10} {'p99 ms':>8} {'requests':>9}")
    for name, (rate, per_s, p99, n) in rows.items():
        print(f"{name:16} {rate:9.2%} {per_s:10.1f} {p99:8.2f} {n:9d}")
    a, b = rows["alone"], rows["attacked"]
    print(
        f"ratio attacked / alone: answered rate {b[0] / a[0]:.3f}, answers/s "
        f"{b[1] / a[1]:.3f}, p99 round trip {b[2] / a[2]:.2f}"
    )


if __name__ == "__main__":
    main()
