"""The document encoder: texts into what a store keeps, in one typed result.

A :class:`DocumentEncoder` holds the embedder, the store's width (Matryoshka
``dimensions``) and which outputs the store keeps besides the dense vector (learned sparse
weights for its keyword scheme, ColBERT vectors for rescoring). ``documents(texts)`` gives
an :class:`Encoded` batch from one pass of the model; ``wrap(vectors, texts)`` gives the
same for vectors computed elsewhere, computing only what the store keeps beyond them.
``query(text)`` gives a query's outputs from one pass, kept for the last few queries, so the
dense side, the keyword side and the rescoring (and every shard) share it.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from .._blas import single_threaded_blas
from .._types import FloatArray
from ..embedder import Embedder
from ..engine.m3 import colbert_score
from ..engine.pooling import l2_normalize, truncate_dimensions
from ..errors import MissingHeadError, SearchIndexError
from ..outputs import Output, SparseVector, Want

__all__ = ["DocumentEncoder", "Encoded"]

_RECENT: collections.OrderedDict[tuple[str, str, str, Want], Output] = collections.OrderedDict()
_RECENT_LOCK = threading.Lock()
_RECENT_SIZE = 64


@dataclass(frozen=True)
class Encoded:
    """A batch of documents as a store keeps them: unit dense rows and, if kept, the rest.

    ``vectors``: float32 (n, dim); ``sparse``: each document's lexical weights;
    ``colbert``: each document's ColBERT vectors. An output the store does not keep is None.
    """

    vectors: npt.NDArray[np.float32]
    sparse: list[SparseVector] | None = None
    colbert: list[FloatArray] | None = None

    def __len__(self) -> int:
        return int(self.vectors.shape[0])

    def take(self, rows: Sequence[int]) -> Encoded:
        """Return the batch's rows at ``rows``, in that order."""
        pick = list(rows)
        return Encoded(
            self.vectors[pick],
            None if self.sparse is None else [self.sparse[i] for i in pick],
            None if self.colbert is None else [self.colbert[i] for i in pick],
        )


