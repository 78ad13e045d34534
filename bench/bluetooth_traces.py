"""Write the synthetic Bluetooth capacity traces of ``traces/bluetooth-synthetic`` and check them.

    python bench/bluetooth_traces.py [--out traces/bluetooth-synthetic] [--check-only]

Four seeded random-walk traces per distance band
(:func:`slimrl.traces.synthetic.random_walk_trace`, 600 s in 200 ms pieces). The levels of a
band's traces are capacities whose goodput, for the 2-bit payload (13,824 B) with the Bluetooth
RFCOMM link profile's median latencies (8 ms up + 8 ms for the answer,
``envs/profiles/links/bluetooth-rfcomm.yaml``), spans the founding paper's published goodput
band (124-164 kB/s at 1 m, 66-98 kB/s at 5-9 m; ``../shared/profiles/README.md``).
The check prints, per trace, the median goodput of 1-bit to 4-bit payloads over the trace, and
whether the 2-bit one lies in the band.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from slimrl.paths import TRACES_DIR
from slimrl.traces import load_trace
from slimrl.traces.convert import capacity_to_goodput
from slimrl.traces.synthetic import random_walk_trace, write_csv

#: band -> (published goodput band kB/s, trace levels kB/s, first seed)
BANDS = {
    "1m": ((124.0, 164.0), (155.0, 170.0, 185.0, 200.0), 100),
    "5-9m": ((66.0, 98.0), (75.0, 85.0, 97.0, 110.0), 200),
}
LATENCY_MS = 16.0  # uplink + answer medians of the link profile
PAYLOADS = (6912, 13824, 20736, 27648)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=TRACES_DIR / "bluetooth-synthetic")
    ap.add_argument("--check-only", action="store_true", help="check the files already there")
    args = ap.parse_args()
    ok = True
    print(f"{'trace':<22}" + "".join(f"{p:>9} B" for p in PAYLOADS) + "  band (2-bit)")
    for band, ((lo, hi), levels, seed0) in BANDS.items():
        for i, level in enumerate(levels):
            path = args.out / band / f"bt-{band}-{i + 1}.csv"
            if not args.check_only:
                path.parent.mkdir(parents=True, exist_ok=True)
                tr = random_walk_trace(seed0 + i, level, name=path.stem)
                write_csv(tr, path)
            tr = load_trace(path)
            med = [
                float(np.median(capacity_to_goodput(tr, p, LATENCY_MS).capacity)) / 1e3
                for p in PAYLOADS
            ]
            inside = lo <= med[1] <= hi
            ok &= inside
            print(
                f"{band + '/' + path.name:<22}"
                + "".join(f"{g:>11.1f}" for g in med)
                + f"  {lo:g}-{hi:g} {'ok' if inside else 'OUTSIDE'}"
            )
    print("goodput in kB/s (median over each trace)")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
