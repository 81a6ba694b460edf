"""What every route's handler shares: the state, the body, the model it names, the answer.

A handler receives a body the guard has already bounded and decoded (``serve.guard``), so
``accept`` only counts its JSON values and parses it; the queue is checked for room first,
so a full server refuses before parsing. Answers are JSON written by orjson.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import numpy as np
import orjson
from fastapi import Request
from fastapi.responses import Response
from pydantic import BaseModel

from ..outputs import Output
from .batcher import Job
from .errors import ApiError
from .infer import Served
from .parsing import parse
from .state import ServerState

__all__ = [
    "accept",
    "client_gone",
    "json_response",
    "parse_body",
    "pooled_rows",
    "require_outputs",
    "server_state",
    "timing_headers",
]

_Body = TypeVar("_Body", bound=BaseModel)


def server_state(request: Request) -> ServerState:
    """Return the server's state."""
    state: ServerState = request.app.state.llamaembed
    return state


def client_gone(request: Request) -> Callable[[], Coroutine[Any, Any, None]]:
    """Return a coroutine function that finishes when the request's client disconnects."""

    async def gone() -> None:
        # The body has been read, so the next message the server gets is the disconnect.
        while True:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                return

    return gone


def timing_headers(job: Job, started: float) -> dict[str, str]:
    """Return the queue, inference and total times of a request (TEI's headers)."""
    total = time.perf_counter() - started
    return {
        "x-queue-time": f"{job.queue_seconds * 1000:.2f}",
        "x-inference-time": f"{job.inference_seconds * 1000:.2f}",
        "x-total-time": f"{total * 1000:.2f}",
        "x-compute-tokens": str(job.tokens),
    }


def json_response(payload: Any, headers: dict[str, str] | None = None) -> Response:
    """Return ``payload`` as JSON; float32 arrays are written directly."""
    # orjson writes float32 arrays directly, each number the shortest form that reads back
    # to the same float32: 8 µs for 384 floats where json.dumps takes 215 µs.
    body = orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY)
    return Response(body, media_type="application/json", headers=headers)


async def accept(request: Request, kind: str, schema: type[_Body]) -> tuple[_Body, Served]:
    """Return an inference request's parsed body and the model it names, refused if it must be.

    A full queue refuses before the body is parsed; then the body's values are counted and
    it is parsed, and the model it names looked up (404 for one not served, 503 while
    loading).
    """
    state = server_state(request)
    state.model_for(kind, None).check_room()
    body = await parse_body(request, schema)
    return body, state.model_for(kind, getattr(body, "model", None))


async def parse_body(request: Request, schema: type[_Body]) -> _Body:
    """Return the request's body parsed, its JSON values counted first (413 past the bound)."""
    config = server_state(request).config
    max_values = config.max_request_tokens + 4 * config.max_client_batch + 64  # ids + a few
    return parse(schema, await request.body(), max_values)


def pooled_rows(outputs: list[Output]) -> Any:
    """Return the pooled rows of a job's outputs as one float32 array."""
    rows = [o.pooled for o in outputs if o.pooled is not None]
    return np.stack(rows) if rows else np.empty((0, 0), dtype=np.float32)


def require_outputs(served: Served, *, sparse: bool = False, colbert: bool = False) -> None:
    """Raise a 400 when the served model lacks bge-m3's sparse or ColBERT head."""
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
