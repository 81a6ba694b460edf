"""The HTTP layer: OpenAI embeddings, rerank, bge-m3's outputs, models, health, metrics.

Embeddings follow OpenAI's contract, rerank Cohere's / Jina's / TEI's, bge-m3's lexical
weights TEI's ``/embed_sparse`` and its ColBERT vectors our ``/embed_colbert``. Routes
live at module level on one router; they parse (``serve.parsing``), check and answer,
and the work goes through ``serve.infer`` (one queue per model). ``serve.guard`` checks
keys and body sizes first; every error leaves through ``serve.errors`` in OpenAI's shape.
``create_app`` wires them together, opening the configured models in a thread after
start-up, or serving models already open (``models=``), as tests do in-process.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import numpy as np
import orjson
from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response
from pydantic import BaseModel

from .. import __version__
from ..embedder import Embedder
from ..engine.pooling import l2_normalize, sigmoid
from .batcher import Job
from .errors import ANSWERED, ApiError, error_response
from .guard import OPEN_PATHS, Guard, route_label
from .infer import Served
from .metrics import CONTENT_TYPE
from .parsing import (
    check_count,
    embedding_inputs,
    parse,
    prefix_for,
    prefix_of,
    refuse_blank,
)
from .schemas import (
    EmbeddingRequest,
    EmbeddingResponse,
    ErrorResponse,
    ModelList,
    RerankRequest,
    RerankResponse,
    SparseValue,
    TeiEmbedRequest,
)
from .state import KINDS, ServerConfig, ServerState

__all__ = ["ServerConfig", "create_app", "router"]

logger = logging.getLogger(__name__)

_Body = TypeVar("_Body", EmbeddingRequest, RerankRequest, TeiEmbedRequest)

_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (400, 401, 404, 413, 422, 429, 503)
}


# ----------------------------------------------------------------------------- helpers
def _state(request: Request) -> ServerState:
    state: ServerState = request.app.state.llamaembed
    return state


def _gone(request: Request) -> Callable[[], Coroutine[Any, Any, None]]:
    async def client_gone() -> None:
        # The body has been read, so the next message the server gets is the disconnect.
        while True:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                return

    return client_gone


def _timing_headers(job: Job, started: float) -> dict[str, str]:
    total = time.perf_counter() - started
    return {
        "x-queue-time": f"{job.queue_seconds * 1000:.2f}",
        "x-inference-time": f"{job.inference_seconds * 1000:.2f}",
        "x-total-time": f"{total * 1000:.2f}",
        "x-compute-tokens": str(job.tokens),
    }


def _json(payload: Any, headers: dict[str, str]) -> Response:
    # orjson writes float32 arrays directly, each number the shortest form that reads back
    # to the same float32: 8 µs for 384 floats where json.dumps takes 215 µs.
    body = orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY)
    return Response(body, media_type="application/json", headers=headers)


def _request_body(model: type[BaseModel]) -> dict[str, Any]:
    """Return the OpenAPI request body of a route that parses its body itself."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    schema.pop("$defs", None)  # the nested models are components of the responses
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


async def _accept(
    request: Request, kind: str, schema: type[_Body]
) -> tuple[ServerState, _Body, Served]:
    """Return an inference request's state, parsed body and model, refused if it must be.

    A full queue refuses before the body is parsed; then the body is bounded and parsed,
    and the model it names looked up (404 for one not served, 503 while loading).
    """
    state = _state(request)
    state.model_for(kind, None).check_room()
    config = state.config
    max_values = config.max_request_tokens + 4 * config.max_client_batch + 64  # ids + a few
    body = parse(schema, await request.body(), max_values)
    return state, body, state.model_for(kind, body.model)


# ----------------------------------------------------------------------------- routes
router = APIRouter()


@router.post(
    "/v1/embeddings",
    response_model=EmbeddingResponse,
    responses=_ERROR_RESPONSES,
    openapi_extra=_request_body(EmbeddingRequest),
)
@router.post("/embeddings", include_in_schema=False)
async def embeddings(request: Request) -> Response:
    """Embed texts or token ids (OpenAI's contract)."""
    started = time.perf_counter()
    state, body, served = await _accept(request, "embedding", EmbeddingRequest)
    model = served.model
    texts, token_lists = embedding_inputs(body, state.config.max_client_batch)
    if body.encoding_format not in ("float", "base64"):
        raise ApiError(
            400,
            f"unknown encoding_format {body.encoding_format!r}; use 'float' or 'base64'",
            param="encoding_format",
            code="invalid_encoding_format",
        )
    dims = body.dimensions
    if dims is not None and not 1 <= dims <= model.n_embd:
        raise ApiError(
            400,
            f"dimensions must be between 1 and {model.n_embd} for this model, got {dims}",
            param="dimensions",
            code="invalid_dimensions",
        )
    prefix = prefix_for(body, model, texts is not None)
    if texts is not None and prefix:
        texts = [prefix + t for t in texts]
    rows, job = await served.embed(
        texts,
        token_lists,
        truncate=body.truncate,
        gone=_gone(request),
        on_truncate=state.metrics.truncated.labels(served.spec.name).inc,
    )
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


