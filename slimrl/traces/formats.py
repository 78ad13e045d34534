"""Trace file formats, detected from the file's content, all read into one :class:`Trace`.

- ``mahimahi``: one integer millisecond timestamp per line, each a delivery opportunity for one
  1500-byte packet (``*.up`` / ``*.down``). Binned to ``resolution_ms``; an opportunity at ``t`` ms
  counts in the bin ``((t - 1) // res)`` (the bin that ends at or after ``t``), the duration is the
  last timestamp rounded up to the resolution (a trace shorter than one bin is one bin of its last
  timestamp, so mahimahi's fixed-rate file ``1`` is 12 Mbit/s), and empty bins (including the
  leading ones of traces that start late) are zero capacity.
- ``cooked`` (Pensieve): two whitespace-separated columns, no header: seconds and Mbit/s.
- ``ucc``: the UCC 5G CSV (``Timestamp`` like ``2019.12.16_13.40.04``, ``DL_bitrate`` /
  ``UL_bitrate`` in kbit/s, ``-`` for missing), resampled on the timestamp to 1 s.
- ``csv``: the canonical CSV, header ``time_s,mbps``; an optional last row with an empty ``mbps``
  marks the end of the last piece.

In ``cooked`` and ``csv`` each row starts a piece; times are shifted so the first row is at 0, and
without an end row the last piece lasts as long as the one before it (1 s for a single row).

Files are untrusted: only regular files are opened (a FIFO would block), at most
``MAX_FILE_BYTES`` are read, and the limits of :mod:`slimrl.traces.limits` on pieces, duration
and bin width are checked before anything proportional to them is allocated.
"""

from __future__ import annotations

import calendar
import csv
import math
import os
import re
import stat
from collections import OrderedDict
from pathlib import Path

import numpy as np

from slimrl.traces.errors import (
    EmptyTraceError,
    TraceFormatError,
    TraceLimitError,
    TraceNotFoundError,
    TraceTimeError,
    TraceValueError,
)
from slimrl.traces.limits import (
    MAX_DURATION_S,
    MAX_FILE_BYTES,
    MAX_PIECES,
    MIN_RESOLUTION_MS,
    shown,
)
from slimrl.traces.trace import MBPS, Trace

FORMATS = ("mahimahi", "cooked", "ucc", "csv")
MTU_BYTES = 1500
UCC_COLUMNS = ("DL_bitrate", "UL_bitrate")
UCC_MAX_BACKSTEP_S = 5  # the UCC logs step back by 1 s once; larger jumps back are errors
_EXPECTED = (
    "expected mahimahi (one integer ms timestamp per line), Pensieve-cooked ('seconds Mbit/s' per "
    "line), a UCC 5G CSV (Timestamp,...,DL_bitrate,UL_bitrate,...) or a CSV with header "
    "'time_s,mbps'"
)
_UCC_TS = re.compile(r"(\d{4})\.(\d{2})\.(\d{2})_(\d{2})\.(\d{2})\.(\d{2})")
_CACHE: OrderedDict[tuple, Trace] = OrderedDict()
_CACHE_SIZE = 256


def load_trace(
    path: str | os.PathLike,
    resolution_ms: float = 100,
    column: str = "DL_bitrate",
    *,
    name: str | None = None,
) -> Trace:
    """Read a trace file of any supported format (detected from its content).

    ``resolution_ms`` is the bin width for mahimahi files, ``column`` the UCC series
    (``DL_bitrate`` or ``UL_bitrate``). ``name`` defaults to the file name. Traces are cached by
    path, modification time and options (they are immutable).
    """
    path = Path(path)
    _check_options(resolution_ms, column, f"{path}: ")
    st = _stat_file(path)
    key = (str(path.resolve()), st.st_mtime_ns, st.st_size, float(resolution_ms), column, name)
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    trace = _read(path, resolution_ms, column, name or path.name)
    _CACHE[key] = trace
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return trace


def detect_format(path: str | os.PathLike) -> str:
    """The format of a trace file (one of ``FORMATS``), from its content."""
    path = Path(path)
    _stat_file(path)
    lines = _lines(path)
    return _detect(path, lines, _first(path, lines))


