"""LangChain adapters: embeddings, a reranking document compressor, a retriever over an index.

Needs langchain-core (``pip install 'llamaembed[langchain]'``)::

    from langchain_core.vectorstores import InMemoryVectorStore
    from llamaembed.integrations.langchain import LlamaEmbedEmbeddings

    embeddings = LlamaEmbedEmbeddings("bge-small-en-v1.5")
    store = InMemoryVectorStore.from_texts(texts, embedding=embeddings)
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

try:
    from langchain_core.callbacks import CallbackManagerForRetrieverRun, Callbacks
    from langchain_core.documents import BaseDocumentCompressor, Document
    from langchain_core.embeddings import Embeddings
    from langchain_core.retrievers import BaseRetriever
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "llamaembed.integrations.langchain needs langchain-core: "
        "pip install 'llamaembed[langchain]'"
    ) from exc
from pydantic import ConfigDict, Field

from ..embedder import Embedder
from ..store.search import Hit
from ._common import open_embedder, open_reranker, rerank_order

__all__ = ["LlamaEmbedEmbeddings", "LlamaEmbedReranker", "LlamaEmbedRetriever", "hit_document"]


class LlamaEmbedEmbeddings(Embeddings):
    """LangChain ``Embeddings`` over any llamaembed model (a ``Llama``, a ``StaticModel``…).

    ``model`` is an open embedder, or a GGUF path, catalogue name or static-model folder
    (None: the default model); ``options`` go to the model when it is opened by name.
    Queries get the model's query prefix and documents its document prefix, unless
    ``query_prefix`` / ``document_prefix`` say otherwise. ``dimensions`` cuts Matryoshka
    vectors. The async methods run the model in a worker thread.
    """

    def __init__(
        self,
        model: Embedder | str | None = None,
        *,
        quant: str | None = None,
        query_prefix: str | None = None,
        document_prefix: str | None = None,
        dimensions: int | None = None,
        **options: Any,
    ) -> None:
        self.embedder = open_embedder(model, quant, **options)
        self.query_prefix = query_prefix
        self.document_prefix = document_prefix
        self.dimensions = dimensions

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Return one unit vector per document, as lists of floats."""
        vectors = self.embedder.embed_documents(
            texts, prefix=self.document_prefix, dimensions=self.dimensions
        )
        return [row.tolist() for row in vectors]

    def embed_query(self, text: str) -> list[float]:
        """Return the unit vector of a search query, as a list of floats."""
        vector = self.embedder.embed_query(
            text, prefix=self.query_prefix, dimensions=self.dimensions
        )
        return [float(x) for x in vector]

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """Return ``embed_documents(texts)`` without blocking the event loop."""
        return await asyncio.to_thread(self.embed_documents, texts)

    async def aembed_query(self, text: str) -> list[float]:
        """Return ``embed_query(text)`` without blocking the event loop."""
        return await asyncio.to_thread(self.embed_query, text)


class LlamaEmbedReranker(BaseDocumentCompressor):
    """A document compressor that keeps the ``top_n`` documents a cross-encoder ranks best.

    Each returned document is a copy whose metadata gains ``relevance_score`` (the
    reranker's probability in [0, 1]); the order is ``Llama.rerank``'s.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    reranker: Any = Field(description="An open cross-encoder (llamaembed Embedder).")
    top_n: int | None = 3

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
        super().__init__(reranker=open_reranker(model, quant, **options), top_n=top_n)  # type: ignore[call-arg]

    def compress_documents(
        self, documents: Sequence[Document], query: str, callbacks: Callbacks | None = None
    ) -> Sequence[Document]:
        """Return the documents most relevant to ``query``, best first."""
        docs = list(documents)
        ranked = rerank_order(self.reranker, query, [d.page_content for d in docs])
        kept = ranked if self.top_n is None else ranked[: self.top_n]
        return [
            docs[i].model_copy(update={"metadata": {**docs[i].metadata, "relevance_score": s}})
            for i, s in kept
        ]

    async def acompress_documents(
        self, documents: Sequence[Document], query: str, callbacks: Callbacks | None = None
    ) -> Sequence[Document]:
        """Return ``compress_documents(...)`` without blocking the event loop."""
        return await asyncio.to_thread(self.compress_documents, documents, query, callbacks)


def hit_document(hit: Hit) -> Document:
    """Return a search hit as a LangChain ``Document``: its metadata plus ``id`` and ``score``."""
    return Document(
        page_content=hit.text,
        id=hit.id,
        metadata={**hit.metadata, "id": hit.id, "score": hit.score},
    )


class LlamaEmbedRetriever(BaseRetriever):
    """A LangChain retriever over a llamaembed ``Index`` (or ``ShardedIndex``, ``MilvusStore``).

    ``k`` hits per query; ``hybrid`` fuses keyword and vector rankings; ``filter`` keeps
    documents whose metadata equals every given value; ``rerank_with`` is a cross-encoder
    (or "colbert") that rescores the candidates. Each ``Document`` carries the stored
    metadata plus ``id`` and ``score``.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    index: Any = Field(description="An Index, ShardedIndex or MilvusStore.")
    k: int = 4
    hybrid: bool = True
    filter: Mapping[str, Any] | None = None
    rerank_with: Any = None

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        hits = self.index.search(
            query, self.k, hybrid=self.hybrid, filter=self.filter, rerank_with=self.rerank_with
        )
        return [hit_document(h) for h in hits]
