"""One writer per run folder: created exclusively, locked while a ``slimrl train`` writes it.

A new run folder is made with ``mkdir`` (never ``exist_ok``): when the name is taken (another run
started at the same moment) the next ``_<N>`` is tried. The writer then holds an exclusive
``flock`` on ``<run>/.slimrl-train.lock`` until it is done; a second writer (``--resume`` of a
run still training) is refused. The lock dies with its process, so a crashed run never leaves
a stale lock behind. Where ``fcntl`` is missing (Windows) folders are still created
exclusively but not locked.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from slimrl.errors import RunError
from slimrl.runs.layout import LOCK_FILE

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

#: names tried after the asked-for one is taken (``<name>_<N+1>``, ...)
MAX_NAME_ATTEMPTS = 1000


class RunLock:
    """The exclusive lock of a run folder (a context manager; :meth:`release` is idempotent)."""

    def __init__(self, run_dir: str | os.PathLike) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        """Take the lock now or raise :class:`RunError` (never waits)."""
        if fcntl is None:
            return self
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise RunError(f"{self.run_dir}: cannot lock the run folder ({exc.strerror})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _read_pid(fd)
            os.close(fd)
            who = f" (pid {holder})" if holder else ""
            raise RunError(
                f"{self.run_dir}: the run is in use by another slimrl train{who}; wait for it to "
                "finish (or stop it) before resuming it"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> RunLock:
        return self.acquire() if not self.held else self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_pid(fd: int) -> str:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return ""
    return text if text.isdigit() else ""


def lock_run_dir(run_dir: str | os.PathLike) -> RunLock:
    """Lock an existing run folder (``--resume``); :class:`RunError` when another run holds it."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunError(f"--resume {run_dir}: no such run folder")
    return RunLock(run_dir).acquire()


def create_run_dir(path: str | os.PathLike) -> tuple[Path, RunLock]:
    """Create the run folder ``path`` exclusively, or the next free ``<name>_<N>``; lock it."""
    path = Path(path)
    m = re.fullmatch(r"(.*)_(\d+)", path.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(MAX_NAME_ATTEMPTS):
        try:
            path.mkdir()
        except FileExistsError:
            if m is None:
                raise RunError(f"{path}: run folder exists already; expected a new one") from None
            path = path.parent / f"{m.group(1)}_{int(path.name.rsplit('_', 1)[1]) + 1}"
            continue
        return path, RunLock(path).acquire()
    raise RunError(f"{path.parent}: no free run folder name after {MAX_NAME_ATTEMPTS} tries")
