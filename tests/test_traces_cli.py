"""``slimrl traces info`` and ``slimrl traces plot``."""

from __future__ import annotations

from slimrl.cli import main
from slimrl.paths import TRACES_DIR


def test_info_real_uplinks(capsys):
    rc = main(["traces", "info", str(TRACES_DIR / "mahimahi-cellular"), "--pattern", "*.up"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "ATT-LTE-driving.up" in out and "Verizon-LTE-short.up" in out and "mahimahi" in out
    assert "13.32" in out  # TMobile-LTE-short.up mean Mbit/s
    assert "p95 Mbit/s" in out and "outage" in out


def test_info_ucc_column_and_split(tmp_path, capsys):
    ucc = TRACES_DIR / "ucc-5g-download" / "Static"
    rc = main(["traces", "info", str(ucc), "--column", "UL_bitrate", "--split", "test"])
    out = capsys.readouterr().out
    assert rc == 0 and "ucc" in out and "(1 traces)" in out


def test_info_bad_file_is_one_line_and_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.up"
    bad.write_text("100\n200\n150\n")
    rc = main(["traces", "info", str(bad)])
    captured = capsys.readouterr()
    assert rc == 2 and captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and str(bad) in lines[0] and "line 3" in lines[0]
    assert "Traceback" not in captured.err
    rc = main(["traces", "info", str(tmp_path / "missing")])
    assert rc == 2 and "missing" in capsys.readouterr().err


def test_plot_writes_png(tmp_path, capsys):
    (tmp_path / "a.txt").write_text("0 1\n1 3\n2 0\n3 2\n")
    (tmp_path / "b.up").write_text("\n".join(str(ms) for ms in range(500, 4000, 7)) + "\n")
    out = tmp_path / "plots" / "cap.png"
    rc = main(["traces", "plot", str(tmp_path), "--out", str(out)])
    assert rc == 0 and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert str(out) in capsys.readouterr().out
    assert not list(out.parent.glob(".*.tmp"))
