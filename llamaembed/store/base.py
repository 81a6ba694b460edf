"""What every store offers its writers: the ``VectorStore`` protocol.

``Index`` (a folder on disk) and ``MilvusStore`` (a Milvus collection) both satisfy it, so
the ingest path and the Parquet loader take either without unions or ``isinstance``. Both
get ``add`` and ``add_vectors`` from ``EncodedWrites``: every write is ``add_encoded``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Protocol

import numpy.typing as npt

from ..embedder import Embedder
from .encoder import DocumentEncoder, Encoded

__all__ = ["EncodedWrites", "VectorStore"]


class VectorStore(Protocol):
    """A store of documents and their vectors, written through its document encoder."""

    @property
    def embedder(self) -> Embedder | None:
        """Return the store's model (None: an index opened without one)."""

    model: dict[str, Any]
    dim: int
    dimensions: int | None
    encoder: DocumentEncoder

    def __len__(self) -> int:
        """Return how many documents the store holds."""

    def add_encoded(
        self,
        encoded: Encoded,
        texts: Sequence[str] | None = None,
        metadatas: Sequence[Mapping[str, Any]] | None = None,
        ids: Sequence[str] | None = None,
    ) -> list[str]:
        """Add an encoded batch with its texts, metadata and ids; return the ids."""

    def add_vectors(
        self,
        vectors: npt.ArrayLike,
        texts: Sequence[str] | None = None,
        metadatas: Sequence[Mapping[str, Any]] | None = None,
        ids: Sequence[str] | None = None,
    ) -> list[str]:
        """Add precomputed vectors with texts, metadata and ids; return the ids."""

    def delete(self, ids: Sequence[str]) -> int:
        """Remove documents by id; return how many existed."""

    def ids_where(self, **equals: Any) -> list[str]:
        """Return ids whose metadata has all the given key = value pairs."""

    def iter_metadata(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """Yield (id, metadata) of every document."""


class EncodedWrites:
    """``add`` and ``add_vectors`` of a store, both through its encoder and ``add_encoded``."""

    encoder: DocumentEncoder
    add_encoded: Callable[..., list[str]]

    def add(
        self,
        texts: Sequence[str],
        metadatas: Sequence[Mapping[str, Any]] | None = None,
        ids: Sequence[str] | None = None,
    ) -> list[str]:
        """Embed and add texts (an existing id is replaced); return their ids."""
        texts = list(texts)
        return self.add_encoded(self.encoder.documents(texts), texts, metadatas, ids)

    def add_vectors(
        self,
        vectors: npt.ArrayLike,
        texts: Sequence[str] | None = None,
        metadatas: Sequence[Mapping[str, Any]] | None = None,
        ids: Sequence[str] | None = None,
    ) -> list[str]:
        """Add precomputed vectors with optional texts, metadata and ids; return the ids.

        A store that keeps sparse keywords or ColBERT vectors computes them from the texts.
        """
        return self.add_encoded(self.encoder.wrap(vectors, texts), texts, metadatas, ids)