class DocumentEncoder:
    """Texts into :class:`Encoded` batches and queries into outputs, for one store."""

    def __init__(
        self, embedder: Embedder | None, dim: int, dimensions: int | None, keep: Want | None = None
    ) -> None:
        keep = keep if keep is not None else Want(0)
        # (an index opened without its model keeps what it holds, and adds no texts)
        if keep & Want.COLBERT and embedder is not None and not embedder.capabilities.colbert:
            raise MissingHeadError("colbert=True needs a model with bge-m3's colbert head")
        self.embedder = embedder
        self.dim = dim
        self.dimensions = dimensions
        self.keep = keep & (Want.SPARSE | Want.COLBERT)

    def documents(self, texts: Sequence[str], *, show_progress: bool = False) -> Encoded:
        """Return documents (as the model reads them) encoded, everything from one pass."""
        embedder = self._model()
        if not len(texts):
            return Encoded(np.empty((0, self.dim), np.float32))
        if not self.keep:
            vectors = embedder.embed_documents(
                list(texts), show_progress=show_progress, dimensions=self.dimensions
            )
            return Encoded(np.asarray(vectors, dtype=np.float32))
        prefix = embedder.document_prefix
        # encode_outputs holds one chunk's token states at a time; the outputs are kept.
        outputs = embedder.encode_outputs([prefix + t for t in texts], Want.POOLED | self.keep)
        rows = [o.pooled for o in outputs if o.pooled is not None]
        dense = l2_normalize(np.stack(rows)) if rows else np.empty((0, embedder.n_embd), np.float32)
        return self._encoded(truncate_dimensions(dense, self.dimensions), outputs)

    def wrap(self, vectors: npt.ArrayLike, texts: Sequence[str] | None) -> Encoded:
        """Return vectors computed elsewhere as a batch, adding what the store keeps besides.

        The sparse weights and ColBERT vectors a store keeps come from the texts; without
        texts, a store that keeps them gets none for these rows.
        """
        array = np.asarray(vectors, dtype=np.float32)
        if not self.keep or texts is None or not len(texts):
            return Encoded(array)
        prefix = self._model().document_prefix
        outputs = self._model().encode_outputs([prefix + t for t in texts], self.keep)
        return self._encoded(array, outputs)

    def _encoded(self, vectors: npt.NDArray[np.float32], outputs: list[Output]) -> Encoded:
        sparse = colbert = None
        if self.keep & Want.SPARSE:
            sparse = [o.sparse if o.sparse is not None else _EMPTY for o in outputs]
        if self.keep & Want.COLBERT:
            colbert = [o.colbert for o in outputs if o.colbert is not None]
        return Encoded(vectors, sparse, colbert)

    def query(self, text: str) -> Output:
        """Return a query's outputs from one pass (unit dense vector at the store's width).

        Kept for the last few queries (by the model's fingerprint, query prefix, text and
        what is asked), so a search's sides and an index's shards encode a query once.
        """
        embedder = self._model()
        capabilities = embedder.capabilities
        want = Want.POOLED
        if capabilities.sparse:
            want |= Want.SPARSE
        if capabilities.colbert:
            want |= Want.COLBERT
        key = (embedder.fingerprint, embedder.query_prefix, text, want)
        with _RECENT_LOCK:
            found = _RECENT.get(key)
            if found is not None:
                _RECENT.move_to_end(key)
                return found
        if want == Want.POOLED:
            result = Output(pooled=embedder.embed_query(text))
        else:
            (output,) = embedder.encode_outputs([embedder.query_prefix + text], want)
            assert output.pooled is not None
            result = Output(l2_normalize(output.pooled), output.sparse, output.colbert)
        with _RECENT_LOCK:
            _RECENT[key] = result
            while len(_RECENT) > _RECENT_SIZE:
                _RECENT.popitem(last=False)
        return result

    def query_vector(self, query: str | npt.ArrayLike) -> tuple[FloatArray, str | None]:
        """Return a query's vector at the store's width and its text (None for a vector)."""
        if isinstance(query, str):
            pooled = self.query(query).pooled
            assert pooled is not None
            return truncate_dimensions(pooled, self.dimensions), query
        vector = np.asarray(query, dtype=np.float32).reshape(-1)
        if vector.shape != (self.dim,):
            raise ValueError(f"query vector must have {self.dim} values")
        if not np.all(np.isfinite(vector)):
            raise ValueError("query vector contains NaN or infinity")
        return vector, None

    def late_interaction(
        self, text: str, documents: Sequence[str], stored: Sequence[FloatArray | None]
    ) -> list[float]:
        """Return late-interaction scores of documents for a query (bge-m3's ColBERT).

        ``stored`` holds each document's kept ColBERT vectors, or None: those are computed
        from the document's text now.
        """
        embedder = self._model()
        if not embedder.capabilities.colbert:
            raise MissingHeadError(
                "rerank_with='colbert' needs a model with ColBERT vectors (bge-m3's colbert head)"
            )
        query = self.query(text).colbert
        assert query is not None
        vectors: list[Any] = list(stored)
        missing = [i for i, m in enumerate(stored) if m is None]
        if missing:
            prefix = embedder.document_prefix
            docs = [prefix + documents[i] for i in missing]
            for i, output in zip(missing, embedder.encode_outputs(docs, Want.COLBERT), strict=True):
                vectors[i] = output.colbert
        with single_threaded_blas():  # spinning BLAS threads would starve llama.cpp's (_blas)
            return [colbert_score(query, matrix) for matrix in vectors]

    @property
    def token_counter(self) -> Callable[[str], int] | None:
        """Return the model's token counter (None without a model)."""
        return self.embedder.count_tokens if self.embedder is not None else None

    def _model(self) -> Embedder:
        if self.embedder is None:
            raise SearchIndexError("this index has no model: pass vectors or open it with one")
        return self.embedder


_EMPTY = SparseVector.from_pairs([], [])
