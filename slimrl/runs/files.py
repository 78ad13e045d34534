"""Durable atomic writes of run files (models, statistics, training states).

A file is written under a temporary name next to its final one, flushed to disk (``fsync``),
renamed onto the final name, and the folder is synced: a crash at any moment leaves the old
complete file or the new complete file, never a truncated one under the final name.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from slimrl.io import atomic_path


def write_file(path: str | os.PathLike, write: Callable[[BinaryIO], Any]) -> Path:
    """Write ``path`` with ``write(file)`` atomically and durably; returns ``path``."""
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            write(f)  # may close f (Stable-Baselines3's save does)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
    fsync_dir(path.parent)
    return path


def save_model_file(model: Any, path: str | os.PathLike) -> Path:
    """``model.save`` (a Stable-Baselines3 zip) to ``path``, atomically and durably."""
    return write_file(path, model.save)


def fsync_dir(folder: str | os.PathLike) -> None:
    """Sync a folder's entries (a rename in it) to disk, where the system allows it."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