@router.post(
    "/v1/rerank",
    response_model=RerankResponse,
    responses=_ERROR_RESPONSES,
    openapi_extra=_request_body(RerankRequest),
)
@router.post("/rerank", include_in_schema=False)
async def rerank(request: Request) -> Response:
    """Score documents against a query (Cohere's / Jina's contract), best first."""
    started = time.perf_counter()
    state, body, served = await _accept(request, "rerank", RerankRequest)
    if body.documents is not None and body.texts is not None:
        raise ApiError(
            400, "give documents or texts, not both", param="documents", code="invalid_request"
        )
    documents = body.documents if body.documents is not None else body.texts
    if documents is None:
        raise ApiError(400, "documents is required", param="documents", code="missing_documents")
    check_count(len(documents), state.config.max_client_batch, "documents")
    refuse_blank([body.query], "query")
    if body.top_n is not None and body.top_n < 1:
        raise ApiError(
            400, f"top_n must be at least 1, got {body.top_n}", param="top_n", code="invalid_top_n"
        )
    texts = [d if isinstance(d, str) else d.text for d in documents]
    refuse_blank(texts, "documents")
    rows, job = await served.rerank(body.query, texts, gone=_gone(request))
    # Qwen3-Reranker's scores already are probabilities; other rerankers give logits.
    as_given = body.raw_scores or served.model.capabilities.rerank_probabilities
    scores = rows[:, 0] if as_given else sigmoid(rows[:, 0])
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


