"""Hostile trace files: every parser yields a valid Trace or a SlimrlError, in bounded memory,
with short one-line messages; limits are enforced before anything big is allocated."""

from __future__ import annotations

import datetime as dt
import itertools
import math
import os
import threading
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import slimrl.traces.formats as formats
from slimrl.cli import main
from slimrl.errors import SlimrlError
from slimrl.traces import (
    MAX_DURATION_S,
    MAX_PIECES,
    Trace,
    TraceError,
    TraceFormatError,
    TraceLimitError,
    TraceSet,
    load_trace,
)

UCC_HEAD = "Timestamp,Longitude,Latitude,DL_bitrate,UL_bitrate,State"
MAX_MESSAGE = 600  # characters beyond the file's path
MAX_PEAK_BYTES = 400 * 2**20  # a MAX_PIECES trace (arrays and the scalar-path lists) fits


# targeted regressions --------------------------------------------------------------------------
def check_error(exc: BaseException, path: Path, line: int | None = None) -> str:
    msg = str(exc)
    assert isinstance(exc, TraceError), repr(exc)
    assert str(path) in msg and "\n" not in msg
    assert len(msg) - len(str(path)) < MAX_MESSAGE, len(msg)
    if line is not None:
        assert f"line {line}:" in msg, msg
    return msg


@pytest.mark.parametrize(
    "name, text, line, what",
    [
        ("huge.up", "1\n5\n100000000000\n", 3, "86400 s"),  # 1e11 ms: a terabyte of bins
        ("huge2.up", "1\n9007199254740991\n", 2, "86400 s"),
        ("long.txt", "0 1\n1 2\n1e300 3\n", 3, "86400 s"),  # evaluation would never end
        ("long.csv", "time_s,mbps\n0,1\n1e300,\n", 3, "86400 s"),
        (
            "years.csv",
            f"{UCC_HEAD}\n2019.12.16_13.40.00,0,0,100,1,D\n2999.12.16_13.40.00,0,0,100,1,D\n",
            3,
            "86400 s",
        ),
    ],
)
def test_traces_beyond_the_duration_limit_are_refused_before_allocating(
    tmp_path, name, text, line, what
):
    p = tmp_path / name
    p.write_text(text)
    tracemalloc.start()
    try:
        with pytest.raises(TraceLimitError) as info:
            load_trace(p)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert what in check_error(info.value, p, line)
    assert peak < 16 * 2**20


def test_tiny_resolution_and_too_many_bins_are_refused(tmp_path):
    p = tmp_path / "a.up"
    p.write_text("1\n2\n86000000\n")  # a day of timestamps is fine at 100 ms ...
    assert len(load_trace(p)) == 860_000
    with pytest.raises(TraceLimitError, match="resolution_ms: 0.0001"):
        load_trace(p, resolution_ms=0.0001)
    with pytest.raises(TraceLimitError, match="resolution_ms") as info:  # ... not at 1 ms
        load_trace(p, resolution_ms=1)
    check_error(info.value, p)
    with pytest.raises(TraceLimitError, match="pieces"):
        Trace(np.arange(MAX_PIECES + 1.0), np.ones(MAX_PIECES + 1))


def test_big_file_is_refused_without_reading_it(tmp_path):
    p = tmp_path / "big.up"
    with open(p, "wb") as f:  # sparse: 1 GiB on paper, nothing on disk
        f.truncate(2**30)
    tracemalloc.start()
    try:
        with pytest.raises(TraceLimitError, match="bytes") as info:
            load_trace(p)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    check_error(info.value, p)
    assert peak < 16 * 2**20
    assert main(["traces", "info", str(p)]) == 2  # the CLI: one line, exit 2


def test_file_growing_past_the_limit_is_cut_at_the_limit(tmp_path, monkeypatch):
    p = tmp_path / "grow.up"
    p.write_text("1\n" * 600)
    monkeypatch.setattr(formats, "MAX_FILE_BYTES", 1000)
    with pytest.raises(TraceLimitError, match="1,000 bytes"):
        formats._read_bytes(p)  # as if it grew between the size check and the read


