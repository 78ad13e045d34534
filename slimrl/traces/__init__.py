"""Channel traces: several file formats read into one piecewise-constant ``Trace`` type.

``load_trace`` reads one file (format detected from its content), ``TraceSet`` a folder with a
deterministic train/val/test split, and ``TraceBank`` answers transfer-time queries over many
traces in one vectorised pass.
"""

from slimrl.traces.bank import TraceBank
from slimrl.traces.errors import (
    EmptyTraceError,
    TraceError,
    TraceFormatError,
    TraceLimitError,
    TraceNotFoundError,
    TraceTimeError,
    TraceValueError,
)
from slimrl.traces.formats import FORMATS, detect_format, load_trace
from slimrl.traces.limits import MAX_DURATION_S, MAX_FILE_BYTES, MAX_PIECES, MIN_RESOLUTION_MS
from slimrl.traces.sets import SPLITS, TraceSet, list_trace_files, split_counts, split_files
from slimrl.traces.trace import MBPS, Trace

__all__ = [
    "FORMATS",
    "MAX_DURATION_S",
    "MAX_FILE_BYTES",
    "MAX_PIECES",
    "MBPS",
    "MIN_RESOLUTION_MS",
    "SPLITS",
    "EmptyTraceError",
    "Trace",
    "TraceBank",
    "TraceError",
    "TraceFormatError",
    "TraceLimitError",
    "TraceNotFoundError",
    "TraceSet",
    "TraceTimeError",
    "TraceValueError",
    "detect_format",
    "list_trace_files",
    "load_trace",
    "split_counts",
    "split_files",
]