async def _m3_outputs(
    request: Request, *, sparse: bool, colbert: bool
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Run a TEI-style request for bge-m3's lexical weights or ColBERT vectors."""
    started = time.perf_counter()
    state, body, served = await _accept(request, "embedding", TeiEmbedRequest)
    capabilities = served.model.capabilities
    if (sparse and not capabilities.sparse) or (colbert and not capabilities.colbert):
        head = "sparse_linear (lexical weights)" if sparse else "colbert_linear (ColBERT vectors)"
        raise ApiError(
            400,
            f"model {served.spec.name!r} has no {head} head; serve a bge-m3 GGUF with its "
            "heads file (llamaembed convert writes it)",
            param="model",
            code="missing_head",
        )
    texts = [body.inputs] if isinstance(body.inputs, str) else body.inputs
    check_count(len(texts), state.config.max_client_batch, "inputs")
    refuse_blank(texts, "inputs")
    prefix = prefix_of(body.prompt_name, served.model, "prompt_name")
    rows, job = await served.m3(
        [prefix + t for t in texts] if prefix else texts,
        sparse=sparse,
        colbert=colbert,
        truncate=body.truncate,
        gone=_gone(request),
        on_truncate=state.metrics.truncated.labels(served.spec.name).inc,
    )
    return rows, _timing_headers(job, started)


@router.post(
    "/embed_sparse",
    response_model=list[list[SparseValue]],
    responses=_ERROR_RESPONSES,
    openapi_extra=_request_body(TeiEmbedRequest),
)
async def embed_sparse(request: Request) -> Response:
    """Return bge-m3's lexical weights, as text-embeddings-inference's ``/embed_sparse``.

    Per input, the ``{index, value}`` of each token id with a positive weight, by token id.
    """
    rows, headers = await _m3_outputs(request, sparse=True, colbert=False)
    payload = [
        [{"index": int(t), "value": w} for t, w in sorted(r["lexical"].items(), key=_token_id)]
        for r in rows
    ]
    return _json(payload, headers)


def _token_id(item: tuple[str, float]) -> int:
    return int(item[0])


@router.post(
    "/embed_colbert",
    response_model=list[list[list[float]]],
    responses=_ERROR_RESPONSES,
    openapi_extra=_request_body(TeiEmbedRequest),
)
async def embed_colbert(request: Request) -> Response:
    """Return bge-m3's ColBERT vectors, for late interaction.

    Per input, one unit vector for every token after the first (``n_tokens - 1`` rows, as
    FlagEmbedding's ``colbert_vecs``).
    """
    rows, headers = await _m3_outputs(request, sparse=False, colbert=True)
    return _json([r["colbert"] for r in rows], headers)


@router.get("/v1/models", response_model=ModelList, responses=_ERROR_RESPONSES)
async def models(request: Request) -> Response:
    """List the served models."""
    state = _state(request)
    for kind in KINDS:
        if kind in state.models or not state.ready:
            state.model_for(kind, None)  # raises 503 while loading or shutting down
    cards = []
    for kind, served in state.models.items():
        cards.append(
            {
                "id": served.spec.name,
                "object": "model",
                "created": served.created,
                "owned_by": "llamaembed",
                "kind": kind,
                "dimensions": served.model.n_embd if kind == "embedding" else None,
                "max_tokens": served.model.max_tokens,
            }
        )
    return _json({"object": "list", "data": cards}, {})


@router.api_route("/health", methods=["GET", "HEAD"], responses={503: {"model": ErrorResponse}})
async def health(request: Request) -> Response:
    """Return 200 when the models are loaded, 503 while loading or shutting down."""
    state = _state(request)
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


@router.get("/metrics")
async def prometheus(request: Request) -> Response:
    """Return Prometheus metrics."""
    return Response(_state(request).metrics.render(), media_type=CONTENT_TYPE)


# ----------------------------------------------------------------------------- the app
def create_app(
    config: ServerConfig,
    models: Mapping[str, Embedder] | None = None,
    *,
    on_fatal: Callable[[BaseException], None] | None = None,
) -> FastAPI:
    """Return the ASGI app.

    Without ``models`` the configured models load in a thread after start-up (``/health``
    says when). ``models`` maps a kind ("embedding", "rerank") to a model already open:
    it is served at once and stays the caller's to close.
    """
    state = ServerState(config, models)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        loading = None if state.ready else asyncio.create_task(_load(state, on_fatal))
        yield
        state.shutting_down = True
        if loading is not None:
            await loading
        # uvicorn has let requests finish, or cancelled them past the grace period (they
        # answer 503): whatever is still queued belongs to nobody.
        await asyncio.to_thread(lambda: state.close(drain=False))

    app = FastAPI(
        title="llamaembed",
        version=__version__,
        description="OpenAI- and Cohere-compatible embeddings and reranking on llama.cpp.",
        lifespan=lifespan,
    )
    app.state.llamaembed = state
    app.include_router(router)

    async def handle(request: Request, exc: Exception) -> Response:
        label = route_label(request.url.path)
        return error_response(exc, lambda code: state.metrics.failures.labels(label, code).inc())

    app.add_middleware(
        Guard,
        api_keys=config.api_keys,
        max_body_bytes=config.max_body_bytes,
        metrics=state.metrics,
        # The hot routes skip FastAPI's router, its exception middleware and dependency
        # solving: a third of the event-loop CPU of a one-text request (see benchmarks).
        hot_routes={
            "/v1/embeddings": embeddings,
            "/embeddings": embeddings,
            "/v1/rerank": rerank,
            "/rerank": rerank,
        },
        on_error=handle,
    )

    for kind in ANSWERED:
        app.add_exception_handler(kind, handle)
    if config.api_keys:
        app.openapi = lambda: _openapi_with_bearer(app)  # type: ignore[method-assign]
    return app


def _openapi_with_bearer(app: FastAPI) -> dict[str, Any]:
    """Return the OpenAPI schema, saying which routes take ``Authorization: Bearer``."""
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
        schemes["bearer"] = {
            "type": "http",
            "scheme": "bearer",
            "description": "One of the server's keys (--api-key, --api-key-file).",
        }
        for path, operations in schema["paths"].items():
            if path not in OPEN_PATHS:
                for operation in operations.values():
                    operation["security"] = [{"bearer": []}]
        app.openapi_schema = schema
    return app.openapi_schema


async def _load(state: ServerState, on_fatal: Callable[[BaseException], None] | None) -> None:
    try:
        await asyncio.to_thread(state.open_models)
        logger.info("ready: %s", ", ".join(s.spec.name for s in state.models.values()))
    except Exception as exc:
        state.load_error = exc
        logger.error("could not open the model: %s", exc)
        if on_fatal is not None:
            on_fatal(exc)
