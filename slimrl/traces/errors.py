"""The trace error family: each message names the file and line (or field) and what was expected."""

from __future__ import annotations

from slimrl.errors import TraceError


class TraceNotFoundError(TraceError):
    """A trace path that does not exist."""


class EmptyTraceError(TraceError):
    """An empty file, a header-only CSV, zero total bytes, or a folder with no traces."""


class TraceFormatError(TraceError):
    """Binary data, an unknown format, or a malformed line or field."""


class TraceValueError(TraceError):
    """A NaN, infinite or negative value, or an invalid option (scale, resolution, column)."""


class TraceTimeError(TraceError):
    """Time that goes backwards (or does not increase where it must)."""


__all__ = [
    "EmptyTraceError",
    "TraceError",
    "TraceFormatError",
    "TraceNotFoundError",
    "TraceTimeError",
    "TraceValueError",
]
