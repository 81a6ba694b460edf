"""Ollama's embedding contract, enough for Ollama's own clients.

``/api/embed``, ``/api/embeddings``, ``/api/tags``, ``/api/show`` and ``/api/version``:
enough for the official ``ollama`` client, Open WebUI, Continue and the RAG tools built on
them to list the served models and embed with them. The model a request names selects
among the served ones (``name`` and ``name:latest`` alike); the server's limits and keys
hold as on every route, and errors come in Ollama's shape, ``{"error": "..."}`` (the route
table says so). ``keep_alive`` and ``options`` are accepted and have no effect: a served
model stays loaded.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import time
from functools import lru_cache
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from .. import __version__
from ..engine.pooling import l2_normalize
from ..outputs import Want
from .common import (
    accept,
    client_gone,
    json_response,
    parse_body,
    pooled_rows,
    server_state,
)
from .infer import Served
from .openai import check_dimensions
from .parsing import refuse_blank, text_inputs
from .schemas import OllamaEmbeddingsRequest, OllamaEmbedRequest, OllamaShowRequest

__all__ = ["embed", "embeddings", "show", "tags", "version"]


async def embed(request: Request) -> Response:
    """Return unit vectors of ``input`` (Ollama's ``/api/embed``)."""
    started = time.perf_counter_ns()
    body, served = await accept(request, "embedding", OllamaEmbedRequest)
    state = server_state(request)
    texts = text_inputs(body.input, state.config.max_client_batch, "input")
    dims = check_dimensions(body.dimensions, served.model.n_embd)
    outputs, job = await served.texts(
        texts, Want.POOLED, truncate=body.truncate, gone=client_gone(request)
    )
    rows = pooled_rows(outputs)
    payload = {
        "model": served.spec.name,
        "embeddings": l2_normalize(rows[:, :dims] if dims else rows),
        "total_duration": time.perf_counter_ns() - started,
        "load_duration": 0,
        "prompt_eval_count": job.tokens,
    }
    return json_response(payload)


async def embeddings(request: Request) -> Response:
    """Return the raw (unnormalised) vector of one ``prompt`` (Ollama's ``/api/embeddings``)."""
    body, served = await accept(request, "embedding", OllamaEmbeddingsRequest)
    refuse_blank([body.prompt], "prompt")
    outputs, _ = await served.texts(
        [body.prompt], Want.POOLED, truncate=True, gone=client_gone(request)
    )
    return json_response({"embedding": outputs[0].pooled})


async def tags(request: Request) -> Response:
    """List the served embedding model as Ollama lists its local models."""
    state = server_state(request)
    served = state.model_for("embedding", None)
    return json_response({"models": [_card(served)]})


async def show(request: Request) -> Response:
    """Describe a served model (Ollama's ``/api/show``)."""
    state = server_state(request)
    body = await parse_body(request, OllamaShowRequest)
    served = state.model_for("embedding", body.model or body.name)
    model = served.model
    architecture = model.facts.architecture
    card = _card(served)
    return json_response(
        {
            "modelfile": f"FROM {served.spec.path}\n",
            "parameters": "",
            "template": "",
            "details": card["details"],
            "model_info": {
                "general.architecture": architecture,
                f"{architecture}.embedding_length": model.n_embd,
                f"{architecture}.context_length": model.max_tokens,
            },
            "capabilities": ["embedding"],
            "modified_at": card["modified_at"],
        }
    )


async def version(request: Request) -> Response:
    """Return the server's version (Ollama clients ask before anything else)."""
    return json_response({"version": __version__})


def _card(served: Served) -> dict[str, Any]:
    """Return a served model as one entry of Ollama's model list."""
    facts = served.model.facts
    modified, digest = _file_stamp(served.spec.path, facts.size_bytes)
    return {
        "name": served.spec.name,
        "model": served.spec.name,
        "modified_at": modified,
        "size": facts.size_bytes,
        "digest": digest,
        "details": {
            "parent_model": "",
            "format": "gguf" if served.spec.kind == "gguf" else "model2vec",
            "family": facts.architecture,
            "families": [facts.architecture],
            "parameter_size": "",
            "quantization_level": facts.weight_type,
        },
    }


@lru_cache(maxsize=8)
def _file_stamp(path: str, size: int) -> tuple[str, str]:
    """Return a model file's modification time (ISO 8601) and a digest naming the file."""
    try:
        mtime = os.stat(path).st_mtime
    except OSError:
        mtime = time.time()
    stamp = datetime.datetime.fromtimestamp(mtime, datetime.timezone.utc).isoformat()
    # A digest of the whole file would read gigabytes on every listing; Ollama's clients
    # only compare it, so the path, size and time identify the file well enough.
    digest = hashlib.sha256(f"{path}:{size}:{mtime}".encode()).hexdigest()
    return stamp, digest
