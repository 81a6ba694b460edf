"""The HTTP layer: OpenAI embeddings, Cohere/Jina/TEI rerank, models, health and metrics.

Routes parse, check and answer; the work goes through one :class:`Batcher` per model.
Every error leaves in OpenAI's shape from one place (:class:`ApiError` and the handlers
in :func:`create_app`).
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from ..embedder import Embedder
from ..engine.pooling import l2_normalize, sigmoid
from ..errors import (
    EmptyInputError,
    InputTooLongError,
    InvalidTokenError,
    QueueFullError,
)
from ..hub.spec import ModelSpec, resolve_model
from .batcher import Batcher, Job
from .metrics import CONTENT_TYPE, Metrics
from .schemas import (
    EmbeddingRequest,
    EmbeddingResponse,
    ErrorResponse,
    ModelList,
    RerankRequest,
    RerankResponse,
    error_body,
)

__all__ = ["ApiError", "ModelSpec", "ServerConfig", "create_app", "resolve_model"]

logger = logging.getLogger("llamaembed.serve")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# Paths anyone may read: probes and scrapers carry no key, and the docs hold no data.
OPEN_PATHS = frozenset({"/health", "/metrics", "/docs", "/redoc", "/openapi.json"})
# Tokenising this many characters (or ids) inline would stall the event loop; past it the
# work goes to a thread.
_INLINE_TOKENIZE = 20_000
_ROUTES = {
    "/v1/embeddings": "embeddings",
    "/embeddings": "embeddings",
    "/v1/rerank": "rerank",
    "/rerank": "rerank",
    "/v1/models": "models",
    "/health": "health",
    "/metrics": "metrics",
}
_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (400, 401, 404, 413, 422, 429, 503)
}


@dataclass(frozen=True)
class ServerConfig:
    """What the server serves and its limits."""

    embedding: ModelSpec | None
    rerank: ModelSpec | None = None
    api_keys: tuple[str, ...] = ()
    max_batch_tokens: int = 4096
    max_client_batch: int = 2048
    max_queue: int = 16384
    max_body_bytes: int = 64 * 2**20
    batch_wait: float = 0.002

    def __post_init__(self) -> None:
        if self.embedding is None and self.rerank is None:
            raise ValueError("nothing to serve: give an embedding model, a reranker or both")
        if self.max_client_batch < 1 or self.max_batch_tokens < 1 or self.max_body_bytes < 1:
            raise ValueError("max_client_batch, max_batch_tokens, max_body_bytes must be >= 1")
        if not 0 <= self.batch_wait <= 1:
            raise ValueError(f"batch_wait must be within 0 and 1 second, got {self.batch_wait}")
        if self.max_queue < self.max_client_batch:
            raise ValueError(
                f"max_queue ({self.max_queue}) must hold at least one full request "
                f"(max_client_batch {self.max_client_batch})"
            )


class ApiError(Exception):
    """An answer other than 200, in OpenAI's error shape."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_
        self.param = param
        self.code = code
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        """Return the error as a response."""
        body = error_body(self.message, self.type, self.param, self.code)
        return JSONResponse(body, status_code=self.status, headers=self.headers)


class _ClientGone(Exception):
    """The client disconnected before its answer was ready."""


@dataclass
class _Served:
    kind: str
    spec: ModelSpec
    llama: Embedder
    batcher: Batcher
    created: int = field(default_factory=lambda: int(time.time()))

    def answers_to(self, name: str | None) -> bool:
        return name is None or name == self.spec.name or name in self.spec.aliases


