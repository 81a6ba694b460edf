"""The inputs a cross-encoder reads: one query–document pair per document.

Pairs are built as llama.cpp's own server builds them: from a "rerank" template stored
in the GGUF, or as ``[BOS] query [EOS] [SEP] document [EOS]`` (each marker only where the
vocabulary asks for it). For a BERT cross-encoder with two token types, the pair goes in
as input embeddings with the document's tokens marked as sentence B, which llama.cpp's
BERT graph would not do (it adds token type 0 to every token).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .._types import FloatArray, TokenArray

__all__ = [
    "RankHead",
    "RerankResult",
    "Segments",
    "build_pairs",
    "decoder_rank_head",
    "pair_tokens",
    "rank_scores",
    "segment_tables",
]

Segments = tuple[FloatArray, FloatArray]
"""The word-embedding table and ``type_1 - type_0`` of a BERT cross-encoder."""


def segment_tables(path: Path) -> Segments:
    """Return the word-embedding table and ``type_1 - type_0`` read from a BERT GGUF."""
    tensors = _gguf_tensors(path)
    tables = []
    for name in ("token_embd.weight", "token_types.weight"):
        tables.append(_float32(tensors[name]).reshape(-1, int(tensors[name].shape[0])))
    words, types = tables
    return words, types[1] - types[0]


def _gguf_tensors(path: Path) -> dict[str, Any]:
    """Return a GGUF file's tensors by name (memory-mapped: nothing is read yet)."""
    import gguf

    return {t.name: t for t in gguf.GGUFReader(path).tensors}


def _float32(tensor: Any) -> FloatArray:
    """Return a GGUF tensor's values as float32, dequantised if need be."""
    import gguf

    return np.asarray(gguf.quants.dequantize(tensor.data, tensor.tensor_type), np.float32)


@dataclass(frozen=True)
class RankHead:
    """A decoder reranker's classification head (``cls.output``), applied in numpy.

    llama.cpp's rank pooling of a causal model reads the last token's final-norm row,
    multiplies it by ``cls.output`` (plus its bias) and, for Qwen3, takes the softmax:
    the same here, so the graph can end at the final norm (``engine._handles.StopAt``).
    """

    weight: FloatArray  # (n_cls_out, n_embd)
    bias: FloatArray | None
    softmax: bool

    def __call__(self, rows: FloatArray) -> FloatArray:
        """Return the head's outputs for last-token rows (n, n_embd) -> (n, n_cls_out)."""
        logits = rows.astype(np.float64) @ self.weight.T
        if self.bias is not None:
            logits += self.bias
        if self.softmax:
            logits = np.exp(logits - logits.max(axis=1, keepdims=True))
            logits /= logits.sum(axis=1, keepdims=True)
        return logits.astype(np.float32)


def decoder_rank_head(
    path: Path, n_embd: int, architecture: str, metadata: dict[str, str]
) -> RankHead | None:
    """Return a causal reranker's head as llama.cpp applies it, or None where it differs.

    Only the plain case is taken: ``cls.output`` (and its bias), no ``cls`` dense layer,
    no classifier pooling key (mean pooling); anything else keeps llama.cpp's whole graph.
    """
    if f"{architecture}.classifier.pooling_type" in metadata:
        return None
    tensors = _gguf_tensors(path)
    if "cls.output.weight" not in tensors or "cls.weight" in tensors:
        return None
    weight = _float32(tensors["cls.output.weight"]).reshape(-1, n_embd)
    bias = (
        _float32(tensors["cls.output.bias"]).reshape(-1) if "cls.output.bias" in tensors else None
    )
    return RankHead(weight, bias, softmax=architecture in ("qwen3", "qwen3vl"))


def pair_tokens(
    vocab: Any, query: TokenArray, doc: TokenArray, n_ctx: int
) -> tuple[TokenArray, int]:
    """Return a pair's tokens and the index where the document's segment starts.

    A pair longer than ``n_ctx`` is cut: the query keeps at least half the room, the
    document gets the rest.
    """
    closing = vocab.eos if vocab.eos >= 0 else vocab.sep
    head = [vocab.bos] if vocab.add_bos else []
    middle = ([closing] if vocab.add_eos else []) + ([vocab.sep] if vocab.add_sep else [])
    tail = [closing] if vocab.add_eos else []
    room = n_ctx - len(head) - len(middle) - len(tail)
    if len(query) + len(doc) > room:
        keep = min(len(query), max(room // 2, room - len(doc)))
        query, doc = query[:keep], doc[: room - keep]
    parts = [head, query.tolist(), middle, doc.tolist(), tail]
    tokens = np.asarray([t for part in parts for t in part], dtype=np.int32)
    return tokens, len(head) + len(query) + len(middle)


def build_pairs(
    model: Any,
    query: str,
    documents: list[str],
    n_ctx: int,
    segments: Segments | None,
    on_tokens: Callable[[int], None] | None = None,
) -> list[npt.NDArray[Any]]:
    """Return one input per document for an open ``NativeModel``: token ids or embeddings.

    ``on_tokens(n)`` hears each pair's token count as soon as it is known.
    """
    if model.rerank_template:
        templated = []
        for document in documents:
            text = model.rerank_template.replace("{query}", query).replace("{document}", document)
            # As llama.cpp's server: the template's markers are special tokens.
            tokens = model.tokenize(text, add_special=False, parse_special=True)[:n_ctx]
            templated.append(tokens)
            if on_tokens is not None:
                on_tokens(len(tokens))
        return templated
    query_tokens = model.tokenize(query, add_special=False)
    pairs = []
    for document in documents:
        document_tokens = model.tokenize(document, add_special=False)
        pair = pair_tokens(model.vocab, query_tokens, document_tokens, n_ctx)
        pairs.append(pair)
        if on_tokens is not None:
            on_tokens(len(pair[0]))
    if segments is None:
        return [tokens for tokens, _ in pairs]
    words, type_shift = segments
    inputs = []
    for tokens, start in pairs:
        matrix = words[tokens]  # fancy indexing: a fresh array
        matrix[start:] += type_shift  # the document is sentence B
        inputs.append(matrix)
    return inputs


@dataclass(frozen=True)
class RerankResult:
    """One reranked document: its position in the input, its score and its text."""

    index: int
    score: float
    text: str


def rank_scores(
    scores: FloatArray,
    docs: Sequence[str],
    top_n: int | None,
    activation: str | Callable[[FloatArray], FloatArray] | None,
) -> FloatArray | list[RerankResult]:
    """Apply ``rerank``'s activation; with ``top_n`` return the best as sorted results."""
    from .pooling import sigmoid

    if activation == "sigmoid":
        scores = sigmoid(scores)
    elif callable(activation):
        scores = np.asarray(activation(scores), dtype=np.float32)
    elif activation not in (None, "none"):
        raise ValueError(f"unknown activation {activation!r}; use None or 'sigmoid'")
    if top_n is None:
        return scores
    order = np.argsort(-scores, kind="stable")[:top_n]
    return [RerankResult(int(i), float(scores[i]), docs[i]) for i in order]
