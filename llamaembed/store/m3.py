"""An index's bge-m3 side: learned sparse keywords and ColBERT vectors, in its SQLite store.

For a model with bge-m3's heads (``Capabilities.sparse`` / ``colbert``), one
``encode_outputs`` pass per batch gives a document's dense vector (for hnswlib), its lexical
weights and its ColBERT vectors. They live in two tables of the index's own SQLite
database, so they are saved, loaded, replaced and deleted with the document:

- ``sparse(label, token, weight)``, indexed by token: the keyword side of hybrid search
  scores a document by ``Σ q_t · d_t`` over shared tokens (FlagEmbedding's lexical
  matching score), instead of BM25 over whitespace words;
- ``colbert(label, vectors)``: the ColBERT vectors as float16 bytes,
  ``(n_tokens − 1) × dim × 2`` bytes a passage, for late-interaction rescoring
  (``search(..., rerank_with="colbert")``).
"""

from __future__ import annotations

import collections
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from .._blas import single_threaded_blas
from ..embedder import Embedder
from ..engine.m3 import colbert_score
from ..engine.pooling import l2_normalize
from ..errors import MissingHeadError, SearchIndexError
from ..outputs import Output, SparseVector, Want

if TYPE_CHECKING:
    from .index import Index
    from .milvus import MilvusStore

__all__ = [
    "KEYWORDS",
    "SCHEMA",
    "choose_keywords",
    "colbert_scores",
    "document_outputs",
    "encode_documents",
    "forget",
    "needs_m3",
    "query_outputs",
    "query_weights",
    "remember",
    "sparse_search",
    "stored_colbert",
]

KEYWORDS = ("bm25", "sparse")
SCHEMA = """
CREATE TABLE IF NOT EXISTS sparse (label INTEGER NOT NULL, token INTEGER NOT NULL,
                                   weight REAL NOT NULL);
CREATE INDEX IF NOT EXISTS sparse_token ON sparse(token);
CREATE INDEX IF NOT EXISTS sparse_label ON sparse(label);
CREATE TABLE IF NOT EXISTS colbert (label INTEGER PRIMARY KEY, width INTEGER NOT NULL,
                                    vectors BLOB NOT NULL);
"""


def choose_keywords(embedder: Embedder | None, keywords: str | None) -> str:
    """Return the keyword side: the given one, else "sparse" for a model with lexical weights."""
    capable = embedder is not None and embedder.capabilities.sparse
    if keywords is None:
        return "sparse" if capable else "bm25"
    if keywords not in KEYWORDS:
        raise ValueError(f"keywords must be one of {', '.join(KEYWORDS)}, not {keywords!r}")
    if keywords == "sparse" and embedder is not None and not capable:
        raise MissingHeadError(
            f"keywords='sparse' needs a model with lexical weights (bge-m3's sparse head); "
            f"{embedder!r} has none: use keywords='bm25'"
        )
    return keywords


def needs_m3(index: Index | MilvusStore) -> bool:
    """Return True when an index keeps lexical weights or ColBERT vectors of its texts."""
    return index.keywords == "sparse" or index.colbert


def encode_documents(
    index: Index, texts: Sequence[str]
) -> tuple[npt.NDArray[np.float32], list[SparseVector] | None, list[Any] | None]:
    """Return documents' dense vectors, lexical weights and ColBERT vectors from one pass.

    Only what the index keeps is computed (the dense vectors always are).
    """
    embedder = index.embedder
    if embedder is None:
        raise SearchIndexError("this index has no model to weigh its texts")
    return document_outputs(embedder, texts, index.keywords == "sparse", index.colbert)


def document_outputs(
    embedder: Embedder, texts: Sequence[str], sparse: bool, colbert: bool
) -> tuple[npt.NDArray[np.float32], list[SparseVector] | None, list[Any] | None]:
    """Return documents' unit dense vectors and, if asked, sparse and ColBERT outputs."""
    want = Want.POOLED
    if sparse:
        want |= Want.SPARSE
    if colbert:
        want |= Want.COLBERT
    prefix = embedder.document_prefix
    # encode_outputs holds one chunk's token states at a time; the outputs are kept whole.
    outputs = embedder.encode_outputs([prefix + t for t in texts], want)
    rows = [o.pooled for o in outputs if o.pooled is not None]
    dense = l2_normalize(np.stack(rows)) if rows else np.empty((0, embedder.n_embd), np.float32)
    lexical = [o.sparse for o in outputs if o.sparse is not None] if sparse else None
    multi = [o.colbert for o in outputs] if colbert else None
    return dense, lexical, multi


def remember(
    db: sqlite3.Connection,
    labels: Sequence[int],
    lexical: Sequence[SparseVector] | None,
    colbert: Sequence[npt.NDArray[np.float32]] | None,
) -> None:
    """Store documents' lexical weights and ColBERT vectors (float16) under their labels."""
    if lexical is not None:
        db.executemany(
            "INSERT INTO sparse VALUES (?, ?, ?)",
            [
                (int(label), token, weight)
                for label, weights in zip(labels, lexical, strict=True)
                for token, weight in zip(
                    weights.indices.tolist(), weights.values.tolist(), strict=True
                )
            ],
        )
    if colbert is not None:
        db.executemany(
            "INSERT OR REPLACE INTO colbert VALUES (?, ?, ?)",
            [
                (int(label), int(m.shape[1]), np.ascontiguousarray(m, dtype="<f2").tobytes())
                for label, m in zip(labels, colbert, strict=True)
            ],
        )