class _State:
    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.metrics = Metrics()
        self.models: dict[str, _Served] = {}
        self.ready = False
        self.shutting_down = False
        self.load_error: BaseException | None = None
        # Set by create_app: handlers the guard calls directly, and the error mapping.
        self.fast_routes: dict[str, Callable[[Request], Awaitable[Response]]] = {}
        self.error_response: Callable[[Request, Exception], Awaitable[Response]]

    def open_models(self) -> None:
        """Open each model and start its batcher (runs in a thread at start-up)."""
        config = self.config
        for kind, spec in (("embedding", config.embedding), ("rerank", config.rerank)):
            if spec is None:
                continue
            llama = spec.open()
            if kind == "rerank" and not llama.is_reranker:
                llama.close()
                raise ValueError(f"{spec.name} is not a cross-encoder (rank pooling)")
            if kind == "embedding" and llama.is_reranker:
                llama.close()
                raise ValueError(f"{spec.name} is a cross-encoder: serve it with --rerank")
            self.models[kind] = self._start(kind, spec, llama)
        self.ready = True

    def _start(self, kind: str, spec: ModelSpec, llama: Embedder) -> _Served:
        name = spec.name
        metrics = self.metrics

        def observe(inputs: int, tokens: int, seconds: float) -> None:
            metrics.observe_batch(name, inputs, tokens, seconds)

        batcher = Batcher(
            llama.forward,
            max_batch_tokens=self.config.max_batch_tokens,
            max_queue=self.config.max_queue,
            batch_wait=self.config.batch_wait,
            on_batch=observe,
            on_drop=metrics.dropped.labels(name).inc,
            name=name,
        )
        metrics.queue_size.labels(name).set_function(lambda: batcher.queue_size)
        return _Served(kind, spec, llama, batcher)

    def close(self) -> None:
        """Finish queued work, stop the batchers, free the models."""
        for served in self.models.values():
            served.batcher.close()
            served.llama.close()

    def model_for(self, kind: str, requested: str | None) -> _Served:
        """Return the served model of a kind that answers to a name, or raise ApiError."""
        if self.shutting_down:
            raise ApiError(
                503, "the server is shutting down", type_="server_error", code="shutting_down"
            )
        if not self.ready:
            raise ApiError(
                503,
                "the model is still loading; retry shortly",
                type_="server_error",
                code="model_loading",
                headers={"Retry-After": "1"},
            )
        served = self.models.get(kind)
        if served is None:
            hint = "--rerank MODEL" if kind == "rerank" else "an embedding MODEL"
            raise ApiError(
                404,
                f"this server has no {kind} model: start it with {hint}",
                param="model",
                code="model_not_found",
            )
        if not served.answers_to(requested):
            raise ApiError(
                404,
                f"the model {requested!r} is not served here; the {kind} model is "
                f"{served.spec.name!r} (GET /v1/models lists them)",
                param="model",
                code="model_not_found",
            )
        return served


# ----------------------------------------------------------------------------- helpers
def _route_label(path: str) -> str:
    return _ROUTES.get(path, "other")


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


