"""What the framework adapters share: opening a model given as an object or a name."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..embedder import Embedder
from ..errors import RerankNotSupportedError

__all__ = ["open_embedder", "open_reranker", "rerank_order"]


def open_embedder(
    model: Embedder | str | None, quant: str | None = None, **options: Any
) -> Embedder:
    """Return ``model`` itself, or open a GGUF path, catalogue name or static folder."""
    if isinstance(model, Embedder):
        if options or quant is not None:
            raise ValueError("quant and model options apply to a model name, not an open model")
        return model
    if model is not None and not isinstance(model, str):
        raise TypeError(f"model is {type(model).__name__}: give an Embedder or a model name")
    from ..hub.spec import resolve_model

    return resolve_model(model, quant=quant, **options).open()


def open_reranker(model: Embedder | str, quant: str | None = None, **options: Any) -> Embedder:
    """Return an open cross-encoder (a reranking model), or raise RerankNotSupportedError."""
    if model is None:
        raise ValueError("give a reranking model (a cross-encoder GGUF or catalogue name)")
    reranker = open_embedder(model, quant, **options)
    if not reranker.capabilities.rerank:
        raise RerankNotSupportedError(
            f"{reranker.spec.name} is not a reranker: give a cross-encoder such as "
            "bge-reranker-v2-m3"
        )
    return reranker


def rerank_order(reranker: Embedder, query: str, texts: list[str]) -> list[tuple[int, float]]:
    """Return (position, relevance in [0, 1]) of ``texts`` for ``query``, most relevant first.

    The order is ``reranker.rerank``'s; the score is its probability (a sigmoid over a
    cross-encoder's logit, Qwen3-Reranker's own P("yes")).
    """
    if not texts:
        return []
    scores = np.asarray(reranker.rerank(query, texts, activation="sigmoid"), dtype=np.float64)
    order = np.argsort(-scores, kind="stable")
    return [(int(i), float(scores[i])) for i in order]
