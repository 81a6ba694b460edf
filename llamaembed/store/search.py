"""What a search returns and the ranking every store shares: pools, fusion, rescoring.

``Index``, ``ShardedIndex`` and ``MilvusStore`` search through these functions, so one
index, its shards and a Milvus collection rank alike. Pure functions besides the
reranker's own calls.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from .._blas import single_threaded_blas
from ..code.ranking import CodeRanking, code_priors, query_kind
from ..embedder import Embedder
from ..engine.pooling import check_dimensions
from ..errors import IndexModelMismatchError, MissingHeadError
from .keywords import KeywordSide

__all__ = [
    "DEFAULT_RANKING",
    "Hit",
    "checked_rows",
    "code_ranked",
    "exact_search",
    "fuse_candidates",
    "index_width",
    "is_any_of",
    "rerank_hits",
    "search_pool",
    "similarities",
    "sql_where",
    "stored_metadata",
    "weighted_sides",
]

DEFAULT_RANKING = CodeRanking()
"""The code ranking rules a search applies unless told otherwise (``code.ranking``)."""


@dataclass(frozen=True)
class Hit:
    """One search result.

    ``score`` orders the results: the cosine of a vector search, the fused score of a
    hybrid one, the reranker's score after a rerank. ``similarity`` is the dense cosine
    between the query and the document (inner product in an "ip" index), a figure a person
    can read whatever ordered the hits; None where it is unknown (``get``).
    """

    id: str
    score: float
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)
    similarity: float | None = None


def is_any_of(value: Any) -> bool:
    """Return True for a filter value that matches any of its items (a list, tuple or set)."""
    return isinstance(value, list | tuple | set | frozenset)


def sql_where(equals: Mapping[str, Any]) -> tuple[str, list[Any]]:
    """Return an SQL WHERE clause (and its arguments): metadata equals every given value.

    A list, tuple or set value matches any of its items (none: nothing matches).
    """
    clauses: list[str] = []
    args: list[Any] = []
    for key, value in equals.items():
        if not re.fullmatch(r"[A-Za-z0-9_]+", key):
            raise ValueError(f"metadata filter keys are letters, digits and _: {key!r}")
        field = f"json_extract(metadata, '$.{key}')"
        if is_any_of(value):
            # one JSON argument, however long the list (SQLite caps bound variables)
            items = [int(v) if isinstance(v, bool) else v for v in value]
            clauses.append(f"{field} IN (SELECT value FROM json_each(?))")
            args.append(json.dumps(items))
            continue
        clauses.append(f"{field} = ?")
        args.append(value if not isinstance(value, bool) else int(value))
    return ("WHERE " + " AND ".join(clauses), args) if clauses else ("", [])


def stored_metadata(stored: str) -> dict[str, Any]:
    """Decode a metadata column; most documents have none, so skip json for those."""
    return {} if stored == "{}" else dict(json.loads(stored))


def rerank_hits(
    hits: list[Hit],
    text: str,
    reranker: Any,
    late_interaction: Callable[[str, list[Hit]], Sequence[float]] | None = None,
) -> list[Hit]:
    """Return hits rescored, best first; the new scores become the scores.

    ``reranker`` is a cross-encoder, or "colbert": late interaction with the store model's
    ColBERT vectors, scored by ``late_interaction(text, hits)`` (the store's encoder, from
    the vectors it keeps or computed from the hit texts).
    """
    if not hits:
        return hits
    if isinstance(reranker, str):
        if reranker != "colbert":
            raise ValueError(f"rerank_with takes a cross-encoder or 'colbert', not {reranker!r}")
        if late_interaction is None:
            raise MissingHeadError("rerank_with='colbert' needs the store's model")
        scored: Sequence[float] = late_interaction(text, hits)
    else:
        scored = reranker.rerank(text, [h.text for h in hits])
    order = np.argsort(-np.asarray(scored), kind="stable")
    return [replace(hits[i], score=float(scored[i])) for i in order]


def index_width(
    embedder: Embedder | None, dim: int | None, dimensions: int | None
) -> tuple[int, int | None]:
    """Return an index's vector width and its Matryoshka ``dimensions`` (None: the model's).

    Raises ValueError for widths that do not fit, IndexModelMismatchError when the
    model's vectors (cut to ``dimensions``) are not ``dim`` wide.
    """
    if dimensions is not None:
        width = embedder.n_embd if embedder is not None else (dim or dimensions)
        dimensions = check_dimensions(dimensions, int(width))
        if dim is not None and dim != dimensions:
            raise ValueError(f"dim {dim} and dimensions {dimensions} disagree")
        dim = dimensions
    if dim is None:
        if embedder is None:
            raise ValueError("give an embedder or the vector dimension")
        dim = embedder.n_embd
    if embedder is not None and (dimensions or embedder.n_embd) != dim:
        raise IndexModelMismatchError(
            f"the model makes {embedder.n_embd}-d vectors but the index holds {dim}-d"
        )
    return int(dim), dimensions


def checked_rows(
    vectors: npt.ArrayLike,
    texts: Sequence[str] | None,
    metadatas: Sequence[Mapping[str, Any]] | None,
    ids: Sequence[str] | None,
    dim: int,
    new_ids: Callable[[int], list[str]],
) -> tuple[npt.NDArray[np.float32], list[str], list[dict[str, Any]], list[str]]:
    """Return documents to add as (vectors, texts, metadatas, ids), or raise ValueError.

    Vectors must be a finite (n, dim) array; texts (default ""), metadata (default {}) and
    ids (default ``new_ids(n)``) must number n each, the ids unique.
    """
    array = np.asarray(vectors, dtype=np.float32)
    if array.ndim != 2 or array.shape[1] != dim:
        raise ValueError(f"expected vectors of shape (n, {dim}), got {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError("vectors contain NaN or infinity")
    n = array.shape[0]
    rows = list(texts) if texts is not None else [""] * n
    metas = [dict(m) for m in metadatas] if metadatas is not None else [{}] * n
    keys = [str(i) for i in ids] if ids is not None else new_ids(n)
    if not len(rows) == len(metas) == len(keys) == n:
        raise ValueError("vectors, texts, metadatas and ids must have the same length")
    if len(set(keys)) != n:
        raise ValueError("ids must be unique within one call")
    return array, rows, metas, keys


def similarities(
    vectors: Any, labels: Sequence[int], query: npt.NDArray[np.float32] | None, cosine: bool
) -> dict[int, float]:
    """Return label -> inner product of its stored vector (hnswlib ``vectors``) and ``query``.

    Stored vectors of a cosine index are unit length, so with ``cosine`` the query is
    normalised and the products are cosines. Empty without a query.
    """
    if query is None or not labels:
        return {}
    from ..engine.pooling import l2_normalize

    unit = l2_normalize(query) if cosine else query
    stored = np.asarray(vectors.get_items(list(labels)), dtype=np.float32)
    with single_threaded_blas():
        products = stored @ unit
    return {int(lab): float(p) for lab, p in zip(labels, products, strict=True)}


def search_pool(k: int, candidates: int | None, widen: bool) -> int:
    """Return how many candidates a search for ``k`` hits gathers (0: none are wanted).

    ``widen`` (hybrid search or a rerank) gathers ``max(4k, 40)`` unless ``candidates``
    says how many.
    """
    if candidates is not None and candidates < 1:
        raise ValueError(f"candidates must be at least 1, got {candidates}")
    if k <= 0:
        return 0
    return candidates or (max(k * 4, 40) if widen else k)


def fuse_candidates(
    dense: Sequence[tuple[Any, float]],
    keyword: Sequence[tuple[KeywordSide, Sequence[tuple[Any, float]]]] | None,
    limit: int,
) -> list[tuple[Any, float]]:
    """Return the first ``limit`` (key, score) pairs: dense alone, or with keyword bonuses.

    ``dense`` runs best first by cosine; ``keyword`` pairs each keyword search a query
    made (a ``KeywordSide``) with its matches. A passage scores its cosine plus each
    side's bonus for its match (``KeywordSide.bonus``, a fraction of a cosine); one found
    only by keywords counts the lowest cosine among the dense candidates, which bounds
    its own. Without keyword matches the order is the dense one. A key is any hashable
    (a label, or a shard and a label); ties keep the dense order.
    """
    if not keyword:
        return list(dense[:limit])
    floor = dense[-1][1] if dense else 0.0
    scores = dict(dense)
    bonus: dict[Any, float] = {}
    for side, matches in keyword:
        for key, score in matches:
            bonus[key] = bonus.get(key, 0.0) + side.bonus(score)
    fused = {key: scores.get(key, floor) + bonus.get(key, 0.0) for key in (*scores, *bonus)}
    return sorted(fused.items(), key=lambda pair: -pair[1])[:limit]


def exact_search(
    labels: npt.NDArray[np.int64],
    vectors: npt.NDArray[np.float32],
    query: npt.NDArray[np.float32],
    k: int,
    allowed: set[int] | None,
) -> list[tuple[int, float]]:
    """Return the ``k`` best (label, score) pairs by inner product, best first.

    ``allowed`` keeps only those labels (a metadata filter); ties keep label order.
    """
    with single_threaded_blas():  # spinning BLAS threads would starve llama.cpp's (_blas)
        scores = vectors @ query
    if allowed is not None:
        scores = np.where(np.isin(labels, list(allowed)), scores, -np.inf)
    top = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
    top = top[np.argsort(-scores[top], kind="stable")]
    return [(int(labels[i]), float(scores[i])) for i in top if np.isfinite(scores[i])]


def weighted_sides(
    sides: Sequence[KeywordSide], text: str, ranking: CodeRanking | None
) -> list[KeywordSide]:
    """Return a query's keyword sides, the word sides weighed up for a query naming code.

    A query that names an identifier or a path (``code.ranking.query_kind``) gives its
    full-text words ``ranking.identifier_keywords`` instead of the sentence weight.
    """
    if ranking is None or not ranking.identifier_keywords or query_kind(text) != "identifier":
        return list(sides)
    return [
        replace(side, weight=max(side.weight, ranking.identifier_keywords))
        if isinstance(side.terms, set | frozenset)
        else side
        for side in sides
    ]


def code_ranked(hits: list[Hit], text: str | None, ranking: CodeRanking | None) -> list[Hit]:
    """Return hits reordered by the code ranking rules (``code.ranking.code_priors``).

    The adjusted scores become the scores; prose hits keep theirs. Unchanged without a
    query text or rules.
    """
    if text is None or ranking is None or not hits:
        return hits
    order = code_priors(text, [(h.score, h.metadata) for h in hits], ranking)
    return [replace(hits[i], score=score) for i, score in order]