class _Guard:
    """ASGI middleware: API key and body size checked before any parsing; request metrics."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], state: _State):
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = self.state
        metrics = state.metrics
        route = _route_label(scope["path"])
        started = time.perf_counter()
        status = 500

        async def send_counted(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        headers = dict(scope["headers"])
        if route in ("embeddings", "rerank") and headers.get(b"content-type", b"").split(b";")[
            0
        ].strip() in (b"", b"application/x-www-form-urlencoded"):
            # The body is JSON whatever the client says (`curl -d` sends a form type).
            headers[b"content-type"] = b"application/json"
            scope = {**scope, "headers": list(headers.items())}
        try:
            if state.config.api_keys and scope["path"] not in OPEN_PATHS:
                self._authorize(headers.get(b"authorization", b""))
            declared = headers.get(b"content-length")
            limit = state.config.max_body_bytes
            if declared is not None and declared.isdigit() and int(declared) > limit:
                raise self._too_large()
            if route in ("embeddings", "rerank") and scope["method"] == "POST":
                # Read the body here, so that an over-long one is a 413 before any parsing
                # (FastAPI would turn an error while it reads into a 400).
                body = await self._read_body(receive)
                if body is None:
                    return  # the client left while sending
                receive = _replay(body, receive)
        except ApiError as error:
            metrics.failures.labels(route, error.code).inc()
            await error.response()(scope, receive, send_counted)
            metrics.requests.labels(route, str(status)).inc()
            return
        try:
            fast = state.fast_routes.get(scope["path"]) if scope["method"] == "POST" else None
            if fast is None:
                await self.app(scope, receive, send_counted)
            else:
                # The hot routes skip FastAPI's router and middleware stack (a fifth of
                # the CPU a one-text request costs); their errors map the same way.
                request = Request(scope, receive)
                try:
                    response = await fast(request)
                except Exception as exc:
                    response = await state.error_response(request, exc)
                await response(scope, receive, send_counted)
        finally:
            metrics.requests.labels(route, str(status)).inc()
            if route in ("embeddings", "rerank"):
                metrics.request_duration.labels(route).observe(time.perf_counter() - started)

    async def _read_body(self, receive: Receive) -> bytes | None:
        """Return the whole body (None if the client left); raise a 413 past the limit."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.state.config.max_body_bytes:
                raise self._too_large()
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    def _authorize(self, header: bytes) -> None:
        scheme, _, token = header.decode("latin-1").partition(" ")
        given = token.strip().encode()
        valid = scheme.lower() == "bearer" and any(
            hmac.compare_digest(given, key.encode()) for key in self.state.config.api_keys
        )
        if not valid:
            raise ApiError(
                401,
                "missing or wrong API key: send the header 'Authorization: Bearer <key>'",
                type_="authentication_error",
                code="invalid_api_key",
            )

    def _too_large(self) -> ApiError:
        return ApiError(
            413,
            f"the request body is larger than {self.state.config.max_body_bytes} bytes; "
            "split the inputs over several requests",
            code="body_too_large",
        )


async def _client_gone(request: Request) -> None:
    # The body has been read, so the next message the server sends is the disconnect.
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


async def _wait(job: Job, request: Request) -> npt.NDArray[np.float32]:
    """Return the job's rows; if the client leaves first, drop the job and raise."""
    future = asyncio.wrap_future(job.future)
    watcher = asyncio.get_running_loop().create_task(_client_gone(request))
    gone = False

    def on_watch_end(task: asyncio.Task[None]) -> None:
        nonlocal gone
        if not task.cancelled() and task.exception() is None and not future.done():
            gone = True
            job.cancel()  # its queued inputs are skipped; `future` is cancelled with it

    # A done-callback rather than asyncio.wait: it costs no extra futures per request.
    watcher.add_done_callback(on_watch_end)
    try:
        return await future
    except asyncio.CancelledError:
        if gone:
            raise _ClientGone from None
        job.cancel()
        raise
    except Exception as exc:
        logger.exception("inference failed")
        raise ApiError(
            500, f"inference failed: {exc}", type_="server_error", code="inference_failed"
        ) from exc
    finally:
        watcher.cancel()


async def _prepare(size: int, work: Callable[[], list[Any]]) -> list[Any]:
    """Run tokenisation inline when small, in a thread when it would stall the loop."""
    try:
        if size <= _INLINE_TOKENIZE:
            return work()
        return await asyncio.to_thread(work)
    except InputTooLongError as exc:
        raise ApiError(
            400,
            f"input at index {exc.index} has {exc.n_tokens} tokens; the model takes at most "
            f"{exc.limit}. Send truncate=true to cut it, or split it.",
            param="input",
            code="input_too_long",
        ) from exc
    except (InvalidTokenError, EmptyInputError) as exc:
        code = "invalid_token" if isinstance(exc, InvalidTokenError) else "empty_input"
        raise ApiError(400, str(exc), param="input", code=code) from exc


def _submit(served: _Served, inputs: list[Any]) -> Job:
    try:
        return served.batcher.submit(inputs, [len(item) for item in inputs])
    except QueueFullError as exc:
        raise ApiError(
            429,
            f"the server is busy: {exc}",
            type_="rate_limit_error",
            code="queue_full",
            headers={"Retry-After": str(math.ceil(exc.retry_after))},
        ) from exc


