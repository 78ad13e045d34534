"""A user-space uplink paced by a channel trace.

The sender holds a token bucket that fills at the trace's capacity at the current trace time and
has no burst allowance: a chunk leaves only once the trace has delivered all of its bytes, so
a payload of ``n`` bytes handed over at trace time ``t`` finishes at
``t + trace.transfer_time(t, n)``, exactly the simulator's transfer, and outages (zero
capacity) stall the sender for real.
Trace time runs with the wall clock from ``start_s``; the trace wraps around at its end.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Protocol

from slimrl.errors import SlimrlError


class PacingTrace(Protocol):
    def transfer_time(self, t: float, nbytes: float) -> float: ...


class UplinkTimeout(SlimrlError):
    """The trace would stall a send past its timeout (a long outage)."""


class TraceUplink:
    """Send bytes on a socket no faster than ``trace`` allows.

    ``chunk_bytes`` is the pacing granularity (one MTU by default); ``base_delay_ms`` is the
    scenario's base one-way delay, added before the last byte leaves.
    """

    def __init__(
        self,
        trace: PacingTrace,
        *,
        start_s: float = 0.0,
        chunk_bytes: int = 1500,
        base_delay_ms: float = 0.0,
        clock: Callable[[], float] = time.perf_counter,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if chunk_bytes <= 0:
            raise ValueError("chunk_bytes must be positive")
        self.trace = trace
        self.start_s = float(start_s)
        self.chunk_bytes = int(chunk_bytes)
        self.base_delay_s = base_delay_ms / 1e3
        self._clock = clock
        self._sleep = sleep
        self._t0 = clock()

    def trace_time(self) -> float:
        """Seconds into the trace now."""
        return self.start_s + (self._clock() - self._t0)

    def schedule(self, t: float, nbytes: int) -> list[tuple[int, float]]:
        """``(end_byte, delay_s)`` per chunk: when it may leave, relative to trace time ``t``."""
        out = []
        end = 0
        while end < nbytes:
            end = min(end + self.chunk_bytes, nbytes)
            out.append((end, self.trace.transfer_time(t, end)))
        if out:
            out[-1] = (nbytes, out[-1][1] + self.base_delay_s)
        return out

    def send(
        self, sock: socket.socket, header: bytes, payload: bytes, timeout_s: float = 30.0
    ) -> float:
        """Send ``header`` then ``payload`` paced by the trace; return the transfer time in s.

        The header goes out with the first chunk and is not paced (the simulator counts payload
        bytes only). Raises :class:`UplinkTimeout` if the trace would stall past ``timeout_s``
        (the frame is then half-sent: the caller must drop the connection).
        """
        start = self._clock()
        t = self.start_s + (start - self._t0)
        view = memoryview(payload)
        sent = 0
        first = True
        for end, delay in self.schedule(t, len(payload)):
            if delay > timeout_s:
                raise UplinkTimeout(
                    f"uplink stalled: the trace needs {delay:.1f} s for {end} bytes at "
                    f"t={t:.1f} s (timeout {timeout_s:.1f} s)"
                )
            wait = start + delay - self._clock()
            if wait > 0:
                self._sleep(wait)
            chunk = view[sent:end]
            if first:
                sock.sendall(header + bytes(chunk))
                first = False
            else:
                sock.sendall(chunk)
            sent = end
        if first:
            sock.sendall(header)
        return self._clock() - start
