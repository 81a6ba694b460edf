"""The HTTP app: every route of the route table registered, guarded and documented.

The routes themselves live by contract: ``serve.openai`` (OpenAI's embeddings and models,
Cohere's / Jina's / TEI's rerank), ``serve.tei`` (text-embeddings-inference), ``serve.ollama``
(Ollama) and ``serve.status`` (health, metrics); ``serve.routes`` declares each once. Routes
parse, check and answer; the work goes through ``serve.infer`` (one queue per model).
``serve.guard`` checks keys and body sizes first; every error leaves through
``serve.errors`` in the route's error shape. ``create_app`` wires them together, opening the
configured models in a thread after start-up, or serving models already open (``models=``),
as tests do in-process.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response
from pydantic import BaseModel

from .. import __version__
from ..batch import BatchEmbedder
from .errors import ANSWERED, error_response
from .guard import Guard
from .routes import ROUTES, Route, RouteTable
from .schemas import ErrorResponse
from .state import ServerConfig, ServerState

__all__ = ["ServerConfig", "create_app", "router"]

logger = logging.getLogger(__name__)

_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (400, 401, 404, 413, 415, 422, 429, 503)
}


def _request_body(model: type[BaseModel], example: dict[str, Any] | None) -> dict[str, Any]:
    """Return the OpenAPI request body of a route that parses its body itself."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    schema.pop("$defs", None)  # the nested models are components of the responses
    content: dict[str, Any] = {"schema": schema}
    if example is not None:
        content["example"] = example
    return {"requestBody": {"required": True, "content": {"application/json": content}}}


def _register(router: APIRouter, route: Route) -> None:
    for path in route.paths:
        alias = path != route.path
        router.add_api_route(
            path,
            route.handler,
            methods=list(route.methods),
            response_model=route.response,
            responses=_ERROR_RESPONSES if route.errors == "openai" else None,
            openapi_extra=(
                _request_body(route.request, route.example) if route.request is not None else None
            ),
            summary=f"Alias of {route.path}" if alias else None,
            operation_id=f"{route.label}{path.replace('/', '_')}" if alias else None,
        )


router = APIRouter()
for _route in ROUTES:
    _register(router, _route)


# ----------------------------------------------------------------------------- the app
def create_app(
    config: ServerConfig,
    models: Mapping[str, BatchEmbedder] | None = None,
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

    table = RouteTable(ROUTES)

    async def handle(request: Request, exc: Exception) -> Response:
        path = request.url.path
        label = table.label(path)
        return error_response(
            exc,
            lambda code: state.metrics.failures.labels(label, code).inc(),
            table.error_shape(path),
        )

    app.add_middleware(
        Guard,
        api_keys=config.api_keys,
        max_body_bytes=config.max_body_bytes,
        metrics=state.metrics,
        # Inference routes skip FastAPI's router, its exception middleware and dependency
        # solving: a third of the event-loop CPU of a one-text request (see benchmarks).
        routes=table,
        on_error=handle,
    )

    for kind in ANSWERED:
        app.add_exception_handler(kind, handle)
    if config.api_keys:
        app.openapi = lambda: _openapi_with_bearer(app, table)  # type: ignore[method-assign]
    return app


def _openapi_with_bearer(app: FastAPI, table: RouteTable) -> dict[str, Any]:
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
            route = table.find(path)
            if route is None or not route.open:
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
