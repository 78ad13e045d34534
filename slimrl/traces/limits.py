"""Limits on what a trace file may ask for, checked before anything proportional is allocated.

Trace files are untrusted input (downloaded data sets, files users pass in): without these, a
mahimahi timestamp near 1e11 ms or a tiny bin width asks for terabytes of bins, and a trace that
lasts 1e300 s makes a full-trace evaluation run forever. The shipped traces are far inside them
(the largest: 3.4 MB, 6,654 s, 10,648 pieces at 100 ms).
"""

from __future__ import annotations

MAX_FILE_BYTES = 64 * 2**20
"""Largest trace file read (64 MiB): about 8 million mahimahi delivery opportunities."""

MAX_PIECES = 2_000_000
"""Most pieces in one trace (rows, or mahimahi bins after binning): 55 h at 100 ms."""

MAX_DURATION_S = 86_400.0
"""Longest trace (one day), measured from its first piece to its end."""

MIN_RESOLUTION_MS = 1.0
"""Narrowest mahimahi bin: the format's timestamps are whole milliseconds."""

MIN_TOTAL_BYTES = 1.0
"""Fewest bytes one period of a trace may deliver: less is an outage (and would overflow the
period count of a transfer)."""

MAX_SHOWN_CHARS = 40
"""Longest quoted value in an error message (longer ones are cut and end with '...')."""


def shown(value: object, limit: int = MAX_SHOWN_CHARS) -> str:
    """``repr`` of ``value`` (as a string) cut to ``limit`` characters for an error message."""
    s = str(value)
    return repr(s if len(s) <= limit else s[: limit - 3] + "...")
