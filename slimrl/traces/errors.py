"""The trace error family: each message names the file and line (or field) and what was expected."""

from __future__ import annotations

from slimrl.errors import TraceError


class TraceNotFoundError(TraceError):
    """A trace path that does not exist."""


class EmptyTraceError(TraceError):
    """An empty file, a header-only CSV, zero total bytes, or a folder with no traces."""


class TraceFormatError(TraceError):
    """Binary data, an unknown format, a malformed line or field, or a path that is not a regular
    file (a folder, FIFO, socket or device)."""


class TraceValueError(TraceError):
    """A NaN, infinite or negative value, or an invalid option (scale, resolution, column)."""


class TraceTimeError(TraceError):
    """Time that goes backwards (or does not increase where it must)."""


class TraceLimitError(TraceError):
    """A trace beyond a limit of :mod:`slimrl.traces.limits` (file size, pieces, duration, bin
    width)."""


__all__ = [
    "EmptyTraceError",
    "TraceError",
    "TraceFormatError",
    "TraceLimitError",
    "TraceNotFoundError",
    "TraceTimeError",
    "TraceValueError",
]
