"""Model profiles: one CSV row per mode (k, bits) with accuracy, payload and measured times.

Required columns ``k,bits,accuracy,payload_bytes``; optional ``compute_ms_<device>`` (device
compute per mode) and ``edge_ms_<device>`` (edge decoder/tail per mode); any other numeric column
is kept. Lines starting with ``#`` are comments. An optional sidecar ``<stem>.samples.npz`` next
to the CSV holds the per-sample correctness of S test samples per mode (arrays ``k`` (M,),
``bits`` (M,), ``correct`` (M, S) uint8) so that a frame's accuracy can be drawn from real samples.
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from slimrl.errors import ProfileError

REQUIRED_COLUMNS = ("k", "bits", "accuracy", "payload_bytes")


@dataclass(frozen=True, eq=False)
class ModelProfile:
    """A full k x bits grid of modes. Tables are float64 arrays of shape (K, B)."""

    name: str
    ks: tuple[int, ...]
    bits: tuple[int, ...]
    accuracy: np.ndarray
    payload_bytes: np.ndarray
    columns: dict[str, np.ndarray]
    samples: np.ndarray | None = None  # (K, B, S) uint8 per-sample correctness, or None
    path: Path | None = None
    samples_path: Path | None = field(default=None)

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.ks), len(self.bits)

    @property
    def compute_columns(self) -> tuple[str, ...]:
        return tuple(c for c in self.columns if c.startswith("compute_ms_"))

    @property
    def edge_columns(self) -> tuple[str, ...]:
        return tuple(c for c in self.columns if c.startswith("edge_ms_"))

    def column(self, name: str) -> np.ndarray:
        """The (K, B) table of a column; ``ProfileError`` if the profile lacks it."""
        if name in ("accuracy", "payload_bytes"):
            return getattr(self, name)
        if name not in self.columns:
            have = ", ".join(self.columns) or "none"
            raise ProfileError(f"{self._where()}: no column {name!r} (optional columns: {have})")
        return self.columns[name]

    def k_index(self, k: int) -> int:
        return self.ks.index(k)

    def bits_index(self, bits: int) -> int:
        return self.bits.index(bits)

    def _where(self) -> str:
        return str(self.path) if self.path is not None else f"model profile {self.name!r}"

    @classmethod
    def load(cls, path: str | os.PathLike, samples: bool = True) -> ModelProfile:
        """Read and validate a profile CSV (and its ``.samples.npz`` sidecar if ``samples``)."""
        path = Path(path)
        if not path.is_file():
            raise ProfileError(f"{path}: model profile not found")
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise ProfileError(f"{path}: cannot read model profile ({exc})") from exc
        lines = [(i + 1, ln) for i, ln in enumerate(text.splitlines())]
        lines = [(n, ln) for n, ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
        if not lines:
            raise ProfileError(
                f"{path}: empty model profile (expected a header {REQUIRED_COLUMNS})"
            )
        header = [h.strip() for h in next(csv.reader([lines[0][1]]))]
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        if missing:
            raise ProfileError(
                f"{path}: line {lines[0][0]}: missing column(s) {', '.join(missing)} "
                f"(required: {', '.join(REQUIRED_COLUMNS)})"
            )
        dup = sorted({h for h in header if header.count(h) > 1})
        if dup:
            raise ProfileError(f"{path}: line {lines[0][0]}: duplicate column(s) {', '.join(dup)}")
        rows: list[tuple[int, dict[str, float]]] = []
        for lineno, ln in lines[1:]:
            cells = [c.strip() for c in next(csv.reader([ln]))]
            if len(cells) != len(header):
                raise ProfileError(
                    f"{path}: line {lineno}: expected {len(header)} cells, got {len(cells)}"
                )
            row: dict[str, float] = {}
            for col, cell in zip(header, cells, strict=True):
                try:
                    val = float(cell)
                except ValueError:
                    raise ProfileError(
                        f"{path}: line {lineno}: column {col}: expected a number, got {cell!r}"
                    ) from None
                if not math.isfinite(val):
                    raise ProfileError(
                        f"{path}: line {lineno}: column {col}: "
                        f"expected a finite number, got {cell!r}"
                    )
                row[col] = val
            _check_row(path, lineno, row)
            rows.append((lineno, row))
        if not rows:
            raise ProfileError(f"{path}: no modes (only a header)")
        ks = sorted({int(r["k"]) for _, r in rows})
        bits = sorted({int(r["bits"]) for _, r in rows})
        seen: dict[tuple[int, int], int] = {}
        for lineno, r in rows:
            key = (int(r["k"]), int(r["bits"]))
            if key in seen:
                raise ProfileError(
                    f"{path}: line {lineno}: duplicate mode k={key[0]} bits={key[1]} "
                    f"(first on line {seen[key]})"
                )
            seen[key] = lineno
        absent = [(k, b) for k in ks for b in bits if (k, b) not in seen]
        if absent:
            listed = ", ".join(f"k={k} bits={b}" for k, b in absent[:6])
            raise ProfileError(
                f"{path}: not a full k x bits grid: missing mode(s) {listed}"
                f" (k in {ks}, bits in {bits})"
            )
        tables = {c: np.zeros((len(ks), len(bits))) for c in header if c not in ("k", "bits")}
        for _, r in rows:
            ki, bi = ks.index(int(r["k"])), bits.index(int(r["bits"]))
            for c, table in tables.items():
                table[ki, bi] = r[c]
        for t in tables.values():
            t.setflags(write=False)
        accuracy = tables.pop("accuracy")
        payload = tables.pop("payload_bytes")
        sidecar = path.with_name(path.stem + ".samples.npz")
        correct = None
        if samples and sidecar.is_file():
            correct = _load_samples(sidecar, ks, bits)
        return cls(
            name=path.stem,
            ks=tuple(ks),
            bits=tuple(bits),
            accuracy=accuracy,
            payload_bytes=payload,
            columns=tables,
            samples=correct,
            path=path.resolve(),
            samples_path=sidecar.resolve() if correct is not None else None,
        )


def _check_row(path: Path, lineno: int, row: dict[str, float]) -> None:
    for col in ("k", "bits"):
        v = row[col]
        if v != int(v) or v < 1:
            raise ProfileError(
                f"{path}: line {lineno}: column {col}: expected an integer >= 1, got {v:g}"
            )
    if not 0.0 <= row["accuracy"] <= 1.0:
        raise ProfileError(
            f"{path}: line {lineno}: column accuracy: expected a value in [0, 1], "
            f"got {row['accuracy']:g}"
        )
    if row["payload_bytes"] <= 0:
        raise ProfileError(
            f"{path}: line {lineno}: column payload_bytes: expected a number > 0, "
            f"got {row['payload_bytes']:g}"
        )
    for col, v in row.items():
        if col.startswith(("compute_ms_", "edge_ms_")) and v < 0:
            raise ProfileError(
                f"{path}: line {lineno}: column {col}: expected a time >= 0, got {v:g}"
            )


def _load_samples(path: Path, ks: list[int], bits: list[int]) -> np.ndarray:
    try:
        with np.load(path) as z:
            arrays = {name: z[name] for name in z.files}
    except Exception as exc:  # corrupt zip, pickle, ...
        raise ProfileError(f"{path}: cannot read per-sample sidecar ({exc})") from exc
    for name in ("k", "bits", "correct"):
        if name not in arrays:
            raise ProfileError(f"{path}: missing array {name!r} (expected k, bits, correct)")
    k, b, correct = arrays["k"], arrays["bits"], arrays["correct"]
    if k.ndim != 1 or b.shape != k.shape or correct.ndim != 2 or correct.shape[0] != len(k):
        raise ProfileError(
            f"{path}: expected k (M,), bits (M,), correct (M, S); got shapes "
            f"{k.shape}, {b.shape}, {correct.shape}"
        )
    if correct.shape[1] == 0:
        raise ProfileError(f"{path}: correct has no samples (S == 0)")
    if not np.isin(correct, (0, 1)).all():
        raise ProfileError(f"{path}: correct: expected 0/1 values")
    out = np.zeros((len(ks), len(bits), correct.shape[1]), dtype=np.uint8)
    seen = set()
    for row, (kv, bv) in enumerate(zip(k.tolist(), b.tolist(), strict=True)):
        if kv not in ks or bv not in bits:
            raise ProfileError(f"{path}: row {row}: mode k={kv} bits={bv} is not in the CSV")
        if (kv, bv) in seen:
            raise ProfileError(f"{path}: row {row}: duplicate mode k={kv} bits={bv}")
        seen.add((kv, bv))
        out[ks.index(kv), bits.index(bv)] = correct[row]
    absent = [(kv, bv) for kv in ks for bv in bits if (kv, bv) not in seen]
    if absent:
        kv, bv = absent[0]
        raise ProfileError(f"{path}: no samples for mode k={kv} bits={bv} ({len(absent)} missing)")
    out.setflags(write=False)
    return out
