"""The embedder contract: what every model that makes vectors offers its consumers.

``Llama`` (a GGUF model on llama.cpp) and ``StaticModel`` (a Model2Vec-format folder)
both implement :class:`Embedder`. The index, the ingest path, the CLI, the server and the
Ray actors take any ``Embedder`` and ask it what it can do (:class:`Capabilities`)
instead of probing for methods. A leaf module: it imports only the errors, the input checks,
the output types and the array aliases, so every layer may import it.

An embedder offers four groups of members:

- vectors: ``embed``, ``embed_texts``, ``embed_query``, ``embed_documents``, ``n_embd``
  and ``fingerprint`` (equal fingerprints make equal vectors);
- tokens: ``tokenize``, ``detokenize``, ``count_tokens`` (what chunking counts) and
  ``max_tokens``;
- its description: ``spec``, a picklable ``ModelSpec`` that reopens it anywhere (index
  manifests, Parquet metadata, the server, Ray actors), and ``capabilities``;
- typed outputs: ``encode_outputs`` (pooled rows, bge-m3's sparse and ColBERT outputs,
  token states as :mod:`llamaembed.outputs` types) and ``encode_m3``, FlagEmbedding's
  dict on top of it.

The batch interface the server's queue runs (prepare, then forward) is a contract of its
own, :class:`llamaembed.batch.BatchEmbedder`, which the models that a server can run add.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from ._types import FloatArray
from .errors import MissingHeadError, RerankNotSupportedError
from .outputs import Output, Want

if TYPE_CHECKING:
    from .hub.spec import ModelSpec

__all__ = ["Capabilities", "Embedder", "ModelFacts"]

_Self = TypeVar("_Self", bound="Embedder")


@dataclass(frozen=True)
class Capabilities:
    """What a model can do, so consumers choose a path without probing for methods.

    ``dense``: one vector per text (``embed``, ``embed_texts``, an index).
    ``rerank``: scores query–document pairs (a cross-encoder's ``rerank``).
    ``sparse``: learned sparse (lexical) weights per text (bge-m3's sparse head).
    ``multi_vector``: one raw vector per token (pooling none).
    ``colbert``: ColBERT vectors for late interaction (bge-m3's colbert head).
    ``sparse`` and ``colbert`` come through ``encode_m3``.
    ``token_states``: the final state of every token (TEI's ``embed_all``).
    ``rerank_probabilities``: rerank scores are already probabilities (Qwen3-Reranker's
    P("yes")), not logits that a sigmoid turns into ones.
    """

    dense: bool = True
    rerank: bool = False
    sparse: bool = False
    multi_vector: bool = False
    colbert: bool = False
    token_states: bool = False
    rerank_probabilities: bool = False


@dataclass(frozen=True)
class ModelFacts:
    """What a model is, for listings (a server's ``/info``, Ollama's ``/api/tags``).

    ``architecture``: llama.cpp's name (``bert``, ``qwen3``) or ``static``; ``pooling``:
    how token states become one vector; ``weight_type``: the stored type (``F16``,
    ``Q8_0``); ``size_bytes``: the file's (or folder's) size on disk.
    """

    architecture: str
    pooling: str
    weight_type: str
    size_bytes: int


class Embedder(abc.ABC):
    """A model that turns texts into vectors; see the module docstring for the groups.

    Subclasses set ``n_embd`` and ``fingerprint`` when they open, and implement the
    abstract members. The defaults here build queries, documents and single texts on
    ``embed_texts``, and refuse reranking.
    """

    n_embd: int
    """Width of the vectors."""
    fingerprint: str
    """Short hash of the weights and pooling: equal fingerprints give equal vectors."""

    # ----------------------------------------------------------------- description
    @property
    @abc.abstractmethod
    def spec(self) -> ModelSpec:
        """Return the picklable description that reopens this model (``spec.open()``)."""

    @property
    @abc.abstractmethod
    def capabilities(self) -> Capabilities:
        """Return what this model can do."""

    @property
    @abc.abstractmethod
    def facts(self) -> ModelFacts:
        """Return what the model is: architecture, pooling, weight type, size on disk."""

    @property
    def is_reranker(self) -> bool:
        """Return True when the model scores query–document pairs (a cross-encoder)."""
        return self.capabilities.rerank

    @property
    @abc.abstractmethod
    def query_prefix(self) -> str:
        """Return the text ``embed_query`` puts before a query."""

    @property
    @abc.abstractmethod
    def document_prefix(self) -> str:
        """Return the text ``embed_documents`` puts before a document."""

    @property
    @abc.abstractmethod
    def max_tokens(self) -> int:
        """Return the most tokens of one text (or query–document pair) the model reads."""

    # ----------------------------------------------------------------- tokens
    @abc.abstractmethod
    def tokenize(self, text: str, *, add_special: bool = True) -> Any:
        """Return the token ids of a text as a 1-D integer array."""

    @abc.abstractmethod
    def detokenize(self, tokens: Any, *, special: bool = False) -> str:
        """Return the text of token ids (special tokens written only when ``special``).

        Raises ValueError for an id outside the vocabulary.
        """

    def count_tokens(self, text: str) -> int:
        """Return how many tokens a piece of text takes, special tokens left out."""
        return len(self.tokenize(text, add_special=False))

    # ----------------------------------------------------------------- vectors
    @abc.abstractmethod
    def embed_texts(
        self,
        texts: Sequence[str],
        *,
        batch_size: int | None = None,
        show_progress: bool = False,
        normalize: bool = True,
        truncate: bool = True,
        dimensions: int | None = None,
    ) -> Any:
        """Return a float32 (len(texts), n_embd) array (unit rows unless normalize=False).

        ``dimensions`` keeps the first N columns, re-normalised (Matryoshka models).
        """

    def embed(
        self,
        text: str,
        *,
        normalize: bool = True,
        truncate: bool = True,
        dimensions: int | None = None,
    ) -> FloatArray:
        """Return the float32 (n_embd,) vector of one text (``dimensions`` wide if given)."""
        if not isinstance(text, str):
            raise TypeError(f"text is {type(text).__name__}, not str")
        result: FloatArray = self.embed_texts(
            [text], normalize=normalize, truncate=truncate, dimensions=dimensions
        )[0]
        return result

    def embed_query(
        self, text: str, *, prefix: str | None = None, dimensions: int | None = None
    ) -> FloatArray:
        """Return the unit vector of a search query, with the model's query prefix."""
        if not isinstance(text, str):
            raise TypeError(f"text is {type(text).__name__}, not str")
        chosen = self.query_prefix if prefix is None else prefix
        return self.embed(chosen + text, dimensions=dimensions)

    def embed_documents(
        self,
        texts: Sequence[str],
        *,
        prefix: str | None = None,
        show_progress: bool = False,
        dimensions: int | None = None,
    ) -> FloatArray:
        """Return unit vectors of documents, with the model's document prefix."""
        from .engine.inputs import check_texts

        chosen = self.document_prefix if prefix is None else prefix
        checked = check_texts(texts)
        prefixed = [chosen + t for t in checked] if chosen else checked
        result: FloatArray = self.embed_texts(
            prefixed, show_progress=show_progress, dimensions=dimensions
        )
        return result

    def encode(
        self,
        texts: str | Sequence[str],
        *,
        prompt_name: str | None = None,
        prompt: str | None = None,
        dimensions: int | None = None,
        normalize: bool = True,
        batch_size: int | None = None,
        show_progress: bool = False,
    ) -> FloatArray:
        """Return vectors as sentence-transformers' ``encode`` does: 1-D for a string.

        ``prompt_name`` is "query" or "document" (the model's prefixes); ``prompt`` is a
        prefix of one's own. ``dimensions`` cuts Matryoshka vectors (re-normalised).
        """
        from .engine.inputs import check_texts

        if prompt is not None and prompt_name is not None:
            raise ValueError("give prompt or prompt_name, not both")
        if prompt_name is not None:
            prompt = self.prefix_of(prompt_name)
        single = isinstance(texts, str)
        checked = [texts] if isinstance(texts, str) else check_texts(texts)
        if prompt:
            checked = [prompt + t for t in checked]
        result: FloatArray = self.embed_texts(
            checked,
            batch_size=batch_size,
            show_progress=show_progress,
            normalize=normalize,
            dimensions=dimensions,
        )
        return result[0] if single else result

    def prefix_of(self, prompt_name: str) -> str:
        """Return the prefix of a prompt name: "query" or "document"; else ValueError."""
        if prompt_name == "query":
            return self.query_prefix
        if prompt_name == "document":
            return self.document_prefix
        raise ValueError(f"prompt_name must be 'query' or 'document', got {prompt_name!r}")

    def rerank(
        self,
        query: str,
        documents: Sequence[str],
        top_n: int | None = None,
        activation: str | Callable[[FloatArray], FloatArray] | None = None,
    ) -> Any:
        """Return relevance scores of documents for a query; embedders raise instead.

        Raises RerankNotSupportedError unless the model is a cross-encoder.
        """
        raise RerankNotSupportedError(
            f"{self!r} embeds texts and does not score pairs; rerank with a cross-encoder "
            "GGUF, or compare embeddings with cosine similarity"
        )

    def encode_outputs(
        self, texts: Sequence[str], want: Want, *, batch_size: int | None = None
    ) -> list[Output]:
        """Return each text's typed outputs (:class:`~llamaembed.outputs.Output`), as asked.

        An embedder gives its pooled row (``Want.POOLED``, unnormalised); sparse, ColBERT
        and token outputs need a model that has them (a ``BatchEmbedder`` computes every
        output through its batch interface), else MissingHeadError.
        """
        if want & ~Want.POOLED:
            return self._no_heads()
        if not want:
            return [Output() for _ in texts]
        rows = self.embed_texts(texts, batch_size=batch_size, normalize=False)
        return [Output(pooled=row) for row in rows]

    def encode_m3(
        self,
        texts: str | Sequence[str],
        *,
        return_dense: bool = True,
        return_sparse: bool = True,
        return_colbert_vecs: bool = False,
        batch_size: int | None = None,
    ) -> dict[str, Any]:
        """Return bge-m3's outputs in FlagEmbedding's dict: an adapter on ``encode_outputs``.

        ``dense_vecs`` (float32 n × d, unit rows), ``lexical_weights`` (per text, token id
        as a string → weight) and ``colbert_vecs`` (per text, float32 (n_tokens − 1) × d,
        unit rows); an output not asked for is None. A single string gives one text's
        outputs. Models without bge-m3's heads raise MissingHeadError for the sparse and
        ColBERT outputs. ``batch_size`` caps the texts encoded at once.
        """
        from .engine.inputs import check_batch_size, check_texts
        from .engine.pooling import l2_normalize

        single = isinstance(texts, str)
        batch = [texts] if isinstance(texts, str) else check_texts(texts)
        check_batch_size(batch_size)
        want = Want(0)
        for asked, flag in (
            (return_dense, Want.POOLED),
            (return_sparse, Want.SPARSE),
            (return_colbert_vecs, Want.COLBERT),
        ):
            if asked:
                want |= flag
        outputs = self.encode_outputs(batch, want, batch_size=batch_size)
        dense: Any = None
        if return_dense:
            rows = [o.pooled for o in outputs if o.pooled is not None]
            dense = l2_normalize(np.stack(rows)) if rows else np.empty((0, self.n_embd), np.float32)
        sparse: Any = None
        if return_sparse:
            sparse = [o.sparse.to_dict() if o.sparse is not None else {} for o in outputs]
        colbert: Any = None
        if return_colbert_vecs:
            colbert = [o.colbert for o in outputs]
        if single:
            dense, sparse, colbert = (None if x is None else x[0] for x in (dense, sparse, colbert))
        return {"dense_vecs": dense, "lexical_weights": sparse, "colbert_vecs": colbert}

    def _no_heads(self) -> Any:
        raise MissingHeadError(
            f"{self!r} has no lexical or ColBERT head (bge-m3's sparse_linear and "
            "colbert_linear) and gives no token states; use embed_texts"
        )

    # ----------------------------------------------------------------- async
    async def aembed(self, text: str, **options: Any) -> FloatArray:
        """Return ``embed(text)`` computed in a worker thread, off the event loop."""
        import asyncio  # imported here: it costs 40 ms at start-up

        return await asyncio.to_thread(self.embed, text, **options)

    async def aembed_texts(self, texts: Sequence[str], **options: Any) -> Any:
        """Return ``embed_texts(texts)`` computed in a worker thread, off the event loop."""
        import asyncio

        return await asyncio.to_thread(self.embed_texts, texts, **options)

    async def arerank(self, query: str, documents: Sequence[str], **options: Any) -> Any:
        """Return ``rerank(query, documents)`` computed in a worker thread."""
        import asyncio

        return await asyncio.to_thread(lambda: self.rerank(query, documents, **options))

    # ----------------------------------------------------------------- lifetime
    def close(self) -> None:  # noqa: B027  (a model without native resources has nothing to free)
        """Free what the model holds; a model without native resources does nothing."""

    def __enter__(self: _Self) -> _Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
