"""bge-m3's three outputs from one llama.cpp pass: dense, lexical weights, ColBERT vectors.

The encoder runs once per micro-batch with token-level output. From each text's final
token states ``h`` (the same numbers FlagEmbedding's ``BGEM3FlagModel`` reads):

- dense: ``h[0]`` (the CLS token; a mean- or last-pooled model's own pooling), unit length;
- lexical weights: ``relu(h_t · w_sparse + b)`` per token, the largest per token id,
  leaving out CLS, EOS, PAD and UNK and weights of zero;
- ColBERT vectors: ``normalize(W_colbert · h_t + b)`` for every token after the first.

The heads come from the heads file beside the GGUF (``llamaembed.heads``).
``lexical_matching_score`` and ``colbert_score`` score them as FlagEmbedding does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .._types import FloatArray
from ..errors import MissingHeadError
from ..heads import M3Heads, heads_path
from ..outputs import Output, SparseVector, Want
from ..params import Pooling
from .pooling import l2_normalize

__all__ = [
    "colbert_score",
    "colbert_vectors",
    "lexical_matching_score",
    "lexical_weights",
    "require_heads",
    "token_outputs",
    "unused_token_ids",
]

Lexical = SparseVector | Mapping[str, float]
"""Lexical weights: a sparse vector, or FlagEmbedding's ``{"token id": weight}`` dict."""

_SPECIAL_KEYS = ("bos", "cls", "eos", "padding", "unknown")


def unused_token_ids(metadata: Mapping[str, str]) -> frozenset[int]:
    """Return the ids bge-m3 leaves out of lexical weights: CLS/BOS, EOS, PAD and UNK."""
    found = set()
    for key in _SPECIAL_KEYS:
        value = metadata.get(f"tokenizer.ggml.{key}_token_id")
        if value is not None and value.lstrip("-").isdigit() and int(value) >= 0:
            found.add(int(value))
    return frozenset(found)


def require_heads(
    heads: M3Heads | None, model_path: Path, *, sparse: bool, colbert: bool
) -> M3Heads:
    """Return a model's heads, or raise MissingHeadError naming the one that is missing."""
    missing = []
    if sparse and (heads is None or heads.sparse_weight is None):
        missing.append("sparse_linear (lexical weights)")
    if colbert and (heads is None or heads.colbert_weight is None):
        missing.append("colbert_linear (ColBERT vectors)")
    if missing:
        raise MissingHeadError(
            f"{model_path.name} has no {' and no '.join(missing)} head: bge-m3's heads "
            f"live in {heads_path(model_path).name} beside the GGUF. Convert the "
            "bge-m3 folder with `llamaembed convert` (it reads sparse_linear.pt and "
            "colbert_linear.pt), or pull the catalogue's bge-m3, which fetches them"
        )
    assert heads is not None
    return heads


def lexical_weights(
    ids: npt.NDArray[Any], states: FloatArray, heads: M3Heads, unused: frozenset[int]
) -> SparseVector:
    """Return one text's lexical weights: each token id's largest positive weight."""
    assert heads.sparse_weight is not None
    weights = np.maximum(states @ heads.sparse_weight + heads.sparse_bias, 0.0).reshape(-1)
    tokens = np.asarray(ids, dtype=np.int64).reshape(-1)
    keep = weights > 0
    if unused:
        keep &= ~np.isin(tokens, np.fromiter(unused, dtype=np.int64, count=len(unused)))
    return SparseVector.from_pairs(tokens[keep], weights[keep])


def colbert_vectors(states: FloatArray, heads: M3Heads) -> FloatArray:
    """Return one text's ColBERT vectors: every token after the first, projected, unit rows."""
    assert heads.colbert_weight is not None and heads.colbert_bias is not None
    projected = states[1:] @ heads.colbert_weight.T + heads.colbert_bias
    return l2_normalize(projected.astype(np.float32, copy=False))


def token_outputs(
    ids: npt.NDArray[Any],
    states: FloatArray,
    want: Want,
    heads: M3Heads | None,
    unused: frozenset[int],
    pooling: Pooling,
) -> Output:
    """Return what ``want`` asks of one text's final token states ``states``.

    The pooled row is the model's own pooling of the states (CLS for bge-m3); the heads
    must hold what is asked (``require_heads``).
    """
    sparse = colbert = None
    if want & Want.SPARSE:
        assert heads is not None
        sparse = lexical_weights(ids, states, heads, unused)
    if want & Want.COLBERT:
        assert heads is not None
        colbert = colbert_vectors(states, heads)
    return Output(
        pooled=_pool(states, pooling) if want & Want.POOLED else None,
        sparse=sparse,
        colbert=colbert,
        tokens=states if want & Want.TOKENS else None,
    )


def _pool(states: FloatArray, pooling: Pooling) -> FloatArray:
    # bge-m3 is CLS-pooled; heads on a mean- or last-pooled model keep its own dense vector.
    if pooling is Pooling.MEAN:
        return states.mean(axis=0)
    if pooling is Pooling.LAST:
        return states[-1]
    return states[0]


def lexical_matching_score(
    a: Lexical | Sequence[Lexical],
    b: Lexical | Sequence[Lexical],
) -> Any:
    """Return the sum over shared tokens of the two weights (FlagEmbedding's score).

    Two sparse vectors (or FlagEmbedding's dicts) give a float; two lists give an
    (len(a), len(b)) float array.
    """
    if isinstance(a, SparseVector) and isinstance(b, SparseVector):
        return a.dot(b)
    if isinstance(a, SparseVector | Mapping) and isinstance(b, SparseVector | Mapping):
        a = a.to_dict() if isinstance(a, SparseVector) else a
        b = b.to_dict() if isinstance(b, SparseVector) else b
        if len(b) < len(a):
            a, b = b, a
        return float(sum(w * b[t] for t, w in a.items() if t in b))
    if isinstance(a, Sequence) and isinstance(b, Sequence):
        rows = [[lexical_matching_score(x, y) for y in b] for x in a]
        return np.asarray(rows, dtype=np.float64).reshape(len(a), len(b))
    raise TypeError("lexical weights must be two sparse vectors (or dicts), or two lists of them")


def colbert_score(q: npt.ArrayLike, p: npt.ArrayLike) -> float:
    """Return late interaction: each query vector's best match in the passage, averaged."""
    query = np.asarray(q, dtype=np.float32)
    passage = np.asarray(p, dtype=np.float32)
    if query.ndim != 2 or passage.ndim != 2 or query.shape[1] != passage.shape[1]:
        raise ValueError(
            f"ColBERT vectors must be two matrices of one width, not {query.shape} and "
            f"{passage.shape}"
        )
    if query.shape[0] == 0 or passage.shape[0] == 0:
        return 0.0
    return float((query @ passage.T).max(axis=1).sum() / query.shape[0])