def forget(db: sqlite3.Connection, labels: Iterable[int]) -> None:
    """Remove documents' lexical weights and ColBERT vectors."""
    rows = [(int(label),) for label in labels]
    db.executemany("DELETE FROM sparse WHERE label = ?", rows)
    db.executemany("DELETE FROM colbert WHERE label = ?", rows)


_RECENT: collections.OrderedDict[tuple[str, str, str], Output] = collections.OrderedDict()
_RECENT_LOCK = threading.Lock()
_RECENT_SIZE = 64


def query_outputs(embedder: Embedder, text: str) -> Output:
    """Return a query's outputs from one pass: its unit dense vector, sparse and ColBERT ones.

    A search needs all three (the dense side, the keyword side, the rescoring), in turn
    and per shard; the last few queries are kept, keyed by the model's fingerprint, its
    query prefix and the text, so each query is encoded once.
    """
    key = (embedder.fingerprint, embedder.query_prefix, text)
    with _RECENT_LOCK:
        found = _RECENT.get(key)
        if found is not None:
            _RECENT.move_to_end(key)
            return found
    capabilities = embedder.capabilities
    want = Want.POOLED
    if capabilities.sparse:
        want |= Want.SPARSE
    if capabilities.colbert:
        want |= Want.COLBERT
    (output,) = embedder.encode_outputs([embedder.query_prefix + text], want)
    assert output.pooled is not None
    result = Output(
        pooled=l2_normalize(output.pooled), sparse=output.sparse, colbert=output.colbert
    )
    with _RECENT_LOCK:
        _RECENT[key] = result
        while len(_RECENT) > _RECENT_SIZE:
            _RECENT.popitem(last=False)
    return result


def query_weights(embedder: Embedder | None, text: str) -> SparseVector:
    """Return a query's lexical weights (with the model's query prefix)."""
    if embedder is None:
        raise SearchIndexError("sparse keywords need the index's model to weigh the query")
    weights = query_outputs(embedder, text).sparse
    if weights is None:
        raise MissingHeadError(f"{embedder!r} has no lexical weights (bge-m3's sparse head)")
    return weights


def sparse_search(
    db: sqlite3.Connection, weights: SparseVector, k: int, allowed: set[int] | None
) -> list[tuple[int, float]]:
    """Return the ``k`` best (label, lexical matching score) pairs, best first."""
    if not len(weights) or k <= 0:
        return []
    tokens = weights.indices.tolist()
    cases = " ".join("WHEN ? THEN ?" for _ in tokens)
    args: list[Any] = [
        v for pair in zip(tokens, weights.values.tolist(), strict=True) for v in pair
    ]
    marks = ",".join("?" * len(tokens))
    rows = db.execute(
        f"SELECT label, SUM(weight * CASE token {cases} END) AS s FROM sparse "
        f"WHERE token IN ({marks}) GROUP BY label ORDER BY s DESC, label LIMIT ?",
        [*args, *tokens, k * 4 if allowed is not None else k],
    ).fetchall()
    found = [(int(r[0]), float(r[1])) for r in rows if r[1] > 0]
    return [pair for pair in found if allowed is None or pair[0] in allowed][:k]


def stored_colbert(
    db: sqlite3.Connection, ids: Sequence[str]
) -> dict[str, npt.NDArray[np.float32]]:
    """Return the stored ColBERT vectors of documents, by id (those without are left out)."""
    if not ids:
        return {}
    marks = ",".join("?" * len(ids))
    rows = db.execute(
        f"SELECT d.id, c.width, c.vectors FROM colbert c JOIN docs d ON d.label = c.label "
        f"WHERE d.id IN ({marks})",
        list(ids),
    ).fetchall()
    return {
        r[0]: np.frombuffer(r[2], dtype="<f2").reshape(-1, r[1]).astype(np.float32) for r in rows
    }


def colbert_scores(
    embedder: Embedder | None,
    query: str,
    texts: Sequence[str],
    stored: Sequence[npt.NDArray[np.float32] | None],
) -> list[float]:
    """Return late-interaction scores of documents for a query, computing what is not stored."""
    if embedder is None or not embedder.capabilities.colbert:
        raise MissingHeadError(
            "rerank_with='colbert' needs a model with ColBERT vectors (bge-m3's colbert head)"
        )
    q = query_outputs(embedder, query).colbert
    assert q is not None
    missing = [i for i, m in enumerate(stored) if m is None]
    vectors: list[Any] = list(stored)
    if missing:
        docs = [embedder.document_prefix + texts[i] for i in missing]
        for i, output in zip(missing, embedder.encode_outputs(docs, Want.COLBERT), strict=True):
            vectors[i] = output.colbert
    with single_threaded_blas():  # spinning BLAS threads would starve llama.cpp's (_blas)
        return [colbert_score(q, matrix) for matrix in vectors]
