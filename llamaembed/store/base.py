"""What every store offers its writers: the ``VectorStore`` protocol.

``Index`` (a folder on disk) and ``MilvusStore`` (a Milvus collection) both satisfy it, so
the ingest path and the Parquet loader take either without unions or ``isinstance``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Protocol

import numpy.typing as npt

from ..embedder import Embedder
from .encoder import DocumentEncoder, Encoded

__all__ = ["VectorStore"]


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
