"""LlamaIndex adapters: an embedding model and a reranking node postprocessor.

Needs llama-index-core (``pip install 'llamaembed[llamaindex]'``)::

    from llama_index.core import VectorStoreIndex
    from llamaembed.integrations.llama_index import LlamaEmbedEmbedding

    index = VectorStoreIndex(nodes, embed_model=LlamaEmbedEmbedding("bge-small-en-v1.5"))
"""

from __future__ import annotations

import asyncio
from typing import Any

try:
    from llama_index.core.base.embeddings.base import DEFAULT_EMBED_BATCH_SIZE, BaseEmbedding
    from llama_index.core.postprocessor.types import BaseNodePostprocessor
    from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "llamaembed.integrations.llama_index needs llama-index-core: "
        "pip install 'llamaembed[llamaindex]'"
    ) from exc
from pydantic import PrivateAttr

from ..embedder import Embedder
from ._common import open_embedder, open_reranker, rerank_order

__all__ = ["LlamaEmbedEmbedding", "LlamaEmbedRerank"]


class LlamaEmbedEmbedding(BaseEmbedding):
    """LlamaIndex ``BaseEmbedding`` over any llamaembed model.

    ``model`` is an open embedder, or a GGUF path, catalogue name or static-model folder
    (None: the default model). Queries get the model's query prefix, texts its document
    prefix; ``dimensions`` cuts Matryoshka vectors. Async methods run in a worker thread.
    """

    _embedder: Embedder = PrivateAttr()
    _dimensions: int | None = PrivateAttr(default=None)

    def __init__(
        self,
        model: Embedder | str | None = None,
        *,
        quant: str | None = None,
        dimensions: int | None = None,
        embed_batch_size: int = DEFAULT_EMBED_BATCH_SIZE,
        **options: Any,
    ) -> None:
        embedder = open_embedder(model, quant, **options)
        super().__init__(model_name=embedder.spec.name, embed_batch_size=embed_batch_size)
        self._embedder = embedder
        self._dimensions = dimensions

    @classmethod
    def class_name(cls) -> str:
        """Return the name LlamaIndex records for this class."""
        return "LlamaEmbedEmbedding"

    @property
    def embedder(self) -> Embedder:
        """Return the llamaembed model underneath."""
        return self._embedder

    def _get_query_embedding(self, query: str) -> list[float]:
        vector = self._embedder.embed_query(query, dimensions=self._dimensions)
        return [float(x) for x in vector]

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._get_text_embeddings([text])[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        vectors = self._embedder.embed_documents(texts, dimensions=self._dimensions)
        return [row.tolist() for row in vectors]

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return await asyncio.to_thread(self._get_query_embedding, query)

    async def _aget_text_embedding(self, text: str) -> list[float]:
        return await asyncio.to_thread(self._get_text_embedding, text)

    async def _aget_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return await asyncio.to_thread(self._get_text_embeddings, texts)


class LlamaEmbedRerank(BaseNodePostprocessor):
    """A LlamaIndex node postprocessor keeping the ``top_n`` nodes a cross-encoder ranks best.

    Node scores become the reranker's probabilities in [0, 1]; the order is
    ``Llama.rerank``'s.
    """

    top_n: int | None = 3
    _reranker: Embedder = PrivateAttr()

    def __init__(
        self,
        model: Embedder | str,
        *,
        top_n: int | None = 3,
        quant: str | None = None,
        **options: Any,
    ) -> None:
        if top_n is not None and top_n < 0:
            raise ValueError("top_n must be non-negative")
        reranker = open_reranker(model, quant, **options)
        super().__init__(top_n=top_n)  # type: ignore[call-arg]
        self._reranker = reranker

    @classmethod
    def class_name(cls) -> str:
        """Return the name LlamaIndex records for this class."""
        return "LlamaEmbedRerank"

    def _postprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        if query_bundle is None:
            raise ValueError("LlamaEmbedRerank needs the query (a QueryBundle)")
        texts = [n.node.get_content(metadata_mode=MetadataMode.NONE) for n in nodes]
        ranked = rerank_order(self._reranker, query_bundle.query_str, texts)
        kept = ranked if self.top_n is None else ranked[: self.top_n]
        return [NodeWithScore(node=nodes[i].node, score=s) for i, s in kept]
