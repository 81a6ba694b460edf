"""The server process: bind the socket, run uvicorn, drain on SIGTERM, exit 0.

uvicorn runs with our bounded HTTP protocol (``serve.protocol``), its keep-alive timeout
and its graceful-shutdown timeout from the configuration; requests still running when
that ends are answered 503 by the guard.
"""

from __future__ import annotations

import logging
import signal
import socket
import sys
from collections.abc import Callable
from types import FrameType
from typing import Any

import uvicorn

from .app import ServerConfig, create_app
from .protocol import protocol_for

__all__ = ["serve"]

logger = logging.getLogger("llamaembed.serve")

# File descriptors the process needs beside its connections: the model, logs, threads.
_SPARE_FILES = 64


class _Server(uvicorn.Server):
    """uvicorn's server, telling the app (``/health`` → 503) as soon as shutdown starts."""

    def __init__(self, config: uvicorn.Config, on_exit: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_exit = on_exit

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._on_exit()
        super().handle_exit(sig, frame)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    sock.set_inheritable(True)
    return sock


def serve(
    config: ServerConfig,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    log_level: str = "info",
    access_log: bool = False,
    announce: Callable[[str], None] = print,
) -> None:
    """Serve until SIGTERM or SIGINT, then finish in-flight requests and return.

    Raises the model's load error if it could not be opened. ``port=0`` picks a free
    port; ``announce`` receives the URL once the socket listens.
    """
    logging.getLogger("llamaembed").setLevel(log_level.upper())
    if not logging.getLogger("llamaembed").handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s:     %(name)s: %(message)s"))
        logging.getLogger("llamaembed").addHandler(handler)
    sock = _bind(host, port)
    fatal: list[BaseException] = []
    server: _Server | None = None

    def on_fatal(exc: BaseException) -> None:
        fatal.append(exc)
        if server is not None:
            server.should_exit = True

    app = create_app(config, on_fatal=on_fatal)
    state = app.state.llamaembed

    def shutting_down() -> None:
        state.shutting_down = True

    def refused(code: str) -> None:
        state.metrics.failures.labels("connection", code).inc()

    _allow_files(config.http.max_connections + _SPARE_FILES)
    uv_config = uvicorn.Config(
        app,
        http=protocol_for(config.http, refused),
        log_level=log_level,
        access_log=access_log,
        timeout_graceful_shutdown=config.graceful_timeout,  # type: ignore[arg-type]
        # Longer than uvicorn's 5 s default: it spares load balancers reconnects.
        timeout_keep_alive=config.http.keep_alive,  # type: ignore[arg-type]
    )
    server = _Server(uv_config, shutting_down)
    bound_host, bound_port = sock.getsockname()[:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    announce(f"llamaembed serving on http://{shown}:{bound_port} (loading the model…)")
    # uvicorn re-raises the signal it caught once it has shut down; with these no-op
    # handlers in place that re-raise ends nothing, and the process exits 0.
    previous: dict[signal.Signals, Any] = {}
    for sig in (signal.SIGTERM, signal.SIGINT):
        previous[sig] = signal.signal(sig, lambda *_: None)
    try:
        server.run(sockets=[sock])
    finally:
        for caught, handler in previous.items():
            signal.signal(caught, handler)
        sock.close()
    if fatal:
        raise fatal[0]


def _allow_files(needed: int) -> None:
    """Raise the soft limit on open files to ``needed`` if it is lower (and may be raised)."""
    try:
        import resource
    except ImportError:  # Windows: no such limit to raise
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return
    target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if target < needed:
        logger.warning(
            "the open-file limit is %d (ulimit -n), below the %d that --max-connections "
            "needs; connections past it will fail to open",
            target,
            needed,
        )
