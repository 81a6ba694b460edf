"""An index's vectors: an hnswlib graph, searched exactly while it is small.

:class:`VectorGraph` owns the hnswlib index (its settings, growth, deletions, file) and
the matrix of live vectors an exact search multiplies, rebuilt after a change. Up to
``exact_threshold`` vectors a search is exact (one matrix product, faster than a graph walk
at that size); above it, hnswlib's approximate search.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ..engine.pooling import l2_normalize
from ..params import check_int
from .search import exact_search, similarities

__all__ = ["VectorGraph"]


class VectorGraph:
    """Vectors by label in an hnswlib graph ("cosine" keeps them unit length)."""

    def __init__(
        self,
        dim: int,
        space: str = "cosine",
        *,
        M: int = 32,
        ef_construction: int = 200,
        ef: int = 128,
        capacity: int = 1024,
        exact_threshold: int = 20_000,
        path: Path | None = None,
    ) -> None:
        """Make an empty graph, or with ``path`` read a saved one (``capacity``: its own)."""
        if space not in ("cosine", "ip"):
            raise ValueError("space must be 'cosine' or 'ip'")
        # hnswlib takes these unchecked: M below 2 crashes the process.
        check_int("dim", dim, 1)
        check_int("M", M, 2, 10_000)
        check_int("ef_construction", ef_construction, 1)
        check_int("ef", ef, 1)
        check_int("capacity", capacity, 0)
        check_int("exact_threshold", exact_threshold, 0)
        self.dim = dim
        self.space = space
        self.M = M
        self.ef_construction = ef_construction
        self.exact_threshold = exact_threshold
        self._ef = ef
        self._hnsw = self._new(max(capacity, 16)) if path is None else self._read(path, capacity)
        self._exact: tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]] | None = None

    def _new(self, capacity: int) -> Any:
        import hnswlib

        index = hnswlib.Index(space=self.space, dim=self.dim)
        index.init_index(max_elements=capacity, M=self.M, ef_construction=self.ef_construction)
        index.set_ef(self._ef)
        return index

    def _read(self, path: Path, capacity: int) -> Any:
        import hnswlib

        index = hnswlib.Index(space=self.space, dim=self.dim)
        index.load_index(str(path), max_elements=capacity)
        index.set_ef(self._ef)
        return index

    @property
    def ef(self) -> int:
        """Return the search breadth (higher: better recall, slower queries)."""
        return self._ef

    @ef.setter
    def ef(self, value: int) -> None:
        self._ef = check_int("ef", value, 1)
        self._hnsw.set_ef(self._ef)

    @property
    def capacity(self) -> int:
        """Return how many vectors the graph holds before it grows."""
        return int(self._hnsw.get_max_elements())

    def set_num_threads(self, threads: int) -> None:
        """Set the threads hnswlib uses for a batch of queries."""
        self._hnsw.set_num_threads(threads)

    # ----------------------------------------------------------------- writing
    def add(self, vectors: npt.NDArray[np.float32], labels: npt.NDArray[np.int64]) -> None:
        """Add vectors under labels (normalised first in cosine space)."""
        needed = self._hnsw.element_count + len(labels)
        if needed > self.capacity:
            self._hnsw.resize_index(max(needed, self.capacity * 2))
        if self.space == "cosine":
            vectors = l2_normalize(vectors)
        self._hnsw.add_items(vectors, labels)
        self._exact = None

    def delete(self, labels: Sequence[int]) -> None:
        """Mark labels deleted (they are never returned again)."""
        for label in labels:
            self._hnsw.mark_deleted(int(label))
        if labels:
            self._exact = None

    # ----------------------------------------------------------------- reading
    def search(
        self,
        vector: npt.NDArray[np.float32],
        k: int,
        allowed: set[int] | None,
        live: Callable[[], npt.NDArray[np.int64]],
        size: int,
    ) -> list[tuple[int, float]]:
        """Return the ``k`` nearest (label, score) pairs, best first.

        ``allowed`` keeps only those labels; ``live()`` gives every live label (for the
        exact matrix) and ``size`` how many there are.
        """
        k = min(k, size if allowed is None else len(allowed))
        if k <= 0:
            return []
        if size <= self.exact_threshold:
            query = l2_normalize(vector) if self.space == "cosine" else vector
            return exact_search(*self._exact_matrix(live), query, k, allowed)
        predicate = None if allowed is None else (lambda label: label in allowed)
        while True:  # hnswlib normalises queries itself in cosine space
            try:
                labels, distances = self._hnsw.knn_query(vector, k=k, filter=predicate)
                break
            except RuntimeError:  # fewer reachable candidates than k
                if k == 1:
                    return []
                k = max(1, k // 2)
        return [(int(lab), 1.0 - float(d)) for lab, d in zip(labels[0], distances[0], strict=True)]

    def _exact_matrix(
        self, live: Callable[[], npt.NDArray[np.int64]]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        if self._exact is None:
            labels = live()
            self._exact = (labels, self.vectors(labels))
        return self._exact

    def vectors(self, labels: Sequence[int] | npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        """Return the stored vectors of ``labels``, one row each, in that order."""
        if not len(labels):
            return np.empty((0, self.dim), np.float32)
        return np.asarray(self._hnsw.get_items(list(labels)), dtype=np.float32)

    def similarities(
        self, labels: Sequence[int], query: npt.NDArray[np.float32] | None
    ) -> dict[int, float]:
        """Return label -> the query's cosine (inner product in "ip" space) with its vector."""
        return similarities(self._hnsw, labels, query, self.space == "cosine")

    def knn_query(self, vectors: npt.NDArray[np.float32], k: int) -> Any:
        """Return hnswlib's own (labels, distances) for a batch of queries (benchmarks)."""
        return self._hnsw.knn_query(vectors, k=k)

    # ----------------------------------------------------------------- files
    def settings(self) -> dict[str, Any]:
        """Return the settings that reopen the graph from its file (``path=``)."""
        return {
            "M": self.M,
            "ef_construction": self.ef_construction,
            "ef": self._ef,
            "capacity": self.capacity,
            "exact_threshold": self.exact_threshold,
        }

    def save(self, path: Path) -> None:
        """Write the graph to a file."""
        self._hnsw.save_index(str(path))