def _check_options(resolution_ms: float, column: str, where: str = "") -> None:
    try:
        ok = math.isfinite(float(resolution_ms)) and float(resolution_ms) > 0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise TraceValueError(
            f"{where}field resolution_ms: {shown(resolution_ms)}; expected a number of "
            "milliseconds > 0"
        )
    if float(resolution_ms) < MIN_RESOLUTION_MS:
        raise TraceLimitError(
            f"{where}field resolution_ms: {float(resolution_ms)!r}; expected at least "
            f"{MIN_RESOLUTION_MS:g} ms (mahimahi timestamps are whole milliseconds)"
        )
    if column not in UCC_COLUMNS:
        raise TraceValueError(
            f"{where}field column: {shown(column)}; expected one of {', '.join(UCC_COLUMNS)}"
        )


def _stat_file(path: Path) -> os.stat_result:
    """``stat`` of a trace file: it must exist, be a regular file and be within the size limit."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise TraceNotFoundError(f"{path}: no such file; expected a trace file") from None
    except OSError as exc:
        raise TraceNotFoundError(
            f"{path}: cannot read ({exc.strerror}); expected a trace file"
        ) from None
    if stat.S_ISDIR(st.st_mode):
        raise TraceFormatError(
            f"{path}: is a folder; expected a trace file (use TraceSet.from_path for a folder)"
        )
    _check_regular(path, st)
    return st


def _check_regular(path: Path, st: os.stat_result) -> None:
    if not stat.S_ISREG(st.st_mode):
        kind = (
            "a FIFO (named pipe)"
            if stat.S_ISFIFO(st.st_mode)
            else "a socket"
            if stat.S_ISSOCK(st.st_mode)
            else "a device"
            if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)
            else "not a regular file"
        )
        raise TraceFormatError(f"{path}: is {kind}; expected a regular trace file")
    if st.st_size > MAX_FILE_BYTES:
        raise TraceLimitError(
            f"{path}: {st.st_size:,} bytes; expected a trace file of at most "
            f"{MAX_FILE_BYTES:,} bytes (slimrl.traces.limits.MAX_FILE_BYTES)"
        )


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, read only if it is a regular file and at most ``MAX_FILE_BYTES``.

    Opened non-blocking and checked again on the open descriptor, so a path swapped for a FIFO
    after the first check cannot block, and a file that grows is cut at the limit."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise TraceNotFoundError(
            f"{path}: cannot read ({exc.strerror}); expected a trace file"
        ) from None
    with os.fdopen(fd, "rb", buffering=0) as f:
        st = os.fstat(fd)
        _check_regular(path, st)
        try:  # read(n) allocates n bytes up front: ask for the size, then more only if it grew
            parts = [f.read(st.st_size + 1)]
            total = len(parts[0])
            while total > st.st_size and total <= MAX_FILE_BYTES and parts[-1]:
                parts.append(f.read(min(1 << 20, MAX_FILE_BYTES + 1 - total)))
                total += len(parts[-1])
            data = b"".join(parts)
        except OSError as exc:
            raise TraceNotFoundError(
                f"{path}: cannot read ({exc.strerror}); expected a trace file"
            ) from None
    if len(data) > MAX_FILE_BYTES:
        raise TraceLimitError(
            f"{path}: more than {MAX_FILE_BYTES:,} bytes; expected a trace file of at most "
            f"{MAX_FILE_BYTES:,} bytes (slimrl.traces.limits.MAX_FILE_BYTES)"
        )
    return data


def _check_span(path: Path, line: int | None, span_s: float, what: str) -> None:
    """``span_s`` (from the first piece to the end, s) must be within ``MAX_DURATION_S``."""
    if not span_s <= MAX_DURATION_S:
        at = f"line {line}: " if line is not None else ""
        raise TraceLimitError(
            f"{path}: {at}{what} {span_s:.6g} s after the start; expected a trace of at most "
            f"{MAX_DURATION_S:g} s (slimrl.traces.limits.MAX_DURATION_S)"
        )


def _check_pieces(path: Path, n: int, hint: str = "") -> None:
    if n > MAX_PIECES:
        raise TraceLimitError(
            f"{path}: {n:,} pieces; expected at most {MAX_PIECES:,} "
            f"(slimrl.traces.limits.MAX_PIECES){hint}"
        )


def _read(path: Path, resolution_ms: float, column: str, name: str) -> Trace:
    lines = _lines(path)
    first = _first(path, lines)
    fmt = _detect(path, lines, first)
    if fmt == "mahimahi":
        times, cap, dur = _read_mahimahi(path, lines, first, float(resolution_ms))
    elif fmt == "cooked":
        times, cap, dur = _read_two_columns(path, lines, first, header=False)
    elif fmt == "csv":
        times, cap, dur = _read_two_columns(path, lines, first, header=True)
    else:
        times, cap, dur = _read_ucc(path, lines, first, column)
    return Trace(times, cap, dur, name=name, source=path, fmt=fmt)


def _lines(path: Path) -> list[str]:
    """The file's lines (split on ``\\n`` so line numbers match editors); rejects binary data."""
    data = _read_bytes(path)
    nul = data.find(b"\x00")
    try:
        text = data.decode("utf-8-sig")
        bad = None
    except UnicodeDecodeError as exc:
        bad = exc.start
    if nul >= 0 or bad is not None:
        at = min(x for x in (nul, bad) if x is not None and x >= 0)
        why = "NUL byte" if at == nul else "not UTF-8 text"
        line = data[:at].count(b"\n") + 1
        raise TraceFormatError(f"{path}: line {line}: binary data ({why}); {_EXPECTED}")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def _first(path: Path, lines: list[str]) -> int:
    """Index of the first non-blank line."""
    for k, line in enumerate(lines):
        if line.strip():
            return k
    raise EmptyTraceError(f"{path}: empty file; {_EXPECTED}")


