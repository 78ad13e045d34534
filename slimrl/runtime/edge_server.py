"""The edge server: an asyncio TCP server in front of one inference worker.

Connections are handled concurrently, but every inference runs on a single worker thread, so
concurrent clients really queue behind each other; each answer reports the time its request waited
for that worker (``queue_ms``) and the time the worker spent on it (``compute_ms``).
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


@dataclass
class EdgeStats:
    served: int = 0
    errors: int = 0
    connections: int = 0
    active: int = 0
    rejected: int = 0


class EdgeServer:
    """Serve ``infer`` over the slimrl frame protocol. Use ``port=0`` to bind a free port.

    ``max_clients`` bounds concurrent connections (extra ones get a BUSY error and are closed),
    ``max_frame`` bounds a request body, ``read_timeout_s`` bounds the time to receive the rest of a
    frame once its first byte arrived, and ``idle_timeout_s`` closes connections silent that long.
    """

    def __init__(
        self,
        infer: Infer,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        max_clients: int = 64,
        max_frame: int = DEFAULT_MAX_FRAME,
        read_timeout_s: float = 10.0,
        idle_timeout_s: float = 300.0,
    ) -> None:
        self.infer = infer
        self.host = host
        self.requested_port = port
        self.max_clients = max_clients
        self.max_frame = max_frame
        self.read_timeout_s = read_timeout_s
        self.idle_timeout_s = idle_timeout_s
        self.stats = EdgeStats()
        self._pending = 0
        self._server: asyncio.Server | None = None
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task] = set()
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
        log.info("edge server listening on %s:%d", self.host, self.port)

    async def close(self) -> None:
        """Stop accepting, close every connection, wait for the worker to finish."""
        if self._closing:
            return
        self._closing = True
        if self._server is not None:
            self._server.close()
        for w in list(self._writers):
            w.close()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5.0)
        for task in self._tasks:
            task.cancel()
        if self._server is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 5.0)
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
        log.info(
            "edge server stopped: %d served, %d errors, %d connections",
            self.stats.served,
            self.stats.errors,
            self.stats.connections,
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
        if self._closing or self.stats.active >= self.max_clients:
            self.stats.rejected += 1
            code = ErrorCode.SHUTTING_DOWN if self._closing else ErrorCode.BUSY
            log.warning("rejecting %s: %s (%d clients)", peer, code.name, self.stats.active)
            await self._send_and_close(writer, encode_error(0, code, f"{code.name.lower()}"))
            return
        self.stats.active += 1
        self._writers.add(writer)
        log.info("client %s connected (%d active)", peer, self.stats.active)
        try:
            while not self._closing:
                if not await self._serve_one(reader, writer, peer):
                    break
        except (ConnectionError, asyncio.IncompleteReadError, OSError) as exc:
            log.info("client %s dropped: %s", peer, exc.__class__.__name__)
        except Exception:  # one broken connection must never take the server down
            log.exception("client %s: unexpected error", peer)
        finally:
            self.stats.active -= 1
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1.0)
            log.info("client %s closed (%d active)", peer, self.stats.active)

    async def _serve_one(self, reader, writer, peer) -> bool:
        """Read one frame and answer it; False when the connection should close."""
        try:
            first = await asyncio.wait_for(reader.read(1), self.idle_timeout_s)
        except TimeoutError:
            log.info("client %s idle for %.0f s", peer, self.idle_timeout_s)
            return False
        if not first:
            return False  # orderly close between frames
        try:
            rest = await asyncio.wait_for(reader.readexactly(HEADER_SIZE - 1), self.read_timeout_s)
            header = unpack_header(first + rest, self.max_frame)
            body = await asyncio.wait_for(reader.readexactly(header.length), self.read_timeout_s)
        except ProtocolError as exc:
            self.stats.errors += 1
            log.warning("client %s: %s; closing", peer, exc)
            await self._send_and_close(writer, encode_error(exc.request_id, exc.code, str(exc)))
            return False
        except TimeoutError:
            self.stats.errors += 1
            log.warning(
                "client %s: truncated frame (timed out after %.1f s)", peer, self.read_timeout_s
            )
            await self._send_and_close(
                writer, encode_error(0, ErrorCode.TRUNCATED, "truncated frame: timed out")
            )
            return False
        except asyncio.IncompleteReadError as exc:
            self.stats.errors += 1
            log.warning("client %s: truncated frame (%d bytes, then EOF)", peer, len(exc.partial))
            return False

        if header.type is FrameType.PING:
            writer.write(pack_header(FrameType.PONG, header.request_id, 0))
        elif header.type is FrameType.REQUEST:
            writer.write(await self._infer(header.request_id, body, peer))
        else:
            self.stats.errors += 1
            msg = f"unexpected frame type {header.type.name} from a client"
            writer.write(encode_error(header.request_id, ErrorCode.BAD_TYPE, msg))
        await asyncio.wait_for(writer.drain(), self.read_timeout_s)
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
            log.warning("client %s request %d: bad payload: %s", peer, request_id, exc)
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