def _timing_headers(job: Job, started: float) -> dict[str, str]:
    total = time.perf_counter() - started
    return {
        "x-queue-time": f"{job.queue_seconds * 1000:.2f}",
        "x-inference-time": f"{job.inference_seconds * 1000:.2f}",
        "x-total-time": f"{total * 1000:.2f}",
        "x-compute-tokens": str(job.tokens),
    }


def _json(payload: dict[str, Any], headers: dict[str, str]) -> Response:
    # orjson writes float32 arrays directly, each number the shortest form that reads back
    # to the same float32: 8 µs for 384 floats where json.dumps takes 215 µs.
    body = orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY)
    return Response(body, media_type="application/json", headers=headers)


def _check_count(n: int, limit: int, what: str) -> None:
    if n == 0:
        raise ApiError(400, f"{what} is empty", param=what, code="empty_input")
    if n > limit:
        raise ApiError(
            400,
            f"{what} has {n} items; this server takes at most {limit} per request "
            "(--max-client-batch)",
            param=what,
            code="too_many_inputs",
        )


def _embedding_inputs(
    body: EmbeddingRequest, limit: int
) -> tuple[list[str] | None, list[list[int]] | None]:
    value = body.input
    if isinstance(value, str):
        value = [value]
    _check_count(len(value), limit, "input")
    first = value[0]
    if isinstance(first, str):
        texts: list[str] = value  # type: ignore[assignment]
        for i, text in enumerate(texts):
            if not text:
                raise ApiError(
                    400,
                    f"input at index {i} is an empty string",
                    param="input",
                    code="empty_input",
                )
        return texts, None
    if isinstance(first, int):
        return None, [value]  # type: ignore[list-item]
    return None, value  # type: ignore[return-value]


_Model = TypeVar("_Model", bound=BaseModel)


def _parse(model: type[_Model], raw: bytes) -> _Model:
    """Return the request parsed and checked in one pass (pydantic's JSON parser).

    Cheaper per request than FastAPI's body parameter (json.loads, then validation);
    errors go through the same handler, so the answers are the same.
    """
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors()) from None


