"""Atomic file and folder writes: readers never see a half-written output.

Folder outputs (:func:`atomic_dir`) only ever replace what slimrl itself wrote there. Each output
folder ``DIR`` gets a marker file next to it, ``.DIR.slimrl-output`` (beside the folder rather than
in it, so that listings, copies and checksums of the output stay exactly its files), which records
the output's kind, the folder's inode and the names slimrl wrote in it. An existing folder is
replaced only when it is empty, or when its marker has the same kind, still names that very folder
(the inode) and the folder holds nothing but those names and nested slimrl outputs. Anything else,
and any output that is the current folder, one of its ancestors or contains an input
(``protect``), is refused with an :class:`OutputError`; nothing is ever deleted to find out.

Replacing swaps the new folder in with one atomic ``renameat2(RENAME_EXCHANGE)`` (Linux) and only
then deletes the old one: a crash at any moment leaves the complete old or the complete new output
under the name, plus at most a hidden leftover next to it. Where the exchange is unsupported the
old folder is renamed aside first (a hidden ``.DIR.*.old``), then the new one renamed in.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import json
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from slimrl.errors import SlimrlError

MARKER_SUFFIX = ".slimrl-output"
MARKER_FORMAT = "slimrl-output"
DEFAULT_KIND = "output"
MAX_MARKER_BYTES = 1 << 20  # a marker is a few hundred bytes; anything bigger is not ours
MAX_MARKER_ENTRIES = 10_000  # outputs with more top-level names are checked by inode only
_MAX_NESTING = 8  # nested outputs checked below an output (e.g. a bundle inside a reference run)


class OutputError(SlimrlError):
    """An output path that slimrl refuses to write: it would replace something it did not create."""


class OutputExistsError(OutputError, FileExistsError):
    """The output exists and the caller asked not to overwrite it."""


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    # mkstemp creates 0600; give the output the mode a plain open() would (0666 less the umask)
    os.chmod(tmp_path, 0o666 & ~_umask())
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_dir(
    path: str | os.PathLike,
    overwrite: bool = True,
    *,
    kind: str = DEFAULT_KIND,
    protect: Iterable[str | os.PathLike] = (),
) -> Iterator[Path]:
    """Yield a temporary folder next to ``path``; on success it becomes ``path``.

    ``kind`` names the output (``evaluation``, ``bundle``, ...): an existing ``path`` is replaced
    only if it is an empty folder or a ``kind`` output slimrl wrote there (see the module
    docstring); ``overwrite=False`` refuses any existing ``path``. ``protect`` lists input paths
    that the output must neither be nor contain. The checks run before the caller's work starts
    and again before the swap; a refusal is an :class:`OutputError` and deletes nothing.
    """
    path = Path(path)
    kind = _check_kind(kind)
    protect = [Path(p) for p in protect]
    check_output_dir(path, overwrite, kind=kind, protect=protect)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        yield tmp
        check_output_dir(path, overwrite, kind=kind, protect=protect)
        _install(tmp, path, kind)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def check_output_dir(
    path: str | os.PathLike,
    overwrite: bool = True,
    *,
    kind: str = DEFAULT_KIND,
    protect: Iterable[str | os.PathLike] = (),
) -> None:
    """Raise :class:`OutputError` unless :func:`atomic_dir` may write ``path`` (see there)."""
    path = Path(path)
    real = Path(os.path.realpath(path))
    cwd = Path(os.path.realpath(os.getcwd()))
    if real == cwd:
        raise OutputError(
            f"output folder {str(path)!r} is the current folder; refusing to replace it, "
            "expected a new folder (e.g. --out results)"
        )
    if real in cwd.parents:
        raise OutputError(
            f"output folder {str(path)!r} contains the current folder {str(cwd)!r}; refusing to "
            "replace it, expected a new folder"
        )
    for p in protect:
        rp = Path(os.path.realpath(p))
        if real == rp or real in rp.parents:
            what = "is" if real == rp else "contains"
            raise OutputError(
                f"output folder {str(path)!r} {what} the input {str(p)!r}; refusing to replace "
                "it, expected an output folder outside the inputs"
            )
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    except NotADirectoryError:
        raise OutputError(
            f"output folder {str(path)!r}: a parent of it is a file; expected a folder path"
        ) from None
    if not overwrite:
        raise OutputExistsError(f"output folder {str(path)!r} already exists; expected a new path")
    if stat.S_ISLNK(st.st_mode):
        raise OutputError(
            f"output folder {str(path)!r} is a symbolic link; refusing to replace it, expected a "
            "folder slimrl wrote or a new path"
        )
    if not stat.S_ISDIR(st.st_mode):
        raise OutputError(
            f"output folder {str(path)!r} is an existing file; refusing to replace it, expected "
            "a folder slimrl wrote or a new path"
        )
    why = _not_ours(path, st, kind, 0)
    if why is not None:
        raise OutputError(
            f"output folder {str(path)!r} not replaced: {why}; delete it yourself or choose "
            "another output folder"
        )


def marker_path(path: str | os.PathLike) -> Path:
    """The marker file of the output folder ``path``: ``.NAME.slimrl-output`` beside it."""
    path = Path(path)
    return path.parent / f".{path.name}{MARKER_SUFFIX}"


def output_kind(path: str | os.PathLike) -> str | None:
    """The kind of the slimrl output at ``path``, or None if its marker does not vouch for it."""
    path = Path(path)
    try:
        st = os.lstat(path)
    except OSError:
        return None
    marker = read_marker(path)
    if marker is None or not stat.S_ISDIR(st.st_mode):
        return None
    if not any(f["inode"] == st.st_ino for f in marker["folders"]):
        return None
    return marker["kind"]


def read_marker(path: str | os.PathLike) -> dict | None:
    """The parsed marker of the output folder ``path`` (None when absent or malformed)."""
    try:
        with open(marker_path(path), "rb") as f:
            data = f.read(MAX_MARKER_BYTES + 1)
        if len(data) > MAX_MARKER_BYTES:
            return None
        m = json.loads(data)
        ok = (
            isinstance(m, dict)
            and m.get("format") == MARKER_FORMAT
            and isinstance(m.get("kind"), str)
            and isinstance(m.get("folders"), list)
            and all(
                isinstance(f, dict)
                and isinstance(f.get("inode"), int)
                and (f.get("entries") is None or isinstance(f.get("entries"), list))
                for f in m["folders"]
            )
        )
    except (OSError, ValueError):
        return None
    return m if ok else None


def _check_kind(kind: str) -> str:
    if not isinstance(kind, str) or not kind or len(kind) > 64 or not kind.isprintable():
        raise ValueError(f"output kind {kind!r}: expected a short printable name")
    return kind


def _shown(names: Iterable[str], limit: int = 3) -> str:
    names = sorted(names)
    shown = ", ".join(repr(n if len(n) <= 40 else n[:37] + "...") for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _not_ours(path: Path, st: os.stat_result, kind: str | None, depth: int) -> str | None:
    """Why the existing folder ``path`` may not be replaced (None: it may). ``kind`` None: any."""
    try:
        names = os.listdir(path)
    except OSError as exc:
        return f"it cannot be listed ({exc.strerror})"
    if not names and depth == 0:
        return None  # an empty folder holds nothing to lose
    marker = read_marker(path)
    if marker is None:
        where = marker_path(path).name
        return f"slimrl did not create it (no valid output marker {where!r} beside it)"
    if kind is not None and marker["kind"] != kind:
        return f"it holds a slimrl {marker['kind']!r} output, not {kind!r}"
    entry = next((f for f in marker["folders"] if f["inode"] == st.st_ino), None)
    if entry is None:
        return "it is not the folder slimrl wrote there (it was replaced since)"
    if entry.get("entries") is None:
        return None
    known = set(entry["entries"])
    extra = [n for n in names if n not in known and not _nested_ok(path, n, depth)]
    if extra:
        return f"it holds files slimrl did not write there ({_shown(extra)})"
    return None


def _nested_ok(parent: Path, name: str, depth: int) -> bool:
    """``name`` in ``parent`` is a slimrl output (or the marker of one) added after the fact."""
    if depth >= _MAX_NESTING:
        return False
    if name.startswith(".") and name.endswith(MARKER_SUFFIX):
        inner = name[1 : -len(MARKER_SUFFIX)]
        if not inner or inner in (".", ".."):
            return False
        # the marker of a nested output, or one left behind by a nested output since deleted
        return not os.path.lexists(parent / inner) or _nested_ok(parent, inner, depth)
    p = parent / name
    try:
        st = os.lstat(p)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and _not_ours(p, st, None, depth + 1) is None


def note_entries(path: str | os.PathLike, names: Iterable[str]) -> bool:
    """Record ``names`` (written into the slimrl output ``path`` after it was made, e.g. a model
    card) in its marker, so a later replacement still recognises the folder as slimrl's own.

    Returns False, changing nothing, when ``path`` is not a marked output with an entry list.
    """
    path = Path(path)
    marker = read_marker(path)
    try:
        ino = os.lstat(path).st_ino
    except OSError:
        return False
    entry = next((f for f in (marker or {}).get("folders", []) if f["inode"] == ino), None)
    if entry is None or entry.get("entries") is None:
        return False
    entries = sorted(set(entry["entries"]) | {str(n) for n in names})
    entry["entries"] = entries if len(entries) <= MAX_MARKER_ENTRIES else None
    _write_marker(path, marker["kind"], marker["folders"])
    return True


def _entry(folder: Path) -> dict:
    names = sorted(os.listdir(folder))
    return {
        "inode": os.stat(folder).st_ino,
        "entries": names if len(names) <= MAX_MARKER_ENTRIES else None,
    }


def _write_marker(path: Path, kind: str, folders: list[dict]) -> None:
    text = json.dumps({"format": MARKER_FORMAT, "kind": kind, "folders": folders})
    with atomic_path(marker_path(path)) as tmp:
        tmp.write_text(text + "\n")


def _install(tmp: Path, path: Path, kind: str) -> None:
    """Swap the finished ``tmp`` in as ``path``; the old output (if any) goes once it is out."""
    new = _entry(tmp)
    if not os.path.lexists(path):
        _write_marker(path, kind, [new])
        os.rename(tmp, path)
        return
    old_ino = os.lstat(path).st_ino
    old = read_marker(path)
    keep = [f for f in (old["folders"] if old else []) if f["inode"] == old_ino]
    # while both exist the marker vouches for both, so a crash leaves a replaceable output
    _write_marker(path, kind, [new, *keep])
    if _exchange(tmp, path):
        gone = tmp  # now holds the old output
    else:
        gone = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
        os.rename(path, gone)  # onto the empty placeholder: atomic on POSIX
        os.rename(tmp, path)
    shutil.rmtree(gone, ignore_errors=True)
    _write_marker(path, kind, [new])


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _renameat2():
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap the names ``a`` and ``b``; False where the system cannot."""
    fn = _renameat2()
    if fn is None:
        return False
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's content, read in blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
