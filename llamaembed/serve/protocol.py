"""The HTTP connection: uvicorn's httptools protocol with bounds on what a client sends.

uvicorn bounds what it can (``timeout_keep_alive``, ``timeout_graceful_shutdown``; see
``serve.runner``), but with httptools it reads request headers of any size, and waits
forever for headers or a body that never finish. This subclass adds, per connection:

- a cap on the bytes of the request line and headers, and on the number of header lines
  (431, then the connection is closed);
- a time limit to send the headers, from connecting (or from a request's first byte on a
  kept-alive connection), and one to send the body, from the end of the headers
  (408, then closed);
- a cap on open connections: a request arriving on one past it gets 503 in our error
  shape (uvicorn's own ``limit_concurrency`` answers the same rule in plain text).

It works at the level of uvicorn's parser callbacks, so the app never sees a refused
request. Every refusal is counted in the app's metrics through ``on_refusal(code)``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, ClassVar

import orjson
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from .schemas import error_body
from .state import HttpLimits

__all__ = ["BoundedHttpTools", "protocol_for"]


class _Refused(Exception):
    """Raised from a parser callback to stop parsing a request already answered."""


class BoundedHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol, bounding header size, header count, time and connections."""

    limits: ClassVar[HttpLimits] = HttpLimits()

    @staticmethod
    def on_refusal(code: str) -> None:
        """Hear the code of each refusal (``protocol_for`` sets the app's metrics here)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._timer: asyncio.TimerHandle | None = None
        self._in_headers = True  # reading a request line and headers (or waiting for one)
        self._header_bytes = 0  # bytes received since the headers began (a chunk may hold more)
        self._header_size = 0  # bytes of the URL, names and values the parser handed over
        self._n_headers = 0
        self._refused = False

    # ----------------------------------------------------------------- connection
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Start the clock for the first request's headers."""
        super().connection_made(transport)
        self._arm(self.limits.header_timeout, "headers")

    def connection_lost(self, exc: Exception | None) -> None:
        """Stop the clock."""
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Feed the parser, refusing headers past the byte limit."""
        if self._refused:
            return
        if self._in_headers:
            self._header_bytes += len(data)
        super().data_received(data)
        if self._in_headers and self._header_bytes > self.limits.max_header_bytes:
            self._refuse_headers(f"more than {self.limits.max_header_bytes} bytes")

    def send_400_response(self, msg: str) -> None:
        """Answer a request httptools cannot parse, unless it was refused already."""
        if not self._refused:
            super().send_400_response(msg)

    # ----------------------------------------------------------------- parser callbacks
    def on_message_begin(self) -> None:
        """Start the clock for the headers of a request on a kept-alive connection."""
        super().on_message_begin()
        self._n_headers = self._header_size = 0
        if self._timer is None:
            self._arm(self.limits.header_timeout, "headers")

    def on_url(self, url: bytes) -> None:
        """Count the URL's bytes."""
        self._header_size += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        """Count the header lines and their bytes."""
        self._n_headers += 1
        self._header_size += len(name) + len(value) + 4  # ": " and CRLF
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        """Refuse a request over a limit; else start it and the clock for its body."""
        self._disarm()
        limits = self.limits
        if self._n_headers > limits.max_headers:
            self._refuse_headers(f"more than {limits.max_headers} header lines")
            raise _Refused
        if self._header_size > limits.max_header_bytes:
            self._refuse_headers(f"more than {limits.max_header_bytes} bytes")
            raise _Refused
        self._in_headers = False
        self._header_bytes = 0
        if len(self.connections) > limits.max_connections:
            self._answer(
                503,
                f"the server has {limits.max_connections} connections open, its limit "
                "(--max-connections); retry shortly",
                "too_many_connections",
                type_="server_error",
                extra=[(b"retry-after", b"1")],
            )
            raise _Refused
        super().on_headers_complete()
        self._arm(limits.body_timeout, "body")

    def on_message_complete(self) -> None:
        """Stop the body's clock; the next bytes begin a new request's headers."""
        self._disarm()
        self._in_headers = True
        self._header_bytes = 0
        super().on_message_complete()

    # ----------------------------------------------------------------- refusals
    def _refuse_headers(self, what: str) -> None:
        self._answer(
            431,
            f"the request line and headers hold {what}, past what this server reads "
            f"({self.limits.max_header_bytes} bytes, --max-header-kb; "
            f"{self.limits.max_headers} lines)",
            "headers_too_large",
        )

    def _arm(self, seconds: float, what: str) -> None:
        self._disarm()
        self._timer = self.loop.call_later(seconds, self._expire, what, seconds)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self, what: str, seconds: float) -> None:
        self._timer = None
        if self.transport.is_closing() or self._refused:
            return
        cycle = self.cycle
        busy = cycle is not None and not cycle.response_complete
        if (what == "body" and self.pipeline) or (what == "headers" and busy):
            # Pipelined behind a request still answering: the wait is ours, not the client's.
            self._arm(seconds, what)
            return
        if what == "headers" and self._header_bytes == 0:  # idle, never sent a byte: close
            self._close_quietly("idle_connection")
            return
        if what == "body" and cycle is not None:
            if cycle.response_started:  # answered without the body (401, 413): just close
                self._close_quietly("body_timeout")
                return
            cycle.disconnected = True  # the app reads a disconnect; its sends are dropped
            cycle.message_event.set()
        self._answer(
            408,
            f"the request's {what} did not arrive within {seconds:g} s "
            f"(--{what[:-1] if what == 'headers' else what}-timeout)",
            "request_timeout",
        )

    def _close_quietly(self, code: str) -> None:
        self._refused = True
        self.transport.close()
        self.on_refusal(code)

    def _answer(
        self,
        status: int,
        message: str,
        code: str,
        *,
        type_: str = "invalid_request_error",
        extra: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        """Write an error in our shape, close the connection, and stop reading it."""
        self._refused = True
        self._disarm()
        body = orjson.dumps(error_body(message, type_, code=code))
        head = [
            STATUS_LINE[status],
            b"content-type: application/json\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n",
        ]
        head += [name + b": " + value + b"\r\n" for name, value in extra or []]
        if not self.transport.is_closing():
            self.transport.write(b"".join([*head, b"\r\n", body]))
            self.transport.close()
        self.on_refusal(code)


def protocol_for(
    limits: HttpLimits, on_refusal: Callable[[str], None] | None = None
) -> type[BoundedHttpTools]:
    """Return the protocol class uvicorn runs for these limits (``Config(http=...)``)."""
    fields: dict[str, Any] = {"limits": limits}
    if on_refusal is not None:
        fields["on_refusal"] = staticmethod(on_refusal)
    return type("BoundedHttpTools", (BoundedHttpTools,), fields)
