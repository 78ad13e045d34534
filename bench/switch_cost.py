"""What a mode switch costs: slimmable ``set_mode`` vs reloading a per-mode model from disk.

A split model without a slimmable encoder needs one model per (k, bits): switching means
loading that model's checkpoint and warming it up with one inference. Here every per-mode model
is the shipped model cut down to its mode (head + k sub-encoders + decoder + tail, one bit
width), saved to a temporary folder. Memory: one slimmable model serving every mode against all
the per-mode models.

    python bench/switch_cost.py [--model PATH] [--reloads 20] [--switches 100000] [--repeats 5]

Like for like: the reload alone against ``set_mode`` alone, and the reload plus the first
inference in the new mode against ``set_mode`` plus the first inference in the new mode. Each
figure is the median over ``--repeats`` interleaved repeats (min..max shown), every ratio taken
within one repeat. The checkpoints sit in the page cache after the first read, so the reload
figure is a lower bound (no disk I/O).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def rss_bytes() -> int:
    """Resident set size of this process (Linux /proc), 0 where unavailable."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def per_mode_model(model, k: int, bits: int):
    """The shipped model cut down to one mode (what a non-slimmable split model would ship)."""
    from dataclasses import replace

    from slimrl.model.network import SlimmableSplitModel

    cfg = replace(model.config, num_encoders=k, bits_options=(bits,))
    small = SlimmableSplitModel(cfg)
    state = {
        name: value
        for name, value in model.state_dict().items()
        if not name.startswith("encoders.") or int(name.split(".")[1]) < k
    }
    small.load_state_dict(state)
    return small.eval()


def warm_inference(model, image: np.ndarray) -> None:
    model.decode(model.encode(image)[0])


def _child(kind: str, model_path: str | None, folder: str) -> None:
    """Print this process's RSS after loading and warming the models of ``kind``."""
    import torch

    from slimrl.model.checkpoint import load_model, load_pretrained

    torch.set_num_threads(1)
    image = np.zeros((1, 28, 28), dtype=np.uint8)
    keep = []
    if kind == "base":
        pass  # torch and slimrl imported, no model: the floor both others share
    elif kind == "slim":
        model = load_pretrained(model_path or None)
        for k, b in model.modes:
            model.set_mode(k, b)
            warm_inference(model, image)
        keep.append(model)
    else:
        for path in sorted(Path(folder).glob("k*b*.pt")):
            keep.append(load_model(path))
            warm_inference(keep[-1], image)
    gc.collect()
    print(rss_bytes())


