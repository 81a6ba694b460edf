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
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from .._blas import single_threaded_blas
from .._types import FloatArray, TokenArray
from ..errors import MissingHeadError
from ..heads import M3Heads, heads_path
from ..params import Pooling
from .inputs import check_batch_size, check_texts
from .pooling import l2_normalize

if TYPE_CHECKING:
    from .llama import Llama

__all__ = [
    "colbert_score",
    "colbert_vectors",
    "encode_m3",
    "forward_m3",
    "lexical_matching_score",
    "lexical_weights",
    "unused_token_ids",
]

_SPECIAL_KEYS = ("bos", "cls", "eos", "padding", "unknown")
_CHUNK = 512  # texts whose token states are held at once


def unused_token_ids(metadata: Mapping[str, str]) -> frozenset[int]:
    """Return the ids bge-m3 leaves out of lexical weights: CLS/BOS, EOS, PAD and UNK."""
    found = set()
    for key in _SPECIAL_KEYS:
        value = metadata.get(f"tokenizer.ggml.{key}_token_id")
        if value is not None and value.lstrip("-").isdigit() and int(value) >= 0:
            found.add(int(value))
    return frozenset(found)


def require_heads(model: Llama, *, sparse: bool, colbert: bool) -> M3Heads:
    """Return the model's heads, or raise MissingHeadError naming the one that is missing."""
    heads = model.heads
    missing = []
    if sparse and (heads is None or heads.sparse_weight is None):
        missing.append("sparse_linear (lexical weights)")
    if colbert and (heads is None or heads.colbert_weight is None):
        missing.append("colbert_linear (ColBERT vectors)")
    if missing:
        raise MissingHeadError(
            f"{model.model_path.name} has no {' and no '.join(missing)} head: bge-m3's heads "
            f"live in {heads_path(model.model_path).name} beside the GGUF. Convert the "
            "bge-m3 folder with `llamaembed convert` (it reads sparse_linear.pt and "
            "colbert_linear.pt), or pull the catalogue's bge-m3, which fetches them"
        )
    assert heads is not None
    return heads


def lexical_weights(
    ids: npt.NDArray[Any], states: FloatArray, heads: M3Heads | None, unused: frozenset[int]
) -> dict[str, float]:
    """Return one text's lexical weights: token id (a string) → its largest positive weight."""
    assert heads is not None and heads.sparse_weight is not None
    weights = np.maximum(states @ heads.sparse_weight + heads.sparse_bias, 0.0)
    result: dict[str, float] = {}
    for token, weight in zip(ids.tolist(), weights.tolist(), strict=True):
        if weight > 0 and token not in unused:
            key = str(token)
            if weight > result.get(key, 0.0):
                result[key] = weight
    return result


def colbert_vectors(states: FloatArray, heads: M3Heads | None) -> FloatArray:
    """Return one text's ColBERT vectors: every token after the first, projected, unit rows."""
    assert heads is not None and heads.colbert_weight is not None and heads.colbert_bias is not None
    projected = states[1:] @ heads.colbert_weight.T + heads.colbert_bias
    return l2_normalize(projected.astype(np.float32, copy=False))


def forward_m3(
    self: Llama, inputs: list[Any], *, sparse: bool = True, colbert: bool = False
) -> list[dict[str, Any]]:
    """Return each prepared input's bge-m3 outputs from one token-level pass.

    One dict an input: ``dense`` (the raw pooled row: CLS for bge-m3), ``lexical`` (token
    id string → weight, or None) and ``colbert`` (unit rows, or None). The server's queue
    runs this.
    """
    heads = require_heads(self, sparse=sparse, colbert=colbert) if sparse or colbert else None
    unused = unused_token_ids(self.metadata)
    sequences: list[TokenArray] = inputs
    rows = []
    states_list = self.forward_tokens(sequences)
    with single_threaded_blas():  # spinning BLAS threads would starve llama.cpp's (_blas)
        for ids, states in zip(sequences, states_list, strict=True):
            rows.append(
                {
                    "dense": _pool(states, self.pooling),
                    "lexical": lexical_weights(ids, states, heads, unused) if sparse else None,
                    "colbert": colbert_vectors(states, heads) if colbert else None,
                }
            )
    return rows


def _pool(states: FloatArray, pooling: Pooling) -> FloatArray:
    # bge-m3 is CLS-pooled; heads on a mean- or last-pooled model keep its own dense vector.
    if pooling is Pooling.MEAN:
        return states.mean(axis=0)
    if pooling is Pooling.LAST:
        return states[-1]
    return states[0]


def encode_m3(
    self: Llama,
    texts: str | Sequence[str],
    *,
    return_dense: bool = True,
    return_sparse: bool = True,
    return_colbert_vecs: bool = False,
    batch_size: int | None = None,
) -> dict[str, Any]:
    """Return bge-m3's dense, lexical and ColBERT outputs from one pass, as FlagEmbedding.

    A dict with ``dense_vecs`` (float32 n × d, unit rows), ``lexical_weights`` (per text,
    token id as a string → weight) and ``colbert_vecs`` (per text, float32
    (n_tokens − 1) × d, unit rows); an output not asked for is None. A single string gives
    one text's outputs. Sparse and ColBERT outputs need the heads file beside the GGUF
    (``llamaembed convert`` writes it from a bge-m3 folder); without it MissingHeadError
    says which head is missing. ``batch_size`` caps the texts encoded at once.
    """
    single = isinstance(texts, str)
    batch = [texts] if isinstance(texts, str) else check_texts(texts)
    if return_sparse or return_colbert_vecs:
        require_heads(self, sparse=return_sparse, colbert=return_colbert_vecs)
    check_batch_size(batch_size)
    rows: list[dict[str, Any]] = []
    # Token states are n_tokens x n_embd floats a text: hold one chunk's at a time.
    step = min(_CHUNK, batch_size or _CHUNK)
    for start in range(0, len(batch), step):
        sequences = self.prepare_texts(batch[start : start + step])
        rows.extend(self.forward_m3(sequences, sparse=return_sparse, colbert=return_colbert_vecs))
    dense = sparse = colbert = None
    if return_dense:
        vectors = [r["dense"] for r in rows]
        dense = l2_normalize(np.stack(vectors)) if rows else np.empty((0, self.n_embd), np.float32)
    if return_sparse:
        sparse = [r["lexical"] for r in rows]
    if return_colbert_vecs:
        colbert = [r["colbert"] for r in rows]
    if single:
        return {
            "dense_vecs": None if dense is None else dense[0],
            "lexical_weights": None if sparse is None else sparse[0],
            "colbert_vecs": None if colbert is None else colbert[0],
        }
    return {"dense_vecs": dense, "lexical_weights": sparse, "colbert_vecs": colbert}


def lexical_matching_score(
    a: Mapping[str, float] | Sequence[Mapping[str, float]],
    b: Mapping[str, float] | Sequence[Mapping[str, float]],
) -> Any:
    """Return the sum over shared tokens of the two weights (FlagEmbedding's score).

    Two dicts give a float; two lists give an (len(a), len(b)) float array.
    """
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        if len(b) < len(a):
            a, b = b, a
        return float(sum(w * b[t] for t, w in a.items() if t in b))
    if isinstance(a, Sequence) and isinstance(b, Sequence):
        rows = [[lexical_matching_score(x, y) for y in b] for x in a]
        return np.asarray(rows, dtype=np.float64).reshape(len(a), len(b))
    raise TypeError("lexical weights must be two dicts or two lists of dicts")


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
