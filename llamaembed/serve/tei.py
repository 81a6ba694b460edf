"""text-embeddings-inference's contract, and our ``/embed_colbert`` in its shape.

TEI's routes: ``/``, ``/embed``, ``/embed_all``, ``/embed_sparse``, ``/tokenize``,
``/decode`` and ``/info``.
Requests take TEI's fields (``inputs``, ``truncate``, ``truncation_direction``,
``prompt_name``, ``normalize``, ``dimensions``) and answers are TEI's bare lists. ``POST /``
is TEI's root route, which ``huggingface_hub.InferenceClient(model=URL)`` calls: a body
with ``query`` is a rerank request (answered as ``/rerank`` with ``texts``), any other an
embed request. TEI's ``/rerank`` shares its path with Cohere's (``serve.openai``).
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from .. import __version__
from ..engine.pooling import l2_normalize
from ..outputs import Output, Want
from .common import (
    accept,
    client_gone,
    json_response,
    parse_body,
    pooled_rows,
    require_outputs,
    server_state,
    timing_headers,
)
from .errors import ApiError
from .infer import Served
from .openai import answer_rerank, check_dimensions
from .parsing import check_count, prefix_of, text_inputs
from .schemas import (
    RerankRequest,
    TeiDecodeRequest,
    TeiEmbedRequest,
    TeiRootRequest,
    TeiTokenizeRequest,
)

__all__ = [
    "decode",
    "embed",
    "embed_all",
    "embed_colbert",
    "embed_sparse",
    "info",
    "root",
    "tokenize",
]


async def _run(
    request: Request, body: TeiEmbedRequest, served: Served, want: Want
) -> tuple[list[Output], dict[str, str]]:
    """Run a TEI embed-style request's texts for ``want``; return outputs and timing headers."""
    started = time.perf_counter()
    state = server_state(request)
    if body.truncation_direction.lower() != "right":
        raise ApiError(
            400,
            f"truncation_direction {body.truncation_direction!r} is not supported: over-long "
            "inputs are cut at their end ('Right')",
            param="truncation_direction",
            code="invalid_truncation_direction",
        )
    texts = text_inputs(body.inputs, state.config.max_client_batch, "inputs")
    prefix = prefix_of(body.prompt_name, served.model, "prompt_name")
    outputs, job = await served.texts(
        [prefix + t for t in texts] if prefix else texts,
        want,
        truncate=bool(body.truncate),
        gone=client_gone(request),
    )
    return outputs, timing_headers(job, started)


async def _embed(request: Request, body: TeiEmbedRequest, served: Served) -> Response:
    dims = check_dimensions(body.dimensions, served.model.n_embd)
    outputs, headers = await _run(request, body, served, Want.POOLED)
    rows = pooled_rows(outputs)
    rows = rows[:, :dims] if dims else rows
    return json_response(l2_normalize(rows) if body.normalize else rows, headers)


async def embed(request: Request) -> Response:
    """Return each input's pooled vector (unit length unless ``normalize`` is false)."""
    body, served = await accept(request, "embedding", TeiEmbedRequest)
    return await _embed(request, body, served)


async def root(request: Request) -> Response:
    """TEI's root route: rerank when the body has ``query``, else embed (as ``/embed``)."""
    started = time.perf_counter()
    state = server_state(request)
    _served_any(request, None).check_room()
    body = await parse_body(request, TeiRootRequest)
    if body.query is not None:
        fields = body.model_dump(include={"query", "texts", "model", "raw_scores", "return_text"})
        served = state.model_for("rerank", body.model)
        return await answer_rerank(request, RerankRequest(**fields), served, started)
    if body.inputs is None:
        raise ApiError(
            400,
            "give inputs (to embed) or query and texts (to rerank)",
            param="inputs",
            code="missing_inputs",
        )
    served = state.model_for("embedding", body.model)
    return await _embed(request, TeiEmbedRequest.model_validate(body.model_dump()), served)


async def embed_all(request: Request) -> Response:
    """Return every token's raw final state, per input (TEI's ``/embed_all``)."""
    body, served = await accept(request, "embedding", TeiEmbedRequest)
    if not served.model.capabilities.token_states:
        raise ApiError(
            400,
            f"model {served.spec.name!r} has no token states to return (a static model)",
            param="model",
            code="missing_head",
        )
    outputs, headers = await _run(request, body, served, Want.TOKENS)
    return json_response([o.tokens for o in outputs], headers)