def _is_float(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def _detect(path: Path, lines: list[str], first: int) -> str:
    head = lines[first].strip()
    fields = [f.strip() for f in head.split(",")]
    if [f.lower() for f in fields] == ["time_s", "mbps"]:
        return "csv"
    if "Timestamp" in fields and any(c in fields for c in UCC_COLUMNS):
        return "ucc"
    tokens = head.split()
    if len(tokens) == 1 and re.fullmatch(r"[0-9]+", tokens[0]):
        return "mahimahi"
    if len(tokens) == 2 and all(_is_float(t) for t in tokens):
        return "cooked"
    raise TraceFormatError(
        f"{path}: line {first + 1}: unknown trace format ({shown(head, 60)}); {_EXPECTED}"
    )


# mahimahi ------------------------------------------------------------------------------------
def _read_mahimahi(
    path: Path, lines: list[str], first: int, res_ms: float
) -> tuple[np.ndarray, np.ndarray, float]:
    body = lines[first:]
    try:
        ms = np.array(body, dtype=np.int64)
        linenos = None
    except (ValueError, OverflowError):
        ms, linenos = _mahimahi_slow(path, body, first)

    def line_of(k: int) -> int:
        return int(linenos[k]) if linenos is not None else first + k + 1

    neg = ms < 0
    if neg.any():
        k = int(np.argmax(neg))
        raise TraceValueError(
            f"{path}: line {line_of(k)}: negative timestamp {int(ms[k])}; "
            "expected milliseconds >= 0 (mahimahi)"
        )
    back = np.diff(ms) < 0
    if back.any():
        k = int(np.argmax(back)) + 1
        raise TraceTimeError(
            f"{path}: line {line_of(k)}: time goes backwards ({int(ms[k])} ms after "
            f"{int(ms[k - 1])} ms); expected non-decreasing timestamps (mahimahi)"
        )
    last = int(ms[-1])
    if last > MAX_DURATION_S * 1000:
        k = int(np.argmax(ms > MAX_DURATION_S * 1000))
        _check_span(path, line_of(k), int(ms[k]) / 1000, "timestamp")
    if last < res_ms:  # shorter than one bin (e.g. mahimahi's fixed-rate "1"): one bin of `last` ms
        res_ms = float(max(last, 1))
    nbins = max(1, math.ceil(last / res_ms))
    _check_pieces(path, nbins, f" bins of {res_ms:g} ms; expected a larger resolution_ms")
    bins = np.clip(np.ceil(ms / res_ms).astype(np.int64) - 1, 0, nbins - 1)
    counts = np.bincount(bins, minlength=nbins)
    res_s = res_ms / 1000.0
    times = np.arange(nbins, dtype=np.float64) * res_s
    return times, counts * (MTU_BYTES / res_s), nbins * res_s


def _mahimahi_slow(path: Path, body: list[str], first: int) -> tuple[np.ndarray, np.ndarray]:
    """Line-by-line parse (blank lines skipped) that names the first bad line."""
    vals: list[int] = []
    linenos: list[int] = []
    for k, raw in enumerate(body):
        s = raw.strip()
        if not s:
            continue
        line = first + k + 1
        if not re.fullmatch(r"-?[0-9]+", s):
            raise TraceFormatError(
                f"{path}: line {line}: {shown(s)} is not an integer; expected one millisecond "
                "timestamp per line (mahimahi)"
            )
        # compare digits before int(): Python refuses to convert more than 4300 of them
        if len(s.lstrip("-").lstrip("0")) > 16 or abs(int(s)) >= 2**53:
            raise TraceValueError(
                f"{path}: line {line}: timestamp {shown(s)} too large; expected milliseconds "
                "< 2**53"
            )
        v = int(s)
        vals.append(v)
        linenos.append(line)
    return np.array(vals, dtype=np.int64), np.array(linenos, dtype=np.int64)


# cooked and canonical CSV --------------------------------------------------------------------
def _read_two_columns(
    path: Path, lines: list[str], first: int, header: bool
) -> tuple[np.ndarray, np.ndarray, float | None]:
    what = "canonical CSV 'time_s,mbps'" if header else "Pensieve-cooked 'seconds Mbit/s'"
    start = first + 1 if header else first
    rows = [(k + 1, s.strip()) for k, s in enumerate(lines[start:], start) if s.strip()]
    if not rows:
        raise EmptyTraceError(
            f"{path}: line {first + 1}: header only, no data rows; expected rows 'time_s,mbps'"
        )
    _check_pieces(path, len(rows))
    times: list[float] = []
    mbps: list[float] = []
    end: float | None = None
    for pos, (line, s) in enumerate(rows):
        parts = [p.strip() for p in s.split(",")] if header else s.split()
        if len(parts) != 2:
            raise TraceFormatError(f"{path}: line {line}: {len(parts)} fields; expected 2 ({what})")
        t = _number(path, line, "time_s", parts[0], what)
        if header and parts[1] == "" and pos == len(rows) - 1 and pos > 0:
            end = t
        else:
            m = _number(path, line, "mbps", parts[1], what)
            if m < 0:
                raise TraceValueError(
                    f"{path}: line {line}: field mbps: negative value {shown(parts[1])}; "
                    "expected Mbit/s >= 0"
                )
        if times and t <= times[-1]:
            verb = "goes backwards" if t < times[-1] else "repeats"
            raise TraceTimeError(
                f"{path}: line {line}: field time_s: time {verb} ({t!r} after {times[-1]!r}); "
                "expected strictly increasing seconds"
            )
        _check_span(path, line, t - times[0] if times else 0.0, "time")
        if end is None:
            times.append(t)
            mbps.append(m)
    t0 = times[0]
    t_arr = np.array(times) - t0
    return t_arr, np.array(mbps) * MBPS, (None if end is None else end - t0)


def _number(path: Path, line: int, field: str, s: str, what: str) -> float:
    try:
        v = float(s)
    except ValueError:
        raise TraceFormatError(
            f"{path}: line {line}: field {field}: {shown(s)} is not a number; expected {what}"
        ) from None
    if not math.isfinite(v):
        raise TraceValueError(
            f"{path}: line {line}: field {field}: {shown(s)}; expected a finite number"
        )
    return v


# UCC 5G CSV ----------------------------------------------------------------------------------
def _read_ucc(
    path: Path, lines: list[str], first: int, column: str
) -> tuple[np.ndarray, np.ndarray, float]:
    """Resample the UCC log on its timestamp to 1 s.

    Rows in the same second are averaged, seconds with no row hold the previous second's value,
    ``-`` (missing) holds the previous row's value (leading missing values take the first one), and
    steps back in time of up to ``UCC_MAX_BACKSTEP_S`` seconds fall into their (earlier) second.
    """
    header = [f.strip() for f in _csv_row(path, first + 1, lines[first])]
    if column not in header:
        raise TraceFormatError(
            f"{path}: line {first + 1}: no column {column!r}; expected a UCC 5G CSV header with "
            f"{', '.join(UCC_COLUMNS)}"
        )
    ti, ci = header.index("Timestamp"), header.index(column)
    need = max(ti, ci) + 1
    secs: list[int] = []
    vals: list[float] = []
    linenos: list[int] = []
    body = [(k + 1, s) for k, s in enumerate(lines[first + 1 :], first + 1) if s.strip()]
    for line, s in body:
        row = _csv_row(path, line, s)
        if len(row) < need:
            raise TraceFormatError(
                f"{path}: line {line}: {len(row)} fields; expected {len(header)} as in the header"
            )
        m = _UCC_TS.fullmatch(row[ti].strip())
        if m is None:
            raise TraceFormatError(
                f"{path}: line {line}: field Timestamp: {shown(row[ti])}; expected "
                "YYYY.MM.DD_HH.MM.SS"
            )
        y, mo, d, h, mi, s = (int(g) for g in m.groups())
        try:
            sec = calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0))
        except (ValueError, OverflowError):
            sec = None
        if sec is None or not (1 <= mo <= 12 and 1 <= d <= 31 and h < 24 and mi < 60 and s < 61):
            raise TraceFormatError(
                f"{path}: line {line}: field Timestamp: {shown(row[ti])}; expected a valid date "
                "and time"
            )
        raw = row[ci].strip()
        if raw in ("-", ""):
            v = math.nan
        else:
            v = _number(path, line, column, raw, f"{column} in kbit/s")
            if v < 0:
                raise TraceValueError(
                    f"{path}: line {line}: field {column}: negative value {shown(raw)}; "
                    "expected kbit/s >= 0 or '-'"
                )
        secs.append(sec)
        vals.append(v)
        linenos.append(line)
    if not secs:
        raise EmptyTraceError(
            f"{path}: line {first + 1}: header only, no data rows; expected UCC 5G rows"
        )
    t = np.array(secs, dtype=np.int64)
    back = np.maximum.accumulate(t) - t
    if (back > UCC_MAX_BACKSTEP_S).any():
        k = int(np.argmax(back > UCC_MAX_BACKSTEP_S))
        raise TraceTimeError(
            f"{path}: line {linenos[k]}: field Timestamp: time goes backwards by {int(back[k])} s; "
            f"expected non-decreasing timestamps (steps back of up to {UCC_MAX_BACKSTEP_S} s are "
            "tolerated)"
        )
    span = t - t.min()
    if int(span.max()) + 1 > MAX_DURATION_S:
        k = int(np.argmax(span + 1 > MAX_DURATION_S))
        _check_span(path, linenos[k], float(span[k] + 1), "Timestamp")
    v = np.array(vals)
    ok = ~np.isnan(v)
    if not ok.any():
        raise EmptyTraceError(
            f"{path}: field {column}: no values (all '-'); expected kbit/s in some rows"
        )
    held = np.maximum.accumulate(np.where(ok, np.arange(v.size), -1))
    v = v[np.where(held < 0, np.argmax(ok), held)]
    bins = span
    nbins = int(bins.max()) + 1
    counts = np.bincount(bins, minlength=nbins)
    sums = np.bincount(bins, weights=v, minlength=nbins)
    filled = np.maximum.accumulate(np.where(counts > 0, np.arange(nbins), 0))
    kbps = sums[filled] / counts[filled]
    return np.arange(nbins, dtype=np.float64), kbps * (1000.0 / 8.0), float(nbins)


def _csv_row(path: Path, line: int, s: str) -> list[str]:
    """One CSV line (each line on its own, so a stray quote cannot swallow the next lines)."""
    try:
        return next(csv.reader([s]))
    except csv.Error as exc:
        raise TraceFormatError(
            f"{path}: line {line}: not a CSV row ({exc}); expected a UCC 5G CSV row"
        ) from None
