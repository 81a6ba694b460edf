"""The server's own routes: ``/health`` for probes and ``/metrics`` for Prometheus."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import Response

from .common import json_response, server_state
from .errors import ApiError
from .metrics import CONTENT_TYPE

__all__ = ["health", "prometheus"]


async def health(request: Request) -> Response:
    """Return 200 when the models are loaded, 503 while loading or shutting down."""
    state = server_state(request)
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
    return json_response({"status": "ok"})


async def prometheus(request: Request) -> Response:
    """Return Prometheus metrics."""
    return Response(server_state(request).metrics.render(), media_type=CONTENT_TYPE)
