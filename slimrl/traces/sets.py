"""Trace sets: a folder of trace files (or one file), with a deterministic train/val/test split."""

from __future__ import annotations

import hashlib
import math
import os
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from functools import cached_property
from pathlib import Path

from slimrl.traces.bank import TraceBank
from slimrl.traces.errors import EmptyTraceError, TraceNotFoundError, TraceValueError
from slimrl.traces.formats import load_trace
from slimrl.traces.trace import Trace

SPLITS = ("train", "val", "test")
DEFAULT_FRACTIONS = (0.7, 0.15, 0.15)
# Documentation and licence files that live next to traces (any extension, any case).
IGNORED_STEMS = frozenset({"readme", "license", "licence", "copying", "notice", "authors"})


def list_trace_files(path: str | os.PathLike, pattern: str = "*") -> list[Path]:
    """Trace files under ``path`` (recursive), matching the glob ``pattern``, sorted.

    Hidden files and folders (names starting with ``.``) and README/LICENSE/COPYING-like files are
    skipped. A pattern with a ``/`` is matched from ``path`` (``Driving/*.csv``); one without is
    matched at any depth.
    """
    root = Path(path)
    found = root.glob(pattern) if "/" in pattern else root.rglob(pattern)
    out = []
    for f in found:
        rel = f.relative_to(root)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if f.name.split(".")[0].lower() in IGNORED_STEMS or not f.is_file():
            continue
        out.append(f)
    return sorted(out, key=lambda f: f.relative_to(root).as_posix())


def split_counts(n: int, fractions: Sequence[float] = DEFAULT_FRACTIONS) -> tuple[int, int, int]:
    """(train, val, test) counts for ``n`` files of one folder.

    val and test get ``round(n * fraction)`` (halves up), at least 1 each when ``n >= 3`` and their
    fraction is positive; train keeps at least one file when its fraction is positive.
    """
    f_train, f_val, f_test = _check_fractions(fractions)
    n_val = math.floor(n * f_val + 0.5)
    n_test = math.floor(n * f_test + 0.5)
    if n >= 3:
        n_val = max(n_val, 1 if f_val > 0 else 0)
        n_test = max(n_test, 1 if f_test > 0 else 0)
    keep = 1 if (f_train > 0 and n >= 1) else 0
    while n_val + n_test > n - keep:
        if n_test >= n_val:
            n_test -= 1
        else:
            n_val -= 1
    return n - n_val - n_test, n_val, n_test


def split_files(
    files: Iterable[str | os.PathLike], fractions: Sequence[float] = DEFAULT_FRACTIONS
) -> dict[Path, str]:
    """Assign each file to ``train``, ``val`` or ``test``, deterministically.

    The rule: files are grouped by the folder that holds them. Within a folder they are ranked by
    the sha256 of their file name (ties by name) and the ranks are cut by :func:`split_counts`:
    the first ranks go to train, the next to val, the rest to test. A file's split therefore
    depends only on the names in its own folder: adding files in another folder never moves it,
    and the split is the same on every machine and run.
    """
    by_dir: dict[Path, list[Path]] = defaultdict(list)
    for f in files:
        f = Path(f)
        by_dir[f.parent].append(f)
    out: dict[Path, str] = {}
    for group in by_dir.values():
        ranked = sorted(group, key=lambda f: (hashlib.sha256(f.name.encode()).hexdigest(), f.name))
        n_train, n_val, _ = split_counts(len(ranked), fractions)
        for rank, f in enumerate(ranked):
            out[f] = "train" if rank < n_train else "val" if rank < n_train + n_val else "test"
    return out


def _check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    try:
        fr = tuple(float(x) for x in fractions)
    except (TypeError, ValueError):
        fr = ()
    if len(fr) != 3 or any(not math.isfinite(x) or x < 0 for x in fr) or abs(sum(fr) - 1) > 1e-6:
        raise TraceValueError(
            f"field fractions: {fractions!r}; expected three numbers >= 0 (train, val, test) "
            "that sum to 1"
        )
    return fr  # type: ignore[return-value]


