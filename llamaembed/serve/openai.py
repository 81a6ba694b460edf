"""OpenAI's embeddings and models, and rerank in Cohere's / Jina's or TEI's shape.

``POST /v1/rerank`` (and ``/rerank``) answers two contracts on one path, told apart by the
body: ``documents`` is Cohere's / Jina's request, answered ``{id, model, results, usage}``;
``texts`` is text-embeddings-inference's, answered as TEI does, a list of
``{index, score, text?}`` best first.
"""

from __future__ import annotations

import base64
import time
import uuid
from typing import Any

import numpy as np
from fastapi import Request
from fastapi.responses import Response

from ..engine.pooling import l2_normalize, sigmoid
from ..outputs import Want
from .common import (
    accept,
    client_gone,
    json_response,
    pooled_rows,
    server_state,
    timing_headers,
)
from .errors import ApiError
from .infer import Served
from .parsing import check_count, embedding_inputs, prefix_for, refuse_blank
from .schemas import EmbeddingRequest, RerankRequest
from .state import KINDS

__all__ = ["answer_rerank", "check_dimensions", "embeddings", "models", "rerank"]


async def embeddings(request: Request) -> Response:
    """Embed texts or token ids (OpenAI's contract)."""
    started = time.perf_counter()
    body, served = await accept(request, "embedding", EmbeddingRequest)
    state = server_state(request)
    model = served.model
    texts, token_lists = embedding_inputs(body, state.config.max_client_batch)
    if body.encoding_format not in ("float", "base64"):
        raise ApiError(
            400,
            f"unknown encoding_format {body.encoding_format!r}; use 'float' or 'base64'",
            param="encoding_format",
            code="invalid_encoding_format",
        )
    dims = check_dimensions(body.dimensions, model.n_embd)
    prefix = prefix_for(body, model, texts is not None)
    gone = client_gone(request)
    if texts is not None:
        if prefix:
            texts = [prefix + t for t in texts]
        outputs, job = await served.texts(texts, Want.POOLED, truncate=body.truncate, gone=gone)
    else:
        assert token_lists is not None
        outputs, job = await served.tokens(token_lists, truncate=body.truncate, gone=gone)
    rows = pooled_rows(outputs)
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
    return json_response(payload, timing_headers(job, started))


def check_dimensions(dims: int | None, n_embd: int) -> int | None:
    """Return the Matryoshka width asked for, or raise a 400 when out of range."""
    if dims is not None and not 1 <= dims <= n_embd:
        raise ApiError(
            400,
            f"dimensions must be between 1 and {n_embd} for this model, got {dims}",
            param="dimensions",
            code="invalid_dimensions",
        )
    return dims


async def rerank(request: Request) -> Response:
    """Score documents against a query, best first: Cohere's / Jina's body, or TEI's."""
    started = time.perf_counter()
    body, served = await accept(request, "rerank", RerankRequest)
    return await answer_rerank(request, body, served, started)


async def answer_rerank(
    request: Request, body: RerankRequest, served: Served, started: float
) -> Response:
    """Answer a parsed rerank request in Cohere's shape, or TEI's for a body with ``texts``."""
    state = server_state(request)
    if body.documents is not None and body.texts is not None:
        raise ApiError(
            400, "give documents or texts, not both", param="documents", code="invalid_request"
        )
    tei = body.texts is not None
    documents = body.texts if body.texts is not None else body.documents
    if documents is None:
        raise ApiError(
            400,
            "documents (Cohere's field) or texts (TEI's) is required",
            param="documents",
            code="missing_documents",
        )
    check_count(len(documents), state.config.max_client_batch, "documents")
    refuse_blank([body.query], "query")
    if body.top_n is not None and body.top_n < 1:
        raise ApiError(
            400, f"top_n must be at least 1, got {body.top_n}", param="top_n", code="invalid_top_n"
        )
    texts = [d if isinstance(d, str) else d.text for d in documents]
    refuse_blank(texts, "documents")
    outputs, job = await served.pairs(body.query, texts, gone=client_gone(request))
    logits = pooled_rows(outputs)[:, 0]
    # Qwen3-Reranker's scores already are probabilities; other rerankers give logits.
    as_given = body.raw_scores or served.model.capabilities.rerank_probabilities
    scores = logits if as_given else sigmoid(logits)
    order = np.argsort(-scores, kind="stable")[: body.top_n].tolist()
    with_text = body.return_documents or body.return_text
    if tei:  # TEI's answer: a bare list
        tei_results = []
        for i in order:
            item: dict[str, Any] = {"index": i, "score": float(scores[i])}
            if with_text:
                item["text"] = texts[i]
            tei_results.append(item)
        return json_response(tei_results, timing_headers(job, started))
    results = []
    for i in order:
        result: dict[str, Any] = {"index": i, "relevance_score": float(scores[i])}
        if with_text:
            result["document"] = {"text": texts[i]}
        results.append(result)
    payload = {
        "id": uuid.uuid4().hex,
        "model": served.spec.name,
        "results": results,
        "usage": {"prompt_tokens": job.tokens, "total_tokens": job.tokens},
    }
    return json_response(payload, timing_headers(job, started))


async def models(request: Request) -> Response:
    """List the served models."""
    state = server_state(request)
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
    return json_response({"object": "list", "data": cards})
