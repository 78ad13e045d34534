"""Trace sets: file discovery, the deterministic split, scaling, and the shipped real traces."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from slimrl.paths import TRACES_DIR
from slimrl.traces import SPLITS, TraceBank, TraceSet, load_trace, split_counts, split_files

MAHIMAHI = TRACES_DIR / "mahimahi-cellular"
UCC = TRACES_DIR / "ucc-5g-download"


def make_folder(root: Path, n: int, prefix: str = "t") -> list[Path]:
    root.mkdir(parents=True, exist_ok=True)
    files = []
    for k in range(n):
        p = root / f"{prefix}{k:03d}.txt"
        p.write_text(f"0 {1 + k}\n1 {2 + k}\n")
        files.append(p)
    return files


# split rule ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "n, counts",
    [(0, (0, 0, 0)), (1, (1, 0, 0)), (2, (2, 0, 0)), (3, (1, 1, 1)), (4, (2, 1, 1)), (7, (5, 1, 1)),
     (13, (9, 2, 2)), (20, (14, 3, 3)), (100, (70, 15, 15)), (1000, (700, 150, 150))],
)  # fmt: skip
def test_split_counts(n, counts):
    assert split_counts(n) == counts


def test_split_counts_other_fractions():
    assert split_counts(10, (0.5, 0.25, 0.25)) == (4, 3, 3)
    assert split_counts(10, (1.0, 0.0, 0.0)) == (10, 0, 0)
    assert split_counts(3, (0.8, 0.2, 0.0)) == (2, 1, 0)


def test_split_is_deterministic_and_respects_fractions():
    files = [Path("set/a") / f"trace-{k}.up" for k in range(200)]
    first = split_files(files)
    assert first == split_files(list(reversed(files)))  # order of discovery does not matter
    got = [sum(v == s for v in first.values()) for s in SPLITS]
    assert got == [140, 30, 30]
    # the rule: rank by sha256 of the file name
    import hashlib

    ranked = sorted(files, key=lambda f: hashlib.sha256(f.name.encode()).hexdigest())
    assert [first[f] for f in ranked] == ["train"] * 140 + ["val"] * 30 + ["test"] * 30


def test_adding_files_elsewhere_does_not_move_a_folders_split():
    a = [Path("root/a") / f"a{k}.csv" for k in range(9)]
    b = [Path("root/b") / f"b{k}.csv" for k in range(4)]
    before = split_files(a + b)
    after = split_files(a + b + [Path("root/c") / f"c{k}.csv" for k in range(30)])
    after2 = split_files(a + b + [Path("root/b/deeper") / f"x{k}.csv" for k in range(5)])
    for f in a + b:
        assert before[f] == after[f] == after2[f]


def test_trace_set_from_folder(tmp_path):
    make_folder(tmp_path / "x", 10)
    make_folder(tmp_path / "y" / "z", 4, prefix="z")
    (tmp_path / "README.md").write_text("# my traces\n")
    (tmp_path / "x" / "LICENSE").write_text("GPL\n")
    (tmp_path / ".cache").mkdir()
    (tmp_path / ".cache" / "junk.txt").write_text("not a trace\n")
    full = TraceSet.from_path(tmp_path)
    assert len(full) == 14 and full.names[0] == "x/t000.txt" and full.names[-1] == "y/z/z003.txt"
    parts = {s: TraceSet.from_path(tmp_path, split=s) for s in SPLITS}
    assert [len(parts[s]) for s in SPLITS] == [6 + 2, 2 + 1, 2 + 1]
    union = sorted(n for s in SPLITS for n in parts[s].names)
    assert union == sorted(full.names)
    # a new folder elsewhere leaves every existing file where it was
    make_folder(tmp_path / "w", 25, prefix="w")
    for s in SPLITS:
        names = TraceSet.from_path(tmp_path, split=s).names
        assert [n for n in names if not n.startswith("w/")] == parts[s].names
    assert len(TraceSet.from_path(tmp_path, pattern="z*.txt")) == 4


def test_single_file_is_a_whole_set_and_scale(tmp_path):
    p = make_folder(tmp_path, 1)[0]
    for split in (None, *SPLITS):
        s = TraceSet.from_path(p, split=split)
        assert len(s) == 1 and s.files == [p]
    doubled = TraceSet.from_path(p, scale=2.0)
    assert doubled[0].mean_mbps == pytest.approx(2 * load_trace(p).mean_mbps)
    assert isinstance(doubled.bank, TraceBank) and doubled.bank is doubled.bank


# shipped real traces ---------------------------------------------------------------------------
README_UP_MBPS = {
    "ATT-LTE-driving-2016.up": 1.91,
    "ATT-LTE-driving.up": 0.83,
    "TMobile-LTE-short.up": 13.32,
    "TMobile-UMTS-driving.up": 0.94,
    "Verizon-EVDO-driving.up": 0.84,
    "Verizon-LTE-short.up": 5.95,
}


def test_real_mahimahi_uplinks():
    ups = TraceSet.from_path(MAHIMAHI, pattern="*.up")
    assert sorted(ups.names) == sorted(README_UP_MBPS)
    for tr in ups:
        assert tr.fmt == "mahimahi"
        assert tr.mean_mbps == pytest.approx(README_UP_MBPS[tr.name], abs=0.01)
    late = ups[ups.names.index("ATT-LTE-driving.up")]
    assert late.capacity_at(0.3) == 0.0  # starts at 831 ms
    assert late.duration == pytest.approx(1012.5, abs=0.1)
    assert late.outage_fraction > 0.07  # the 78 s gap
    assert len(TraceSet.from_path(MAHIMAHI)) == 13  # README, README.md and LICENSE are skipped


def test_real_ucc_download_sessions():
    dl = TraceSet.from_path(UCC, pattern="*.csv")
    assert len(dl) >= 19 and all(tr.fmt == "ucc" for tr in dl)
    means = np.array([tr.mean_mbps for tr in dl])
    assert np.all((means > 1) & (means < 200)), means
    assert 10 < means.mean() < 100
    ul = load_trace(dl.files[0], column="UL_bitrate")
    assert ul.mean_mbps < 1.0 < dl[0].mean_mbps  # UL_bitrate is ACK traffic, not uplink capacity


def test_bank_on_real_traces_matches_each_trace():
    ups = TraceSet.from_path(MAHIMAHI, pattern="*.up")
    bank = ups.bank
    rng = np.random.default_rng(7)
    idx = rng.integers(0, len(ups), 5000)
    t = rng.uniform(0, 2500, 5000)
    n = np.exp(rng.uniform(np.log(100), np.log(5e7), 5000))
    got = bank.transfer_times(idx, t, n)
    assert np.all(got >= 0) and np.all(np.isfinite(got))
    shaped = bank.transfer_times(idx.reshape(50, 100), t.reshape(50, 100), n.reshape(50, 100))
    assert np.array_equal(shaped.ravel(), got)
    caps = bank.capacity_at(idx, t)
    assert caps[3] == ups[int(idx[3])].capacity_at(float(t[3]))
    for k, tr in enumerate(ups):
        sel = idx == k
        assert np.array_equal(got[sel], tr.transfer_times(t[sel], n[sel]))
    assert got[0] == bank.transfer_time(int(idx[0]), float(t[0]), float(n[0]))