class TraceSet:
    """An ordered collection of traces (``.traces``, ``.files``), usually built by ``from_path``."""

    def __init__(
        self,
        traces: Iterable[Trace],
        files: Sequence[Path] | None = None,
        *,
        root: Path | None = None,
        split: str | None = None,
        datasets: Sequence[str] | None = None,
    ) -> None:
        self.traces: list[Trace] = list(traces)
        if not self.traces:
            raise EmptyTraceError(f"{root or 'trace set'}: no traces; expected at least one")
        self.files: list[Path | None] = (
            list(files) if files is not None else [tr.source for tr in self.traces]
        )
        self.root = root
        self.split = split
        #: the dataset each trace belongs to (one name for a plain folder)
        self.datasets: list[str] = (
            list(datasets) if datasets is not None else [root.stem if root else "traces"] * len(
                self.traces
            )
        )  # fmt: skip
        if len(self.datasets) != len(self.traces):
            raise TraceValueError("datasets: one name per trace expected")

    @classmethod
    def concat(cls, sets: Sequence[tuple[str, TraceSet]], split: str | None = None) -> TraceSet:
        """Several named trace sets as one corpus; trace names become ``<dataset>/<name>``."""
        traces, files, labels = [], [], []
        for name, ts in sets:
            for tr, f in zip(ts.traces, ts.files, strict=True):
                traces.append(tr.renamed(f"{name}/{tr.name}"))
                files.append(f)
                labels.append(name)
        return cls(traces, files, root=None, split=split, datasets=labels)

    @classmethod
    def from_path(
        cls,
        path: str | os.PathLike,
        pattern: str = "*",
        split: str | None = None,
        fractions: Sequence[float] = DEFAULT_FRACTIONS,
        scale: float = 1.0,
        resolution_ms: float = 100,
        column: str = "DL_bitrate",
    ) -> TraceSet:
        """A folder (recursive, files matching ``pattern``) or a single file as a trace set.

        ``split`` (``None`` for all, ``train``, ``val`` or ``test``) keeps the files of that split
        (see :func:`split_files`); a single file is the whole set whatever the split. ``scale``
        multiplies every capacity. Trace names are the paths relative to the folder.
        """
        if split is not None and split not in SPLITS:
            raise TraceValueError(f"field split: {split!r}; expected None or one of {SPLITS}")
        _check_fractions(fractions)
        scale = float(scale)
        if not (math.isfinite(scale) and scale > 0):
            raise TraceValueError(f"field scale: {scale!r}; expected a number > 0")
        root = Path(path)
        if not root.exists():
            raise TraceNotFoundError(f"{root}: no such file or folder; expected traces")
        if not root.is_dir():  # a file: load_trace refuses what is not a regular file
            files = [root]
            names = [root.name]
        else:
            files = list_trace_files(root, pattern)
            if not files:
                raise EmptyTraceError(
                    f"{root}: no trace files matching {pattern!r}; expected a folder of traces"
                )
            if split is not None:
                assigned = split_files(files, fractions)
                files = [f for f in files if assigned[f] == split]
                if not files:
                    raise EmptyTraceError(
                        f"{root}: no trace files in split {split!r} (pattern {pattern!r}); "
                        "expected at least one (a folder needs 3 files for val and test)"
                    )
            names = [f.relative_to(root).as_posix() for f in files]
        traces = [
            load_trace(f, resolution_ms, column, name=name).scaled(scale)
            for f, name in zip(files, names, strict=True)
        ]
        return cls(traces, files, root=root, split=split)

    def __len__(self) -> int:
        return len(self.traces)

    def __iter__(self) -> Iterator[Trace]:
        return iter(self.traces)

    def __getitem__(self, i: int) -> Trace:
        return self.traces[i]

    def __repr__(self) -> str:
        return f"TraceSet({str(self.root)!r}, split={self.split!r}, traces={len(self)})"

    @property
    def names(self) -> list[str]:
        return [tr.name for tr in self.traces]

    @property
    def total_duration(self) -> float:
        """Sum of the trace durations (s)."""
        return float(sum(tr.duration for tr in self.traces))

    @cached_property
    def bank(self) -> TraceBank:
        """All traces in one :class:`TraceBank` (built once)."""
        return TraceBank(self.traces)
