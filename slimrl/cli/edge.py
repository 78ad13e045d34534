"""``slimrl edge serve``: the edge server (decoder + tail of the split model) over TCP."""

from __future__ import annotations

import argparse

from slimrl.runtime.edge_server import (
    EVICT_AFTER_S,
    HANDSHAKE_TIMEOUT_S,
    IDLE_TIMEOUT_S,
    MAX_CLIENTS,
    MAX_PENDING,
    READ_TIMEOUT_S,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = sub.add_parser("serve", help="serve the decoder and tail until SIGINT/SIGTERM")
    p.add_argument(
        "--model",
        default=None,
        metavar="PATH",
        help="model checkpoint (default: the shipped Fashion-MNIST weights)",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=7000, help="TCP port (0: any free port)")
    p.add_argument(
        "--max-clients",
        type=int,
        default=MAX_CLIENTS,
        help=f"concurrent clients (default: {MAX_CLIENTS}); when all are taken a newcomer "
        f"displaces the client idle longest (at least {EVICT_AFTER_S:g} s), else gets BUSY",
    )
    p.add_argument(
        "--max-pending",
        type=int,
        default=MAX_PENDING,
        help="connections yet to send a complete frame; beyond that a newcomer displaces the "
        f"oldest (default: {MAX_PENDING})",
    )
    p.add_argument("--max-frame-bytes", type=int, default=1 << 20, help="largest request body")
    p.add_argument(
        "--handshake-timeout-s",
        type=float,
        default=HANDSHAKE_TIMEOUT_S,
        help="a new connection must send a complete frame within this time "
        f"(default: {HANDSHAKE_TIMEOUT_S:g})",
    )
    p.add_argument(
        "--read-timeout-s",
        type=float,
        default=READ_TIMEOUT_S,
        help=f"time to receive the rest of a started frame (default: {READ_TIMEOUT_S:g})",
    )
    p.add_argument(
        "--idle-timeout-s",
        type=float,
        default=IDLE_TIMEOUT_S,
        help=f"close a connection silent this long between frames (default: {IDLE_TIMEOUT_S:g})",
    )
    p.add_argument("--threads", type=int, default=None, help="torch threads of the worker")
    p.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))


def run(args: argparse.Namespace) -> int:
    import logging
    import sys

    from slimrl.runtime.edge_server import EdgeServer, serve
    from slimrl.runtime.split_model import edge_infer, load_split_model

    logging.basicConfig(
        stream=sys.stderr,
        level=getattr(logging, args.log_level),
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    log = logging.getLogger("slimrl.edge")
    model = load_split_model(args.model, args.threads)
    log.info("model loaded: %d modes, bottleneck %s", len(model.modes), model.bottleneck_shape)
    server = EdgeServer(
        edge_infer(model),
        args.host,
        args.port,
        max_clients=args.max_clients,
        max_pending=args.max_pending,
        max_frame=args.max_frame_bytes,
        read_timeout_s=args.read_timeout_s,
        idle_timeout_s=args.idle_timeout_s,
        handshake_timeout_s=args.handshake_timeout_s,
    )
    return serve(server)