def test_long_values_are_cut_in_messages(tmp_path):
    cases = {
        "a.txt": "0 1\n1 " + "9" * 1_000_000 + "\n",  # a float that overflows to inf
        "b.up": "1\n" + "9" * 100_000 + "\n",  # more digits than int() converts
        "c.up": "1\n" + "x" * 100_000 + "\n",
        "d.csv": "time_s,mbps\n0," + "-" + "1" * 100_000 + "\n",
        "e.csv": f"{UCC_HEAD}\n" + "2019" * 50_000 + ",0,0,1,1,D\n",
        "f.csv": f"{UCC_HEAD}\n2019.12.16_13.40.00,0,0,{'7' * 200_000},1,D\n",
        # an open quote must not swallow the next line (the next line is judged on its own)
        "g.csv": f'{UCC_HEAD}\n2019.12.16_13.40.00,0,0,"1\r\n1,1,D\n',
        "h.txt": "x" * 1_000_000 + "\n",
    }
    for name, text in cases.items():
        p = tmp_path / name
        p.write_text(text)
        with pytest.raises(TraceError) as info:
            load_trace(p)
        check_error(info.value, p, {"h.txt": 1, "g.csv": 3}.get(name, 2))


def _load_in_thread(target, *args) -> list:
    out: list = []

    def run() -> None:
        try:
            out.append(target(*args))
        except BaseException as exc:
            out.append(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(10)
    return out


def test_fifo_is_refused_not_read(tmp_path):
    fifo = tmp_path / "trace.up"
    os.mkfifo(fifo)
    try:
        for target in (load_trace, TraceSet.from_path, formats.detect_format):
            out = _load_in_thread(target, fifo)
            assert out, f"{target.__name__} blocked on a FIFO"
            assert isinstance(out[0], TraceFormatError), out
            assert "FIFO" in check_error(out[0], fifo)
    finally:
        # unblock a reader stuck in open() (the unfixed code), so the thread can end
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK) if _has_reader(fifo) else None
        if fd is not None:
            os.close(fd)


def _has_reader(fifo: Path) -> bool:
    try:
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    except OSError:
        return False
    return True


# property tests --------------------------------------------------------------------------------
_counter = itertools.count()


def check_trace(tr: Trace) -> None:
    times = tr.times
    assert times[0] == 0 and np.all(np.diff(times) > 0)
    assert len(tr) <= MAX_PIECES and times[-1] < tr.duration <= MAX_DURATION_S
    assert np.all(np.isfinite(tr.capacity)) and np.all(tr.capacity >= 0)
    assert 0 < tr.total_bytes < math.inf
    t = tr.transfer_time(0.3 * tr.duration, 1500)
    assert math.isfinite(t) and t >= 0


def attack(folder: Path, data: bytes, resolution_ms: float = 100, column: str = "DL_bitrate"):
    p = folder / f"f{next(_counter)}.trace"  # a fresh name: the loader caches by path and mtime
    p.write_bytes(data)
    tracemalloc.start()
    try:
        try:
            tr = load_trace(p, resolution_ms=resolution_ms, column=column)
        except SlimrlError as exc:
            check_error(exc, p)
            tr = None
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        p.unlink()
    assert peak < MAX_PEAK_BYTES
    if tr is not None:
        check_trace(tr)
    return tr