async def embed_sparse(request: Request) -> Response:
    """Return bge-m3's lexical weights, as TEI's ``/embed_sparse``.

    Per input, the ``{index, value}`` of each token id with a positive weight, by token id.
    """
    body, served = await accept(request, "embedding", TeiEmbedRequest)
    require_outputs(served, sparse=True)
    outputs, headers = await _run(request, body, served, Want.SPARSE)
    payload = []
    for output in outputs:
        assert output.sparse is not None
        ids, values = output.sparse.indices.tolist(), output.sparse.values.tolist()
        payload.append([{"index": i, "value": v} for i, v in zip(ids, values, strict=True)])
    return json_response(payload, headers)


async def embed_colbert(request: Request) -> Response:
    """Return bge-m3's ColBERT vectors, for late interaction.

    Per input, one unit vector for every token after the first (``n_tokens - 1`` rows, as
    FlagEmbedding's ``colbert_vecs``).
    """
    body, served = await accept(request, "embedding", TeiEmbedRequest)
    require_outputs(served, colbert=True)
    outputs, headers = await _run(request, body, served, Want.COLBERT)
    return json_response([o.colbert for o in outputs], headers)


def _served_any(request: Request, name: str | None) -> Served:
    """Return the model a tokenizer request names: the embedding model, else the reranker."""
    state = server_state(request)
    kind = "embedding" if "embedding" in state.models or not state.ready else "rerank"
    return state.model_for(kind, name)


async def tokenize(request: Request) -> Response:
    """Return each input's tokens: ``{id, text, special, start, stop}`` (TEI's ``/tokenize``).

    ``start`` and ``stop`` are character offsets into the input (prefix included) where the
    token's text is found there as it is, and null where the tokenizer changed it
    (lower-casing, accents), rather than a guess.
    """
    state = server_state(request)
    body = await parse_body(request, TeiTokenizeRequest)
    served = _served_any(request, body.model)
    model = served.model
    texts = [body.inputs] if isinstance(body.inputs, str) else body.inputs
    check_count(len(texts), state.config.max_client_batch, "inputs")
    prefix = prefix_of(body.prompt_name, model, "prompt_name")
    answer = []
    for text in texts:
        full = prefix + text
        ids = model.tokenize(full, add_special=body.add_special_tokens).tolist()
        answer.append(_simple_tokens(model, full, ids))
    return json_response(answer)


def _simple_tokens(model: Any, text: str, ids: list[int]) -> list[dict[str, Any]]:
    tokens = []
    cursor = 0
    for token in ids:
        piece = model.detokenize([token], special=True)
        special = piece != "" and model.detokenize([token], special=False) == ""
        start = stop = None
        if not special:
            word = piece.strip().removeprefix("##")
            found = text.find(word, cursor) if word else -1
            if found >= 0 and not text[cursor:found].strip():  # only spaces skipped
                start, stop = found, found + len(word)
                cursor = stop
        tokens.append(
            {"id": token, "text": piece, "special": special, "start": start, "stop": stop}
        )
    return tokens


async def decode(request: Request) -> Response:
    """Return the text of each list of token ids (TEI's ``/decode``)."""
    config = server_state(request).config
    body = await parse_body(request, TeiDecodeRequest)
    served = _served_any(request, body.model)
    lists: list[Any] = [body.ids] if not body.ids or isinstance(body.ids[0], int) else body.ids
    check_count(len(lists), config.max_client_batch, "ids")
    texts = []
    for i, ids in enumerate(lists):
        try:
            texts.append(served.model.detokenize(ids, special=not body.skip_special_tokens))
        except ValueError as exc:
            raise ApiError(
                400, f"ids at index {i}: {exc}", param="ids", code="invalid_token"
            ) from None
    return json_response(texts)


async def info(request: Request) -> Response:
    """Return TEI's ``/info``: the model, its type, and the server's limits."""
    served = _served_any(request, None)
    config = server_state(request).config
    model = served.model
    facts = model.facts
    if served.kind == "rerank":
        model_type: dict[str, Any] = {"reranker": {"id2label": {"0": "LABEL_0"}}}
    else:
        model_type = {"embedding": {"pooling": facts.pooling}}
    params = served.spec.params
    return json_response(
        {
            "model_id": served.spec.name,
            "model_sha": None,
            "model_dtype": facts.weight_type or "unknown",
            "model_type": model_type,
            "max_concurrent_requests": config.http.max_connections,
            "max_input_length": model.max_tokens,
            "max_batch_tokens": config.max_batch_tokens,
            "max_batch_requests": None,
            "max_client_batch_size": config.max_client_batch,
            "auto_truncate": False,
            "tokenization_workers": 1,
            "version": __version__,
            "sha": None,
            "docker_label": None,
            "model_path": params.model_path if params is not None else served.spec.path,
        }
    )
