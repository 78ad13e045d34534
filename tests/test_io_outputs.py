"""Output folders: slimrl replaces only what it wrote, never an input or the working folder, and a
kill at any moment of a replacement leaves the complete old or the complete new output."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import slimrl.io as sio
from slimrl.errors import SlimrlError
from slimrl.io import OutputError, atomic_dir, marker_path

ROOT = Path(__file__).resolve().parents[1]


def write_output(path: Path, files: dict[str, str], **kw) -> None:
    with atomic_dir(path, **kw) as tmp:
        for name, text in files.items():
            (tmp / name).write_text(text)


def listing(path: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(path.iterdir())}


def test_output_into_the_working_folder_or_its_ancestor_is_refused(tmp_path, monkeypatch):
    work = tmp_path / "work"
    (work / "sub").mkdir(parents=True)
    (work / "thesis.tex").write_text("years of work")
    monkeypatch.chdir(work)
    for out in (".", str(work), "sub/..", ".."):
        with pytest.raises(SlimrlError, match="current folder"), atomic_dir(out) as tmp:
            (tmp / "summary.csv").write_text("x")
    monkeypatch.chdir(work / "sub")
    with pytest.raises(OutputError, match="contains the current folder"), atomic_dir(work):
        pass
    assert (work / "thesis.tex").read_text() == "years of work" and (work / "sub").is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["work"]  # no leftovers either


def test_folder_slimrl_did_not_create_is_never_replaced(tmp_path):
    run = tmp_path / "runs" / "ppo_1"  # a training run: `slimrl export RUN --out RUN`
    run.mkdir(parents=True)
    (run / "SlimSplit-v0.zip").write_text("model")
    with pytest.raises(OutputError) as info, atomic_dir(run) as tmp:
        (tmp / "manifest.json").write_text("{}")
    msg = str(info.value)
    assert str(run) in msg and "slimrl did not create it" in msg and "\n" not in msg
    assert listing(run) == {"SlimSplit-v0.zip": "model"}
    assert sorted(p.name for p in run.parent.iterdir()) == ["ppo_1"]
    f = tmp_path / "file"
    f.write_text("data")
    with pytest.raises(OutputError, match="existing file"), atomic_dir(f):
        pass
    link = tmp_path / "link"
    link.symlink_to(run)
    with pytest.raises(OutputError, match="symbolic link"), atomic_dir(link):
        pass
    assert f.read_text() == "data" and listing(run) == {"SlimSplit-v0.zip": "model"}


def test_output_that_is_or_contains_an_input_is_refused(tmp_path):
    out = tmp_path / "eval"
    write_output(out, {"summary.csv": "1"}, kind="evaluation")
    bundle = out / "bundle"  # an input living inside the output
    bundle.mkdir()
    for protect in ([bundle], [out], [tmp_path / "eval" / "x" / ".."]):
        with (
            pytest.raises(OutputError, match="input"),
            atomic_dir(out, kind="evaluation", protect=protect),
        ):
            pass
    assert bundle.is_dir() and (out / "summary.csv").read_text() == "1"
    write_output(tmp_path / "eval2", {"a": "1"}, protect=[out])  # beside an input: fine


def test_own_output_is_replaced_others_are_not(tmp_path):
    out = tmp_path / "out"
    out.mkdir()  # an empty folder holds nothing to lose
    write_output(out, {"a.csv": "1", "b.csv": "1"}, kind="evaluation")
    assert marker_path(out).is_file() and sio.output_kind(out) == "evaluation"
    assert sorted(os.listdir(out)) == ["a.csv", "b.csv"]  # the marker lives beside the folder
    write_output(out, {"a.csv": "2"}, kind="evaluation")
    assert listing(out) == {"a.csv": "2"}
    with pytest.raises(OutputError, match="'evaluation' output, not 'bundle'"):
        write_output(out, {"m": "x"}, kind="bundle")
    (out / "notes.txt").write_text("mine")  # the user added a file: no longer only ours
    with pytest.raises(OutputError, match="notes.txt"):
        write_output(out, {"a.csv": "3"}, kind="evaluation")
    assert listing(out) == {"a.csv": "2", "notes.txt": "mine"}
    (out / "notes.txt").unlink()
    write_output(out / "bundle", {"manifest.json": "{}"}, kind="bundle")  # nested output: fine
    write_output(out, {"a.csv": "4"}, kind="evaluation")
    assert listing(out) == {"a.csv": "4"}
    # a folder recreated under the name is not the one slimrl wrote, even with the same files
    for p in out.iterdir():
        p.unlink()
    out.rmdir()
    (tmp_path / "keep").mkdir()  # hold on to inodes so the new folder cannot reuse the old one's
    out.mkdir()
    (out / "a.csv").write_text("user data")
    with pytest.raises(OutputError, match="not the folder slimrl wrote"):
        write_output(out, {"a.csv": "5"}, kind="evaluation")
    assert listing(out) == {"a.csv": "user data"}


def test_overwrite_false_and_default_signature(tmp_path):
    out = tmp_path / "o"
    with atomic_dir(out, True) as tmp:  # the historical positional form keeps working
        (tmp / "x").write_text("1")
    with pytest.raises(FileExistsError), atomic_dir(out, overwrite=False):
        pass
    assert listing(out) == {"x": "1"}


def test_refusal_happens_before_the_work(tmp_path):
    ran = []
    (tmp_path / "data.csv").write_text("x")
    with pytest.raises(OutputError), atomic_dir(tmp_path):
        ran.append(1)  # the work would be wasted: refused before it starts
    assert not ran


KILL = r"""
import os, shutil, sys
import slimrl.io as sio
k, out, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3]
n = [0]
def hook(fn):
    def wrapped(*a, **kw):
        r = fn(*a, **kw)
        n[0] += 1
        if n[0] == k:
            os._exit(9)
        return r
    return wrapped
os.replace, os.rename, shutil.rmtree = hook(os.replace), hook(os.rename), hook(shutil.rmtree)
if hasattr(sio, "_exchange"):
    sio._exchange = hook(sio._exchange) if mode == "exchange" else (lambda a, b: False)
with sio.atomic_dir(out) as tmp:
    for name in ("a.txt", "c.txt"):
        (tmp / name).write_text("new" * 1000)
"""


@pytest.mark.parametrize("mode", ["exchange", "rename"])
def test_kill_at_any_step_of_a_replacement_leaves_old_or_new(tmp_path, mode):
    old = {"a.txt": "old" * 1000, "b.txt": "old" * 1000}
    new = {"a.txt": "new" * 1000, "c.txt": "new" * 1000}
    out = tmp_path / "out"
    for k in range(1, 20):
        write_output(out, old)
        proc = subprocess.run(
            [sys.executable, "-c", KILL, str(k), str(out), mode], cwd=ROOT, capture_output=True
        )
        assert proc.returncode in (0, 9), proc.stderr.decode()[-2000:]
        if out.exists():
            assert listing(out) in (old, new), (k, sorted(os.listdir(out)))
        else:  # only between the two renames of the fallback: the old one is complete aside
            assert mode == "rename", k
            aside = [p for p in tmp_path.glob(".out.*.old") if any(p.iterdir())]
            assert len(aside) == 1 and listing(aside[0]) == old
            aside[0].rename(out)
        hidden = [p.name for p in tmp_path.iterdir() if p.name != "out"]
        assert all(h.startswith(".out.") for h in hidden), hidden
        write_output(out, {"z": "1"})  # whatever the kill left is still replaceable
        assert listing(out) == {"z": "1"}
        if proc.returncode == 0:
            break
    else:
        pytest.fail("the replacement never completed")