NUMBERS = st.one_of(
    st.integers(-5, 3_000),
    st.integers(-(10**30), 10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["nan", "inf", "-inf", "1e300", "-0", "1e-320", "0x10", "1_0", "", "-", "+"]),
).map(str)
BASE = dt.datetime(2019, 12, 16, 13, 40)
UCC_TS = st.one_of(
    st.builds(
        "{:04d}.{:02d}.{:02d}_{:02d}.{:02d}.{:02d}".format,
        st.sampled_from([1970, 2019, 2020, 9999]),
        st.integers(0, 13),
        st.integers(0, 32),
        st.integers(0, 25),
        st.integers(0, 61),
        st.integers(0, 61),
    ),
    st.text(max_size=25),
)
MAHIMAHI = st.lists(
    st.one_of(st.integers(0, 20_000), st.integers(-3, 10**14), st.just("")), max_size=60
).map(lambda xs: "\n".join(map(str, sorted(x for x in xs if x != "")) if xs else ""))
MAHIMAHI_RAW = st.lists(st.one_of(st.integers(-3, 10**12), NUMBERS), max_size=40).map(
    lambda xs: "\n".join(map(str, xs))
)
COOKED = st.lists(st.tuples(NUMBERS, NUMBERS), min_size=1, max_size=40).map(
    lambda rows: "\n".join(f"{a} {b}" for a, b in rows)
)
COOKED_SORTED = st.lists(
    st.tuples(st.floats(0, 5e4), st.floats(0, 1e4)),
    min_size=1,
    max_size=40,
    unique_by=lambda r: r[0],
).map(lambda rows: "\n".join(f"{a!r} {b!r}" for a, b in sorted(rows)))
CSV = st.lists(st.tuples(NUMBERS, NUMBERS), min_size=0, max_size=40).map(
    lambda rows: "time_s,mbps\n" + "\n".join(f"{a},{b}" for a, b in rows)
)
UCC = st.lists(
    st.tuples(UCC_TS, st.one_of(NUMBERS, st.just("-")), st.one_of(NUMBERS, st.just("-"))),
    max_size=30,
).map(lambda rows: UCC_HEAD + "\n" + "\n".join(f"{t},0,0,{d},{u},D" for t, d, u in rows))
UCC_SORTED = st.lists(
    st.tuples(st.integers(0, 90_000), st.one_of(st.floats(0, 1e6), st.just("-"))),
    min_size=1,
    max_size=30,
).map(
    lambda rows: (
        UCC_HEAD
        + "\n"
        + "\n".join(
            f"{(BASE + dt.timedelta(seconds=s)).strftime('%Y.%m.%d_%H.%M.%S')},0,0,{v},1,D"
            for s, v in sorted(rows, key=lambda r: r[0])
        )
    )
)
FORMAT_TEXT = st.one_of(MAHIMAHI, MAHIMAHI_RAW, COOKED, COOKED_SORTED, CSV, UCC, UCC_SORTED)
OPTIONS = st.tuples(
    st.sampled_from([100] * 6 + [1, 0.5, 37.5, 1000, 1e9, 0, -1, math.nan]),
    st.sampled_from(["DL_bitrate", "UL_bitrate"]),
)


@st.composite
def mutated(draw, text: st.SearchStrategy[str]) -> bytes:
    """A format-shaped file with a few byte-level mutations."""
    data = bytearray(draw(text).encode())
    junk = st.sampled_from(
        [b"\x00", b"\xff", b"\r", b"\n", b",", b" ", b'"', b"-", b"9" * 30, b"\xef\xbb\xbf", b"e9"]
    )
    for _ in range(draw(st.integers(0, 4))):
        op = draw(st.sampled_from(["insert", "delete", "flip", "dup"]))
        i = draw(st.integers(0, len(data)))
        if op == "insert":
            data[i:i] = draw(junk)
        elif op == "delete":
            del data[i : i + draw(st.integers(1, 8))]
        elif op == "flip" and i < len(data):
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "dup":
            data[i:i] = data[max(0, i - 20) : i]
    return bytes(data)


FUZZ = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,
    database=None,
)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@FUZZ
@given(text=FORMAT_TEXT, options=OPTIONS)
def test_format_shaped_input_gives_a_trace_or_an_error(folder, text, options):
    attack(folder, text.encode(), *options)


@FUZZ
@given(data=mutated(FORMAT_TEXT), options=OPTIONS)
def test_mutated_input_gives_a_trace_or_an_error(folder, data, options):
    attack(folder, data, *options)


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(data=st.binary(max_size=2000))
def test_random_bytes_give_a_trace_or_an_error(folder, data):
    attack(folder, data)


def test_valid_traces_still_load(folder):
    assert len(attack(folder, b"0 1\n1 2\n2 0\n")) == 3
    assert attack(folder, b"time_s,mbps\n0,8\n2,4\n2.5,\n").duration == 2.5
    assert attack(folder, b"5\n9\n17\n", 1).duration == pytest.approx(0.017)
    ucc = f"{UCC_HEAD}\n2019.12.16_13.40.00,0,0,800,1,D\n2019.12.16_13.40.02,0,0,-,1,D\n"
    assert attack(folder, ucc.encode()).duration == 3
