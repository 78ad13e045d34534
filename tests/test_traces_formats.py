"""Trace formats: parsing, detection from content, round-trips via the canonical CSV, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from slimrl.traces import (
    EmptyTraceError,
    Trace,
    TraceError,
    TraceFormatError,
    TraceNotFoundError,
    TraceSet,
    TraceTimeError,
    TraceValueError,
    detect_format,
    load_trace,
)

UCC_HEADER = (
    "Timestamp,Longitude,Latitude,Speed,Operatorname,CellID,NetworkMode,RSRP,RSRQ,SNR,CQI,RSSI,"
    "DL_bitrate,UL_bitrate,State,PINGAVG,PINGMIN,PINGMAX,PINGSTDEV,PINGLOSS,CELLHEX,NODEHEX,LACHEX,"
    "RAWCELLID,NRxRSRP,NRxRSRQ"
)


def ucc_row(ts: str, dl: str, ul: str = "10") -> str:
    return (
        f"2019.12.16_13.40.{ts},-8.39,51.88,0,B,11,5G,-103,-15,1.0,15,-90,{dl},{ul},D,"
        "-,-,-,-,-,B,A4DF,9CBA,10805003,-106.0,-11.0"
    )


def write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    p = tmp_path / name
    if isinstance(text, bytes):
        p.write_bytes(text)
    else:
        p.write_text(text)
    return p


# each format -----------------------------------------------------------------------------------
def test_mahimahi_binning(tmp_path):
    p = write(tmp_path, "a.up", "5\n5\n150\n250\n250\n250\n")
    tr = load_trace(p)
    assert tr.fmt == "mahimahi" and tr.name == "a.up" and tr.source == p
    assert tr.times == pytest.approx([0.0, 0.1, 0.2]) and tr.duration == pytest.approx(0.3)
    assert tr.capacity.tolist() == pytest.approx([2 * 15_000, 15_000, 3 * 15_000])
    assert tr.total_bytes == pytest.approx(6 * 1500)


def test_mahimahi_late_start_is_zero_capacity(tmp_path):
    p = write(tmp_path, "late.up", "637\n700\n1056\n")
    tr = load_trace(p)
    assert tr.duration == pytest.approx(1.1)  # last timestamp rounded up to 100 ms
    assert np.all(tr.capacity[:6] == 0) and tr.capacity[6] == 2 * 15_000
    assert tr.capacity[10] == 15_000 and tr.total_bytes == pytest.approx(4500)
    coarse = load_trace(p, resolution_ms=1000)
    assert coarse.duration == 2.0 and coarse.capacity.tolist() == [3000.0, 1500.0]


def test_mahimahi_fixed_rate_file(tmp_path):
    tr = load_trace(write(tmp_path, "fixed", "1\n"))  # one MTU per ms, as mahimahi's README says
    assert tr.mean_mbps == pytest.approx(12.0) and tr.duration == pytest.approx(0.001)


def test_cooked(tmp_path):
    p = write(tmp_path, "trace_1.log", "10.0 1.5\n11.0\t3.0\n\n12.5 0.0\n")
    tr = load_trace(p)
    assert tr.fmt == "cooked"
    assert (
        tr.times.tolist() == [0.0, 1.0, 2.5] and tr.duration == 4.0
    )  # last piece as the one before
    assert tr.mbps.tolist() == pytest.approx([1.5, 3.0, 0.0])


def test_canonical_csv_with_and_without_end_row(tmp_path):
    a = load_trace(write(tmp_path, "a.csv", "time_s,mbps\n0,8\n2,4\n"))
    assert a.fmt == "csv" and a.duration == 4.0 and a.capacity.tolist() == [1e6, 5e5]
    b = load_trace(write(tmp_path, "b.csv", "time_s,mbps\n0,8\n2,4\n2.5,\n"))
    assert b.duration == 2.5 and b.mean_mbps == pytest.approx((16 + 2) / 2.5)


def test_ucc_resampling(tmp_path):
    rows = [
        ucc_row("00", "100", "1"),
        ucc_row("00", "300", "3"),  # same second: averaged with the row above
        ucc_row("01", "-", "-"),  # missing: held from the previous row
        ucc_row("03", "400", "4"),  # second 02 has no row yet ...
        ucc_row("02", "500", "5"),  # ... this one steps back 1 s and fills it
        ucc_row("06", "800", "8"),  # seconds 04 and 05: held from 03
    ]
    p = write(tmp_path, "B_2019.12.16_13.40.00.csv", UCC_HEADER + "\n" + "\n".join(rows) + "\n")
    dl = load_trace(p)
    assert dl.fmt == "ucc" and dl.duration == 7.0
    assert dl.times.tolist() == list(range(7))
    assert (dl.capacity * 8 / 1000).tolist() == pytest.approx([200, 300, 500, 400, 400, 400, 800])
    ul = load_trace(p, column="UL_bitrate")
    assert (ul.capacity * 8 / 1000).tolist() == pytest.approx([2, 3, 5, 4, 4, 4, 8])


def test_ucc_leading_missing_takes_first_value(tmp_path):
    rows = [ucc_row("00", "-"), ucc_row("01", "80"), ucc_row("02", "40")]
    tr = load_trace(write(tmp_path, "u.csv", UCC_HEADER + "\n" + "\n".join(rows)))
    assert (tr.capacity * 8 / 1000).tolist() == pytest.approx([80, 80, 40])


def test_format_comes_from_content_not_name(tmp_path):
    assert detect_format(write(tmp_path, "looks.csv", "1\n2\n3\n")) == "mahimahi"
    assert detect_format(write(tmp_path, "looks.up", "0.0 1.0\n1.0 2.0\n")) == "cooked"
    assert detect_format(write(tmp_path, "noext", "time_s,mbps\n0,1\n")) == "csv"
    assert detect_format(write(tmp_path, "x.txt", UCC_HEADER + "\n" + ucc_row("00", "5"))) == "ucc"


# round-trips -----------------------------------------------------------------------------------
def make_all_formats(tmp_path: Path) -> list[Path]:
    rng = np.random.default_rng(3)
    ms = np.sort(rng.integers(300, 5000, 400))
    cooked = "\n".join(f"{0.5 * k} {v:.3f}" for k, v in enumerate(rng.uniform(0, 20, 30)))
    ucc = [ucc_row(f"{s:02d}", str(int(v))) for s, v in enumerate(rng.integers(0, 90_000, 40))]
    return [
        write(tmp_path, "m.down", "\n".join(map(str, ms)) + "\n"),
        write(tmp_path, "c.txt", cooked + "\n"),
        write(tmp_path, "u.csv", UCC_HEADER + "\n" + "\n".join(ucc) + "\n"),
        write(tmp_path, "k.csv", "time_s,mbps\n0,1.25\n0.3,0\n1.1,7.5\n2.0,\n"),
    ]


def test_every_format_round_trips_through_canonical_csv(tmp_path):
    for src in make_all_formats(tmp_path):
        tr = load_trace(src)
        out = tr.to_csv(tmp_path / "out" / f"{src.name}.canonical.csv")
        back = load_trace(out)
        assert back.fmt == "csv"
        assert back.times == pytest.approx(tr.times, rel=1e-15, abs=0)
        assert back.duration == tr.duration
        assert back.capacity == pytest.approx(tr.capacity, rel=1e-12)
        assert not list(out.parent.glob(".*.tmp"))  # written atomically, nothing left behind
        again = load_trace(back.to_csv(tmp_path / "again.csv"))
        assert again.capacity == pytest.approx(tr.capacity, rel=1e-12)


def test_array_trace_round_trips(tmp_path):
    tr = Trace([0.0, 0.1, 0.7], [3.0, 0.0, 1e9], 1.3)
    back = load_trace(tr.to_csv(tmp_path / "t.csv"))
    assert back.times.tolist() == tr.times.tolist() and back.duration == 1.3
    assert back.capacity == pytest.approx(tr.capacity, rel=1e-15)


# bad input -------------------------------------------------------------------------------------
BAD = [
    ("empty.up", "", EmptyTraceError, None, "empty file"),
    ("blank.up", "\n  \n", EmptyTraceError, None, "empty file"),
    ("nan.txt", "0 1\n1 nan\n", TraceValueError, 2, "finite"),
    ("neg.txt", "0 1\n1 2\n2 -3\n", TraceValueError, 3, "negative"),
    ("neg.up", "5\n-7\n", TraceValueError, 2, "negative"),
    ("back.up", "5\n9\n7\n", TraceTimeError, 3, "backwards"),
    ("back.txt", "0 1\n2 1\n1 1\n", TraceTimeError, 3, "backwards"),
    ("same.csv", "time_s,mbps\n0,1\n0,2\n", TraceTimeError, 3, "repeats"),
    ("nan.csv", "time_s,mbps\n0,1\n1,NaN\n", TraceValueError, 3, "finite"),
    ("empty-mbps.csv", "time_s,mbps\n0,\n1,2\n", TraceFormatError, 2, "not a number"),
    ("header.csv", "time_s,mbps\n", EmptyTraceError, 1, "header only"),
    ("ucc-header.csv", UCC_HEADER + "\n", EmptyTraceError, 1, "header only"),
    ("garbage.up", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", TraceFormatError, 1, "binary"),
    ("latin.up", b"12\n\xff\xfe\xfa\n", TraceFormatError, 2, "binary"),
    ("nul.up", b"12\n13\n\x00\x01", TraceFormatError, 3, "NUL byte"),
    ("unknown.txt", "hello world\n", TraceFormatError, 1, "unknown trace format"),
    ("unknown.csv", "a,b,c\n1,2,3\n", TraceFormatError, 1, "unknown trace format"),
    ("float.up", "1\n2\n3.5\n", TraceFormatError, 3, "not an integer"),
    ("cols.txt", "0 1\n1 2 3\n", TraceFormatError, 2, "expected 2"),
    ("zero.txt", "0 0\n1 0\n", EmptyTraceError, None, "zero total bytes"),
    (
        "ucc-neg.csv",
        UCC_HEADER + "\n" + ucc_row("00", "5") + "\n" + ucc_row("01", "-5") + "\n",
        TraceValueError,
        3,
        "DL_bitrate",
    ),
    (
        "ucc-back.csv",
        UCC_HEADER + "\n" + ucc_row("40", "5") + "\n" + ucc_row("00", "5") + "\n",
        TraceTimeError,
        3,
        "backwards by 40 s",
    ),
    (
        "ucc-ts.csv",
        UCC_HEADER + "\n" + ucc_row("00", "5").replace("2019.12.16_", "2019-12-16 ") + "\n",
        TraceFormatError,
        2,
        "Timestamp",
    ),
]


@pytest.mark.parametrize("name, content, err, line, text", BAD, ids=[b[0] for b in BAD])
def test_bad_input_names_file_and_line(tmp_path, name, content, err, line, text):
    p = write(tmp_path, name, content)
    with pytest.raises(err) as info:
        load_trace(p)
    msg = str(info.value)
    assert isinstance(info.value, TraceError)
    assert str(p) in msg and text in msg and "expected" in msg
    if line is not None:
        assert f"line {line}:" in msg
    assert "\n" not in msg


def test_missing_paths_and_empty_folders(tmp_path):
    with pytest.raises(TraceNotFoundError, match="nope.up"):
        load_trace(tmp_path / "nope.up")
    with pytest.raises(TraceNotFoundError, match="nowhere"):
        TraceSet.from_path(tmp_path / "nowhere")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "README.md").write_text("# traces\n")
    (tmp_path / "docs" / ".hidden.up").write_text("1\n2\n")
    with pytest.raises(EmptyTraceError, match="docs.*no trace files"):
        TraceSet.from_path(tmp_path / "docs")
    with pytest.raises(TraceFormatError, match="is a folder"):
        load_trace(tmp_path / "docs")


def test_invalid_options(tmp_path):
    p = write(tmp_path, "a.up", "1\n2\n")
    with pytest.raises(TraceValueError, match="column"):
        load_trace(p, column="RSRP")
    with pytest.raises(TraceValueError, match="resolution_ms"):
        load_trace(p, resolution_ms=0)
    with pytest.raises(TraceValueError, match="scale"):
        TraceSet.from_path(p, scale=-1.0)
    with pytest.raises(TraceValueError, match="split"):
        TraceSet.from_path(p, split="dev")
    with pytest.raises(TraceValueError, match="fractions"):
        TraceSet.from_path(p, fractions=(0.5, 0.5, 0.5))