def _request_body(model: type[BaseModel]) -> dict[str, Any]:
    """Return the OpenAPI request body of a route that parses its body itself."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    schema.pop("$defs", None)  # the nested models are components of the responses
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


# ----------------------------------------------------------------------------- the app
def create_app(
    config: ServerConfig, *, on_fatal: Callable[[BaseException], None] | None = None
) -> FastAPI:
    """Return the ASGI app; models load in a thread after start-up (``/health`` says when)."""
    state = _State(config)

    async def load() -> None:
        try:
            await asyncio.to_thread(state.open_models)
            logger.info("ready: %s", ", ".join(s.spec.name for s in state.models.values()))
        except Exception as exc:
            state.load_error = exc
            logger.error("could not open the model: %s", exc)
            if on_fatal is not None:
                on_fatal(exc)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> Any:
        loading = asyncio.create_task(load())
        yield
        state.shutting_down = True
        await loading
        await asyncio.to_thread(state.close)

    app = FastAPI(
        title="llamaembed",
        version=__version__,
        description="OpenAI- and Cohere-compatible embeddings and reranking on llama.cpp.",
        lifespan=lifespan,
    )
    app.state.llamaembed = state
    app.add_middleware(_Guard, state=state)
    metrics = state.metrics

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> Response:
        metrics.failures.labels(_route_label(request.url.path), exc.code or exc.type).inc()
        return exc.response()

    @app.exception_handler(_ClientGone)
    async def client_gone(request: Request, _exc: _ClientGone) -> Response:
        metrics.failures.labels(_route_label(request.url.path), "client_disconnected").inc()
        return Response(status_code=499)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        errors = exc.errors()
        first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
        loc = [str(part) for part in first.get("loc", ()) if part != "body"]
        if first.get("type") == "json_invalid":
            error = ApiError(
                400, f"the body is not valid JSON: {first['msg']}", code="invalid_json"
            )
        else:
            param = ".".join(loc) or None
            where = f"{param}: " if param else ""
            error = ApiError(422, f"{where}{first['msg']}", param=param, code="invalid_type")
        metrics.failures.labels(_route_label(request.url.path), error.code).inc()
        return error.response()

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "invalid_request")
        metrics.failures.labels(_route_label(request.url.path), code).inc()
        return ApiError(exc.status_code, str(exc.detail), code=code).response()

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> Response:
        logger.exception("unexpected error")
        metrics.failures.labels(_route_label(request.url.path), "internal").inc()
        return ApiError(500, f"internal error: {exc}", type_="server_error").response()

    # ------------------------------------------------------------------ embeddings
    @app.post(
        "/v1/embeddings",
        response_model=EmbeddingResponse,
        responses=_ERROR_RESPONSES,
        openapi_extra=_request_body(EmbeddingRequest),
    )
    @app.post("/embeddings", include_in_schema=False)
    async def embeddings(request: Request) -> Response:
        """Embed texts or token ids (OpenAI's contract)."""
        started = time.perf_counter()
        body = _parse(EmbeddingRequest, await request.body())
        served = state.model_for("embedding", body.model)
        llama = served.llama
        texts, token_lists = _embedding_inputs(body, config.max_client_batch)
        if body.encoding_format not in ("float", "base64"):
            raise ApiError(
                400,
                f"unknown encoding_format {body.encoding_format!r}; use 'float' or 'base64'",
                param="encoding_format",
                code="invalid_encoding_format",
            )
        dims = body.dimensions
        if dims is not None and not 1 <= dims <= llama.n_embd:
            raise ApiError(
                400,
                f"dimensions must be between 1 and {llama.n_embd} for this model, got {dims}",
                param="dimensions",
                code="invalid_dimensions",
            )
        prefix = _prefix(body, llama, texts is not None)
        truncated = metrics.truncated.labels(served.spec.name)
        if texts is not None:
            prefixed = [prefix + t for t in texts] if prefix else texts
            sequences = await _prepare(
                sum(map(len, prefixed)),
                lambda: llama.prepare_texts(
                    prefixed, truncate=body.truncate, on_truncate=truncated.inc
                ),
            )
        else:
            assert token_lists is not None
            ids = token_lists
            sequences = await _prepare(
                sum(map(len, ids)), lambda: llama.prepare_tokens(ids, truncate=body.truncate)
            )
        job = _submit(served, sequences)
        rows = await _wait(job, request)
        vectors = l2_normalize(rows[:, :dims] if dims else rows)
        if body.encoding_format == "base64":
            little = vectors.astype("<f4", copy=False)
            encoded: list[Any] = [base64.b64encode(v.tobytes()).decode("ascii") for v in little]
        else:
            encoded = list(vectors)  # rows of float32, written by orjson
        data = [{"object": "embedding", "index": i, "embedding": e} for i, e in enumerate(encoded)]
        payload = {
            "object": "list",
            "data": data,
            "model": served.spec.name,
            "usage": {"prompt_tokens": job.tokens, "total_tokens": job.tokens},
        }
        return _json(payload, _timing_headers(job, started))

    # ------------------------------------------------------------------ rerank
    @app.post(
        "/v1/rerank",
        response_model=RerankResponse,
        responses=_ERROR_RESPONSES,
        openapi_extra=_request_body(RerankRequest),
    )
    @app.post("/rerank", include_in_schema=False)
    async def rerank(request: Request) -> Response:
        """Score documents against a query (Cohere's / Jina's contract), best first."""
        started = time.perf_counter()
        body = _parse(RerankRequest, await request.body())
        served = state.model_for("rerank", body.model)
        if body.documents is not None and body.texts is not None:
            raise ApiError(
                400, "give documents or texts, not both", param="documents", code="invalid_request"
            )
        documents = body.documents if body.documents is not None else body.texts
        if documents is None:
            raise ApiError(
                400, "documents is required", param="documents", code="missing_documents"
            )
        _check_count(len(documents), config.max_client_batch, "documents")
        if not body.query:
            raise ApiError(400, "query is an empty string", param="query", code="empty_input")
        if body.top_n is not None and body.top_n < 1:
            raise ApiError(
                400,
                f"top_n must be at least 1, got {body.top_n}",
                param="top_n",
                code="invalid_top_n",
            )
        texts = [d if isinstance(d, str) else d.text for d in documents]
        llama = served.llama
        query = body.query
        pairs = await _prepare(
            sum(map(len, texts)) + len(query) * len(texts),
            lambda: llama.prepare_pairs(query, texts),
        )
        job = _submit(served, pairs)
        rows = await _wait(job, request)
        scores = rows[:, 0] if body.raw_scores else sigmoid(rows[:, 0])
        order = np.argsort(-scores, kind="stable")[: body.top_n]
        with_text = body.return_documents or body.return_text
        results = []
        for i in order.tolist():
            item: dict[str, Any] = {"index": i, "relevance_score": float(scores[i])}
            if with_text:
                item["document"] = {"text": texts[i]}
            results.append(item)
        payload = {
            "id": uuid.uuid4().hex,
            "model": served.spec.name,
            "results": results,
            "usage": {"prompt_tokens": job.tokens, "total_tokens": job.tokens},
        }
        return _json(payload, _timing_headers(job, started))

    # ------------------------------------------------------------------ the rest
    @app.get("/v1/models", response_model=ModelList, responses=_ERROR_RESPONSES)
    async def models() -> Response:
        """List the served models."""
        for kind in ("embedding", "rerank"):
            if kind in state.models or not state.ready:
                state.model_for(kind, None)  # raises 503 while loading or shutting down
        cards = []
        for kind, served in state.models.items():
            llama = served.llama
            cards.append(
                {
                    "id": served.spec.name,
                    "object": "model",
                    "created": served.created,
                    "owned_by": "llamaembed",
                    "kind": kind,
                    "dimensions": llama.n_embd if kind == "embedding" else None,
                    "max_tokens": llama.max_tokens,
                }
            )
        return _json({"object": "list", "data": cards}, {})

    @app.get("/health", responses={503: {"model": ErrorResponse}})
    async def health() -> Response:
        """Return 200 when the models are loaded, 503 while loading or shutting down."""
        if state.shutting_down:
            raise ApiError(503, "shutting down", type_="server_error", code="shutting_down")
        if state.load_error is not None:
            raise ApiError(
                503,
                f"the model failed to load: {state.load_error}",
                type_="server_error",
                code="load_failed",
            )
        if not state.ready:
            raise ApiError(503, "loading", type_="server_error", code="model_loading")
        return _json({"status": "ok"}, {})

    @app.get("/metrics")
    async def prometheus() -> Response:
        """Return Prometheus metrics."""
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    handlers: dict[type[Exception], Callable[[Request, Any], Awaitable[Response]]] = {
        ApiError: api_error,
        _ClientGone: client_gone,
        RequestValidationError: invalid,
    }

    async def error_response(request: Request, exc: Exception) -> Response:
        for kind, handler in handlers.items():
            if isinstance(exc, kind):
                return await handler(request, exc)
        return await internal(request, exc)

    state.error_response = error_response
    state.fast_routes = {
        "/v1/embeddings": embeddings,
        "/embeddings": embeddings,
        "/v1/rerank": rerank,
        "/rerank": rerank,
    }
    return app


def _prefix(body: EmbeddingRequest, llama: Embedder, is_text: bool) -> str:
    kinds = {k for k in (body.input_type, body.prompt_name) if k is not None}
    if not kinds:
        return ""
    if len(kinds) > 1:
        raise ApiError(
            400,
            "input_type and prompt_name disagree",
            param="input_type",
            code="invalid_input_type",
        )
    kind = kinds.pop()
    if kind not in ("query", "document"):
        raise ApiError(
            400,
            f"input_type must be 'query' or 'document', got {kind!r}",
            param="input_type",
            code="invalid_input_type",
        )
    if not is_text:
        raise ApiError(
            400,
            "input_type applies to text input, not token ids",
            param="input_type",
            code="invalid_input_type",
        )
    return llama.query_prefix if kind == "query" else llama.document_prefix
