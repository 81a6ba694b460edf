"""The guard: API keys and body limits, checked before any parsing, and request metrics.

An ASGI middleware around the whole app, driven by the route table (``serve.routes``). It
reads the body of every route that takes one itself, decoding gzip or deflate as it
arrives, so that an over-long one is a 413 before anything parses it (FastAPI would turn an
error while it reads into a 400), then replays the decoded body to the route. A request the
server cancels at shutdown, past its grace period, is answered 503 here (uvicorn would
send a plain-text 500). Refusals come in the route's error shape.

Inference routes are called from here directly, skipping the framework's router and
middleware stack; their errors go through the app's own handler, so they are answered as
on any other route.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from .body import BodyReader, body_too_large
from .errors import ApiError
from .metrics import Metrics
from .routes import DOC_PATHS, RouteTable

__all__ = ["Guard"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Endpoint = Callable[[Request], Awaitable[Response]]
ErrorHandler = Callable[[Request, Exception], Awaitable[Response]]


def _replay(body: bytes, upstream: Receive) -> Receive:
    """Return a receive that gives the body already read, then what the server sends next."""
    replayed = False

    async def receive() -> Message:
        nonlocal replayed
        if replayed:
            return await upstream()  # what follows is the disconnect
        replayed = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


class Guard:
    """ASGI middleware: API key and body size checked before any parsing; request metrics."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        api_keys: tuple[str, ...],
        max_body_bytes: int,
        metrics: Metrics,
        routes: RouteTable,
        on_error: ErrorHandler,
    ) -> None:
        self.app = app
        self.api_keys = api_keys
        self.max_body_bytes = max_body_bytes
        self.metrics = metrics
        self.routes = routes
        self.on_error = on_error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer a refused request here; pass the rest to the app, counting each."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        metrics = self.metrics
        route = self.routes.find(scope["path"])
        label = route.label if route is not None else "other"
        shape = route.errors if route is not None else "openai"
        # A request in the route's own method: its body is read here, an inference handler
        # called directly (another method goes to the app, which answers 405).
        serving = route if route is not None and scope["method"] in route.methods else None
        started = time.perf_counter()
        status = 0  # no answer yet

        async def send_counted(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        headers = dict(scope["headers"])
        reads_body = serving is not None and serving.takes_body
        if reads_body and headers.get(b"content-type", b"").split(b";")[0].strip() in (
            b"",
            b"application/x-www-form-urlencoded",
        ):
            # The body is JSON whatever the client says (`curl -d` sends a form type).
            headers[b"content-type"] = b"application/json"
            scope = {**scope, "headers": list(headers.items())}
        try:
            try:
                is_open = (route is not None and route.open) or scope["path"] in DOC_PATHS
                checked = await self._check(headers, is_open, reads_body, receive)
            except ApiError as error:
                metrics.failures.labels(label, error.code).inc()
                await error.response(shape)(scope, receive, send_counted)
                return
            if checked is None:
                return
            if serving is not None and serving.inference:
                await self._call_hot(serving.handler, scope, checked, send_counted)
            else:
                await self.app(scope, checked, send_counted)
        except asyncio.CancelledError:
            # uvicorn cancels the requests still running when the grace period after
            # SIGTERM ends; answer them, once, rather than leave uvicorn's plain 500.
            if status:
                raise
            task = asyncio.current_task()
            if task is not None and hasattr(task, "uncancel"):  # Python 3.11+
                task.uncancel()
            refusal = ApiError(
                503,
                "the server shut down before this request finished; retry on another replica",
                type_="server_error",
                code="shutting_down",
                headers={"Connection": "close"},
            )
            metrics.failures.labels(label, "shutting_down").inc()
            await refusal.response(shape)(scope, receive, send_counted)
        finally:
            metrics.requests.labels(label, str(status or 500)).inc()
            if route is not None and route.inference:
                metrics.request_duration.labels(label).observe(time.perf_counter() - started)

    async def _call_hot(
        self, endpoint: Endpoint, scope: Scope, receive: Receive, send: Send
    ) -> None:
        """Answer a request with an inference route's endpoint, errors through the app's handler."""
        request = Request(scope, receive)
        try:
            response = await endpoint(request)
        except Exception as exc:
            response = await self.on_error(request, exc)
        await response(scope, receive, send)

    async def _check(
        self, headers: dict[bytes, bytes], is_open: bool, reads_body: bool, receive: Receive
    ) -> Receive | None:
        """Return the receive the app reads (None: the client left); raise ApiError if refused."""
        if self.api_keys and not is_open:
            self._authorize(headers.get(b"authorization", b""))
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            raise body_too_large(self.max_body_bytes)
        if reads_body:
            reader = BodyReader(headers.get(b"content-encoding", b""), self.max_body_bytes)
            body = await self._read_body(reader, receive)
            if body is None:
                return None  # the client left while sending
            return _replay(body, receive)
        return receive

    async def _read_body(self, reader: BodyReader, receive: Receive) -> bytes | None:
        """Return the whole decoded body (None if the client left); raise past the limit."""
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return None
            reader.feed(message.get("body", b""))
            if not message.get("more_body", False):
                return bytes(reader.finish())

    def _authorize(self, header: bytes) -> None:
        scheme, _, token = header.decode("latin-1").partition(" ")
        given = token.strip().encode()
        valid = scheme.lower() == "bearer" and any(
            hmac.compare_digest(given, key.encode()) for key in self.api_keys
        )
        if not valid:
            raise ApiError(
                401,
                "missing or wrong API key: send the header 'Authorization: Bearer <key>'",
                type_="authentication_error",
                code="invalid_api_key",
            )
