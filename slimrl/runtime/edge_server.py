"""The edge server: an asyncio TCP server in front of one inference worker.

Connections are handled concurrently, but every inference runs on a single worker thread, so
concurrent clients really queue behind each other; each answer reports the time its request waited
for that worker (``queue_ms``) and the time the worker spent on it (``compute_ms``).

Network peers are untrusted. A connection must send a complete frame within
``handshake_timeout_s`` of connecting, finish every frame it starts within ``read_timeout_s``, and
start the next one within ``idle_timeout_s``; otherwise it is closed.

Slots are given for frames, not for connecting. A connection that has not yet sent a complete
frame is *pending*: at most ``max_pending`` of them, and a newcomer beyond that displaces the
oldest, so floods, idle holders and slow senders churn among themselves while a real client, whose
first frame follows its connect within milliseconds, gets through. A complete first frame makes it
a *client*: at most ``max_clients``; when they are all taken, the newcomer displaces the client
idle longest (no frame for at least ``evict_after_s``, never one being answered), else its request
gets BUSY and it is closed. Warnings about peers are rate-limited: the first of a kind per
``log_interval_s`` in full, then one summary line with the count.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from slimrl.errors import SlimrlError
from slimrl.runtime.protocol import (
    DEFAULT_MAX_FRAME,
    HEADER_SIZE,
    ErrorCode,
    FrameType,
    ProtocolError,
    Response,
    encode_error,
    encode_response,
    pack_header,
    unpack_header,
)

log = logging.getLogger("slimrl.edge")

Infer = Callable[[bytes], int]
"""Decoder + tail: model payload bytes -> predicted class. Raises on a payload it cannot read."""

MAX_CLIENTS = 64
MAX_PENDING = 256
HANDSHAKE_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 10.0
IDLE_TIMEOUT_S = 60.0
EVICT_AFTER_S = 2.0
LOG_INTERVAL_S = 10.0


@dataclass
class EdgeStats:
    served: int = 0
    errors: int = 0
    connections: int = 0
    active: int = 0
    rejected: int = 0
    evicted: int = 0
    timed_out: int = 0


@dataclass(eq=False)
class _Conn:
    """One accepted connection. ``since``: when it connected, then when its last frame ended."""

    writer: asyncio.StreamWriter
    peer: Any
    since: float
    frames: int = 0
    busy: bool = False  # a request is being answered: never displaced
    evicted: bool = False


class EventLog:
    """Rate-limited log lines: per kind, the first event of each ``interval_s`` is logged in full
    and later ones only counted, then summed up in one line (:meth:`flush`)."""

    def __init__(
        self,
        logger: logging.Logger,
        interval_s: float = LOG_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.log = logger
        self.interval_s = interval_s
        self._clock = clock
        self._kinds: dict[str, list] = {}  # kind -> [window start, suppressed count, level]

    def note(self, kind: str, level: int, msg: str, *args: object) -> None:
        now = self._clock()
        state = self._kinds.get(kind)
        if state is not None and now - state[0] < self.interval_s:
            state[1] += 1
            return
        self._summary(kind, now)
        self._kinds[kind] = [now, 0, level]
        self.log.log(level, msg, *args)

    def flush(self, force: bool = False) -> None:
        """Log the counts of windows that are over (all of them if ``force``)."""
        now = self._clock()
        for kind in list(self._kinds):
            if force or now - self._kinds[kind][0] >= self.interval_s:
                self._summary(kind, now)
                del self._kinds[kind]

    def _summary(self, kind: str, now: float) -> None:
        state = self._kinds.get(kind)
        if state is not None and state[1]:
            self.log.log(state[2], "%d more %s in the last %.0f s", state[1], kind, now - state[0])


class EdgeServer:
    """Serve ``infer`` over the slimrl frame protocol. Use ``port=0`` to bind a free port.

    ``max_clients`` bounds the clients (connections that sent a complete frame) and
    ``max_pending`` the connections yet to (see the module docstring for who gets a slot),
    ``max_frame`` bounds a request body, ``handshake_timeout_s`` bounds the time from connecting
    to the end of the first frame, ``read_timeout_s`` the time to receive the rest of a frame once
    its first byte arrived, ``idle_timeout_s`` the wait for the next frame, and ``evict_after_s``
    is the silence after which a connection may be displaced by a newcomer when all slots are
    taken. ``log_interval_s`` rate-limits warnings about peers.
    """

    def __init__(
        self,
        infer: Infer,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        max_clients: int = MAX_CLIENTS,
        max_pending: int = MAX_PENDING,
        max_frame: int = DEFAULT_MAX_FRAME,
        read_timeout_s: float = READ_TIMEOUT_S,
        idle_timeout_s: float = IDLE_TIMEOUT_S,
        handshake_timeout_s: float = HANDSHAKE_TIMEOUT_S,
        evict_after_s: float = EVICT_AFTER_S,
        log_interval_s: float = LOG_INTERVAL_S,
    ) -> None:
        for name, value in (
            ("max_clients", max_clients),
            ("max_pending", max_pending),
            ("max_frame", max_frame),
            ("read_timeout_s", read_timeout_s),
            ("idle_timeout_s", idle_timeout_s),
            ("handshake_timeout_s", handshake_timeout_s),
            ("log_interval_s", log_interval_s),
        ):
            if not value > 0:
                raise SlimrlError(f"edge server: {name} = {value!r}; expected a number > 0")
        if not evict_after_s >= 0:
            raise SlimrlError(f"edge server: evict_after_s = {evict_after_s!r}; expected >= 0")
        self.infer = infer
        self.host = host
        self.requested_port = port
        self.max_clients = max_clients
        self.max_pending = max_pending
        self.max_frame = max_frame
        self.read_timeout_s = read_timeout_s
        self.idle_timeout_s = idle_timeout_s
        self.handshake_timeout_s = handshake_timeout_s
        self.evict_after_s = evict_after_s
        self.stats = EdgeStats()
        self.events = EventLog(log, log_interval_s)
        self._pending = 0
        self._server: asyncio.Server | None = None
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._handshaking: dict[_Conn, None] = {}  # insertion order: oldest first
        self._clients: set[_Conn] = set()
        self._tasks: set[asyncio.Task] = set()
        self._flusher: asyncio.Task | None = None
        self._closing = False

    @property
    def port(self) -> int:
        """The bound port (after :meth:`start`)."""
        if self._server is None:
            raise RuntimeError("server not started")
        return self._server.sockets[0].getsockname()[1]

    async def start(self) -> None:
        """Bind and listen; :class:`SlimrlError` if the address cannot be used."""
        try:
            self._server = await asyncio.start_server(self._handle, self.host, self.requested_port)
        except OSError as exc:
            raise SlimrlError(
                f"cannot listen on {self.host}:{self.requested_port}: {exc.strerror or exc}"
            ) from exc
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="edge-infer")
        self._flusher = asyncio.get_running_loop().create_task(self._flush_events())
        log.info("edge server listening on %s:%d", self.host, self.port)

    async def _flush_events(self) -> None:
        while True:
            await asyncio.sleep(self.events.interval_s)
            self.events.flush()

    async def close(self) -> None:
        """Stop accepting, close every connection, wait for the worker to finish."""
        if self._closing:
            return
        self._closing = True
        if self._server is not None:
            self._server.close()
        for c in [*self._handshaking, *self._clients]:
            c.writer.close()
        if self._flusher is not None:
            self._flusher.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5.0)
        for task in self._tasks:
            task.cancel()
        if self._server is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 5.0)
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
        self.events.flush(force=True)
        s = self.stats
        log.info(
            "edge server stopped: %d served, %d errors, %d connections (%d refused, %d displaced, "
            "%d timed out)",
            s.served,
            s.errors,
            s.connections,
            s.rejected,
            s.evicted,
            s.timed_out,
        )

    async def serve_until(self, stop: asyncio.Event) -> None:
        await self.start()
        try:
            await stop.wait()
        finally:
            await self.close()

    # -- per connection -----------------------------------------------------------------------
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        task = asyncio.current_task()
        self._tasks.add(task)
        try:
            await self._connection(reader, writer, peer)
        finally:
            self._tasks.discard(task)

    async def _connection(self, reader, writer, peer) -> None:
        self.stats.connections += 1
        if self._closing:
            await self._refuse(writer, peer, 0, ErrorCode.SHUTTING_DOWN)
            return
        now = time.monotonic()
        if len(self._handshaking) >= self.max_pending:
            self._displace(next(iter(self._handshaking)), now)
        conn = _Conn(writer, peer, now)
        self._handshaking[conn] = None
        self._count()
        self.events.note(
            "clients connected",
            logging.INFO,
            "client %s connected (%d connections)",
            peer,
            self.stats.active,
        )
        try:
            while not self._closing and not conn.evicted:
                if not await self._serve_one(reader, writer, conn):
                    break
        except (ConnectionError, asyncio.IncompleteReadError, OSError) as exc:
            self.events.note(
                "clients dropped",
                logging.INFO,
                "client %s dropped: %s",
                peer,
                exc.__class__.__name__,
            )
        except Exception:  # one broken connection must never take the server down
            log.exception("client %s: unexpected error", peer)
        finally:
            self._handshaking.pop(conn, None)
            self._clients.discard(conn)
            self._count()
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1.0)
            self.events.note(
                "clients closed",
                logging.INFO,
                "client %s closed (%d connections)",
                peer,
                self.stats.active,
            )

    def _count(self) -> None:
        self.stats.active = len(self._handshaking) + len(self._clients)

    def _admit(self, conn: _Conn) -> bool:
        """Promote ``conn`` (its first frame is in) to a client, displacing an idle one if full."""
        now = time.monotonic()
        if len(self._clients) >= self.max_clients:
            idle = [c for c in self._clients if not c.busy and now - c.since >= self.evict_after_s]
            if not idle:
                return False
            self._displace(min(idle, key=lambda c: c.since), now)
        self._handshaking.pop(conn, None)
        self._clients.add(conn)
        return True

    def _displace(self, victim: _Conn, now: float) -> None:
        victim.evicted = True
        self._handshaking.pop(victim, None)
        self._clients.discard(victim)
        self._count()
        self.stats.evicted += 1
        what = "no frame yet" if victim.frames == 0 else "idle"
        self.events.note(
            "connections displaced",
            logging.WARNING,
            "displacing %s (%s for %.1f s) to make room",
            victim.peer,
            what,
            now - victim.since,
        )
        victim.writer.transport.abort()

    async def _refuse(self, writer, peer, request_id: int, code: ErrorCode) -> None:
        self.stats.rejected += 1
        self.events.note(
            "connections refused",
            logging.WARNING,
            "refusing %s: %s (%d clients)",
            peer,
            code.name,
            len(self._clients),
        )
        await self._send_and_close(writer, encode_error(request_id, code, code.name.lower()))

    async def _serve_one(self, reader, writer, conn: _Conn) -> bool:
        """Read one frame and answer it; False when the connection should close."""
        peer = conn.peer
        if conn.frames == 0:  # the whole first frame must arrive within the handshake timeout
            deadline = conn.since + self.handshake_timeout_s
            wait, why = (
                deadline - time.monotonic(),
                "no complete frame within the handshake timeout",
            )
        else:
            deadline = None
            wait, why = self.idle_timeout_s, f"idle for {self.idle_timeout_s:.0f} s"
        try:
            first = await asyncio.wait_for(reader.read(1), max(wait, 0.0))
        except TimeoutError:
            self.stats.timed_out += 1
            self.events.note("timeouts", logging.INFO, "client %s: %s; closing", peer, why)
            return False
        if not first:
            return False  # orderly close between frames
        rest_s = self.read_timeout_s
        if deadline is not None:
            rest_s = min(rest_s, deadline - time.monotonic())
        try:
            async with asyncio.timeout(max(rest_s, 0.0)):  # one limit for the rest of the frame
                rest = await reader.readexactly(HEADER_SIZE - 1)
                header = unpack_header(first + rest, self.max_frame)
                body = await reader.readexactly(header.length)
        except ProtocolError as exc:
            self.stats.errors += 1
            self.events.note("bad frames", logging.WARNING, "client %s: %s; closing", peer, exc)
            await self._send_and_close(writer, encode_error(exc.request_id, exc.code, str(exc)))
            return False
        except TimeoutError:
            self.stats.errors += 1
            self.stats.timed_out += 1
            self.events.note(
                "truncated frames",
                logging.WARNING,
                "client %s: truncated frame (timed out after %.1f s)",
                peer,
                rest_s,
            )
            await self._send_and_close(
                writer, encode_error(0, ErrorCode.TRUNCATED, "truncated frame: timed out")
            )
            return False
        except asyncio.IncompleteReadError as exc:
            if conn.evicted:  # displaced mid-frame: not the peer's error
                return False
            self.stats.errors += 1
            self.events.note(
                "truncated frames",
                logging.WARNING,
                "client %s: truncated frame (%d bytes, then EOF)",
                peer,
                len(exc.partial),
            )
            return False

        if conn.frames == 0 and not self._admit(conn):
            await self._refuse(writer, peer, header.request_id, ErrorCode.BUSY)
            return False
        conn.frames += 1
        conn.busy = True
        try:
            if header.type is FrameType.PING:
                writer.write(pack_header(FrameType.PONG, header.request_id, 0))
            elif header.type is FrameType.REQUEST:
                writer.write(await self._infer(header.request_id, body, peer))
            else:
                self.stats.errors += 1
                msg = f"unexpected frame type {header.type.name} from a client"
                writer.write(encode_error(header.request_id, ErrorCode.BAD_TYPE, msg))
            await asyncio.wait_for(writer.drain(), self.read_timeout_s)
        finally:
            conn.busy = False
            conn.since = time.monotonic()
        return True

    async def _infer(self, request_id: int, payload: bytes, peer) -> bytes:
        loop = asyncio.get_running_loop()
        pending = self._pending
        self._pending += 1
        t_recv = time.perf_counter()
        try:
            pred, queue_ms, compute_ms = await loop.run_in_executor(
                self._executor, self._work, payload, t_recv
            )
        except Exception as exc:  # a payload the decoder rejects: answer, keep the connection
            self.stats.errors += 1
            self.events.note(
                "bad payloads",
                logging.WARNING,
                "client %s request %d: bad payload: %.200s",
                peer,
                request_id,
                exc,
            )
            return encode_error(request_id, ErrorCode.BAD_PAYLOAD, f"bad payload: {exc}")
        finally:
            self._pending -= 1
        self.stats.served += 1
        log.debug(
            "request %d: class %d in %.2f ms (+%.2f ms queued)",
            request_id,
            pred,
            compute_ms,
            queue_ms,
        )
        return encode_response(Response(request_id, pred, compute_ms, queue_ms, pending))

    def _work(self, payload: bytes, t_recv: float) -> tuple[int, float, float]:
        t0 = time.perf_counter()
        pred = int(self.infer(payload))
        t1 = time.perf_counter()
        return pred, (t0 - t_recv) * 1e3, (t1 - t0) * 1e3

    async def _send_and_close(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        with contextlib.suppress(Exception):
            writer.write(data)
            await asyncio.wait_for(writer.drain(), 1.0)
        writer.close()


def serve(server: EdgeServer) -> int:
    """Run ``server`` until SIGINT or SIGTERM, then shut it down cleanly (the CLI entry)."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await server.serve_until(stop)

    asyncio.run(main())
    return 0


class EdgeServerThread:
    """An :class:`EdgeServer` on its own event loop in a background thread (tests, benchmarks)."""

    def __init__(self, server: EdgeServer) -> None:
        self.server = server
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="edge-server", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def main() -> None:
            self._stop = asyncio.Event()
            try:
                await self.server.start()
            except BaseException as exc:
                self._error = exc
                self._ready.set()
                return
            self._ready.set()
            try:
                await self._stop.wait()
            finally:
                await self.server.close()

        self._loop.run_until_complete(main())
        self._loop.close()

    def start(self, timeout_s: float = 10.0) -> EdgeServerThread:
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise TimeoutError("edge server did not start")
        if self._error is not None:
            raise self._error
        return self

    @property
    def port(self) -> int:
        return self.server.port

    def stop(self, timeout_s: float = 10.0) -> None:
        if self._thread.is_alive() and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout_s)

    def __enter__(self) -> EdgeServerThread:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


@contextlib.contextmanager
def running(infer: Infer, **kwargs) -> Iterator[EdgeServerThread]:
    """``with running(infer) as srv: ... srv.port``: an edge server on a free loopback port."""
    with EdgeServerThread(EdgeServer(infer, **kwargs)) as srv:
        yield srv