def child_rss(kind: str, model_path: str | None, folder: str) -> int:
    """RSS of a fresh process holding one slimmable model or every per-mode model."""
    import subprocess
    import sys

    cmd = [sys.executable, __file__, "--child", kind, "--folder", folder]
    if model_path:
        cmd += ["--model", model_path]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return int(out.split()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="checkpoint (default: shipped weights)")
    parser.add_argument("--reloads", type=int, default=20, help="reloads timed")
    parser.add_argument("--switches", type=int, default=100_000, help="set_mode calls timed")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5, help="interleaved repeats (medians)")
    parser.add_argument("--child", choices=["base", "slim", "per-mode"], help=argparse.SUPPRESS)
    parser.add_argument("--folder", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.model, args.folder)
        return 0

    import torch

    from slimrl.model.checkpoint import load_model, load_pretrained, save_model

    torch.set_num_threads(args.threads)
    image = np.random.default_rng(0).integers(0, 256, size=(1, 28, 28), dtype=np.uint8)
    t0 = time.perf_counter()
    model = load_pretrained(args.model)
    for k, b in model.modes:
        model.set_mode(k, b)
        warm_inference(model, image)
    slim_start_s = time.perf_counter() - t0
    modes = model.modes

    with tempfile.TemporaryDirectory() as tmp:
        paths = {}
        for k, b in modes:
            paths[(k, b)] = save_model(per_mode_model(model, k, b), Path(tmp) / f"k{k}b{b}.pt")
        rep: dict[str, list[float]] = {k: [] for k in ("switch", "first", "load", "load_first")}
        for _ in range(args.repeats):
            # 1. set_mode: an attribute change; then set_mode + the first inference in the mode
            order = [modes[i % len(modes)] for i in range(args.switches)]
            t0 = time.perf_counter_ns()
            for k, b in order:
                model.set_mode(k, b)
            rep["switch"].append((time.perf_counter_ns() - t0) / 1e9 / args.switches)
            first = []
            for i in range(100):
                k, b = modes[(i * 7) % len(modes)]
                t0 = time.perf_counter()
                model.set_mode(k, b)
                warm_inference(model, image)
                first.append(time.perf_counter() - t0)
            rep["first"].append(statistics.median(first))
            # 2. reload a per-mode model from disk, then its first inference
            load, load_first = [], []
            for i in range(args.reloads):
                k, b = modes[(i * 5) % len(modes)]
                gc.collect()
                t0 = time.perf_counter()
                m = load_model(paths[(k, b)])
                t1 = time.perf_counter()
                warm_inference(m, image)
                t2 = time.perf_counter()
                load.append(t1 - t0)
                load_first.append(t2 - t0)
                del m
            rep["load"].append(statistics.median(load))
            rep["load_first"].append(statistics.median(load_first))
        per_mode_params = sum(load_model(p).parameter_bytes() for p in paths.values())
        disk_all = sum(p.stat().st_size for p in paths.values())
        # 3. process memory: one slimmable model vs every per-mode model, each in a fresh process.
        rss_base = child_rss("base", args.model, tmp)
        rss_slim = child_rss("slim", args.model, tmp)
        rss_all = child_rss("per-mode", args.model, tmp)

    slim_params = model.parameter_bytes()
    n = len(modes)

    def med(xs: list[float], scale: float = 1.0) -> str:
        return (f"{statistics.median(xs) * scale:10.4g} ({min(xs) * scale:.4g}.."
                f"{max(xs) * scale:.4g})")  # fmt: skip

    alone = [a / s for a, s in zip(rep["load"], rep["switch"], strict=True)]
    with_inf = [a / s for a, s in zip(rep["load_first"], rep["first"], strict=True)]
    print(f"model: {args.model or 'shipped weights'}; {n} modes; threads={args.threads}; "
          f"medians of {args.repeats} repeats (min..max)")  # fmt: skip
    print(f"slimmable: load + warm-up of all {n} modes    : {slim_start_s * 1e3:10.1f} ms (once)")
    print(f"set_mode (attribute change)                : {med(rep['switch'], 1e9)} ns")
    print(f"reload a per-mode model                    : {med(rep['load'], 1e3)} ms "
          "(page-cached)")  # fmt: skip
    print(f"  => like for like, reload / set_mode      : {med(alone)} x")
    print(f"set_mode + first inference in the new mode : {med(rep['first'], 1e3)} ms")
    print(f"reload + first inference in the new mode   : {med(rep['load_first'], 1e3)} ms")
    print(f"  => like for like, with the inference     : {med(with_inf)} x")
    print(f"parameters, one slimmable model            : {slim_params / 1e6:10.3f} MB")
    print(
        f"parameters, {n} per-mode models            : {per_mode_params / 1e6:10.3f} MB "
        f"({per_mode_params / slim_params:.1f}x)"
    )
    print(f"checkpoints on disk, {n} per-mode models   : {disk_all / 1e6:10.3f} MB")
    if rss_slim and rss_all:
        slim_d, all_d = rss_slim - rss_base, rss_all - rss_base
        print(f"process RSS, torch + slimrl, no model      : {rss_base / 1e6:10.1f} MB")
        print(
            f"process RSS, one slimmable model           : {rss_slim / 1e6:10.1f} MB "
            f"(+{slim_d / 1e6:.1f} MB)"
        )
        print(
            f"process RSS, {n} per-mode models resident  : {rss_all / 1e6:10.1f} MB "
            f"(+{all_d / 1e6:.1f} MB, {all_d / max(slim_d, 1):.1f}x the slimmable increase)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
