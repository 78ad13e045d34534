"""Measured samples of a time (ms): a column of a CSV file, or a file of numbers one per line.

A scenario may give the device's compute time, the edge's service time and the link's
per-transfer latencies as measured samples instead of a parametric fit (``envs/README.md``).
A samples file is either

- a CSV with a header row: the values are the column ``column`` (optional when the file has a
  single column besides ``k`` and ``bits``); rows whose cell is empty are skipped, so one file
  can hold several quantities; optional integer columns ``k`` and ``bits`` say which mode a row
  was measured in (compute and service times are then drawn per mode; latencies are always
  pooled, and their rows may leave ``k`` and ``bits`` empty); or
- numbers one per line, no header (a column named ``value``).

Lines starting with ``#`` are comments. Values must be finite and >= 0.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from slimrl.errors import ScenarioError
from slimrl.validate import short

#: largest samples file read (bytes) and most rows kept
MAX_SAMPLES_BYTES = 64 << 20
MAX_SAMPLES_ROWS = 1_000_000
#: columns that name the mode a sample was measured in
MODE_COLUMNS = ("k", "bits")


@dataclass(frozen=True, eq=False)
class SampleFile:
    """Samples of one column: ``values`` (ms), and the mode of each (``k``/``bits``, or None)."""

    path: Path
    column: str
    values: np.ndarray
    k: np.ndarray | None = None
    bits: np.ndarray | None = None

    def pooled(self) -> np.ndarray:
        """Every value, sorted."""
        return np.sort(self.values)

    def per_mode(self, ks: Sequence[int], bits: Sequence[int]) -> list[np.ndarray]:
        """Sorted samples of every mode, k-major (the env's flat mode order).

        With ``k`` and ``bits`` columns a mode takes its own rows, with ``k`` only the rows of
        its k, without either every row. :class:`ScenarioError` names the modes without samples.
        """
        out, missing = [], []
        for k in ks:
            for b in bits:
                sel = np.ones(self.values.size, dtype=bool)
                if self.k is not None:
                    sel &= self.k == k
                if self.bits is not None:
                    sel &= self.bits == b
                v = np.sort(self.values[sel])
                if v.size == 0:
                    missing.append(f"k={k} bits={b}" if self.bits is not None else f"k={k}")
                out.append(v)
        if missing:
            shown = ", ".join(dict.fromkeys(missing))
            raise ScenarioError(
                f"{self.path}: column {self.column!r} has no samples for {short(shown)}; "
                "every mode of the model profile needs some (`slimrl calibrate` fills modes a "
                "run never used from the nearest measured one)"
            )
        return out


def read_samples(path: str | os.PathLike, column: str | None = None) -> SampleFile:
    """Read samples (see the module docstring); :class:`ScenarioError` names file and line."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_SAMPLES_BYTES:
            raise ScenarioError(
                f"{path}: {size} bytes; a samples file may hold at most {MAX_SAMPLES_BYTES} bytes"
            )
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"{path}: cannot read samples ({exc})") from None
    rows = [
        (n, line.strip())
        for n, line in enumerate(text.splitlines(), 1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if not rows:
        raise ScenarioError(f"{path}: no samples (empty file)")
    first = rows[0][1].split(",")
    header = not all(_is_number(c) for c in first)
    if header:
        names = [c.strip() for c in first]
        body = rows[1:]
    else:
        names = ["value"] if len(first) == 1 else [f"c{i}" for i in range(len(first))]
        body = rows
    values_cols = [c for c in names if c not in MODE_COLUMNS]
    if column is None:
        if len(values_cols) != 1:
            raise ScenarioError(
                f"{path}: several columns ({', '.join(values_cols)}); name one with `column`"
            )
        column = values_cols[0]
    if column not in names:
        raise ScenarioError(f"{path}: no column {column!r} (columns: {', '.join(names) or 'none'})")
    if len(body) > MAX_SAMPLES_ROWS:
        raise ScenarioError(f"{path}: more than {MAX_SAMPLES_ROWS} rows of samples")
    ci = names.index(column)
    ki = names.index("k") if "k" in names else None
    bi = names.index("bits") if "bits" in names else None
    vals, ks, bs = [], [], []
    for n, line in body:
        cells = line.split(",")
        if len(cells) != len(names):
            raise ScenarioError(
                f"{path}:{n}: {len(cells)} cells, expected {len(names)} ({', '.join(names)})"
            )
        cell = cells[ci].strip()
        if not cell:
            continue  # another quantity's row
        v = _number(path, n, column, cell)
        if not v >= 0.0:
            raise ScenarioError(f"{path}:{n}: {column}: expected a time >= 0, got {short(cell)}")
        vals.append(v)
        if ki is not None:
            ks.append(_integer(path, n, "k", cells[ki].strip()))
        if bi is not None:
            bs.append(_integer(path, n, "bits", cells[bi].strip()))
    if not vals:
        raise ScenarioError(f"{path}: column {column!r} holds no samples")
    return SampleFile(
        path=path,
        column=column,
        values=np.array(vals, dtype=np.float64),
        k=np.array(ks, dtype=np.int64) if ki is not None else None,
        bits=np.array(bs, dtype=np.int64) if bi is not None else None,
    )


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def _number(path: Path, n: int, field: str, s: str) -> float:
    try:
        v = float(s)
    except ValueError:
        raise ScenarioError(f"{path}:{n}: {field}: expected a number, got {short(s)}") from None
    if not math.isfinite(v):
        raise ScenarioError(f"{path}:{n}: {field}: expected a finite number, got {short(s)}")
    return v


def _integer(path: Path, n: int, field: str, s: str) -> int:
    if not s:
        return -1  # a sample of no particular mode (pooled quantities)
    v = _number(path, n, field, s)
    if not v.is_integer():
        raise ScenarioError(f"{path}:{n}: {field}: expected an integer, got {short(s)}")
    return int(v)
