"""Typed model outputs: what one input asks for (:class:`Want`) and what it gets (:class:`Output`).

A model's several outputs travel as one typed result across module boundaries, as
text-embeddings-inference's ``Embedding::{Pooled, All}``: the pooled row (a vector, or a
cross-encoder's logits), a learned sparse vector (bge-m3's lexical weights) and per-token
vectors (bge-m3's ColBERT vectors, or raw token states). A sparse vector is token ids and
weights as two arrays (fastembed's ``SparseEmbedding``); adapters to another library's dict
shape (FlagEmbedding's ``{"token id": weight}``, Milvus's ``{id: weight}``) sit at the edge.
A leaf module: numpy only.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

__all__ = ["ModelInput", "Output", "SparseVector", "Want"]


class Want(enum.Flag):
    """What an input asks the model for; flags combine (``Want.POOLED | Want.SPARSE``).

    ``POOLED``: the pooled row (the raw vector, or a cross-encoder's class logits).
    ``SPARSE``: learned lexical weights (bge-m3's sparse head).
    ``COLBERT``: ColBERT vectors, one unit row a token after the first (bge-m3's head).
    ``TOKENS``: the raw final state of every token (text-embeddings-inference's ``embed_all``).
    """

    POOLED = enum.auto()
    SPARSE = enum.auto()
    COLBERT = enum.auto()
    TOKENS = enum.auto()

    @property
    def token_level(self) -> bool:
        """Return True when the wish needs every token's state, not only the pooled row."""
        return bool(self & (Want.SPARSE | Want.COLBERT | Want.TOKENS))


class ModelInput(NamedTuple):
    """A prepared input (token ids, or a query–document pair) and what it asks for."""

    tokens: npt.NDArray[Any]
    want: Want = Want.POOLED

    def __len__(self) -> int:  # the batcher budgets inputs by their tokens
        return len(self.tokens)


@dataclass(frozen=True, eq=False)  # equal by value below; unhashable, as arrays are
class SparseVector:
    """A learned sparse vector: ``indices`` (int64 token ids, ascending) and ``values`` (float32).

    Build one from any pairs with :meth:`from_pairs` (ids sorted, repeated ids keep their
    largest weight, as bge-m3 does); :meth:`to_dict` is FlagEmbedding's lexical-weights dict.
    """

    indices: npt.NDArray[np.int64]
    values: npt.NDArray[np.float32]

    def __post_init__(self) -> None:
        if self.indices.shape != self.values.shape or self.indices.ndim != 1:
            raise ValueError(
                f"indices and values must be two 1-D arrays of one length, not "
                f"{self.indices.shape} and {self.values.shape}"
            )

    @classmethod
    def from_pairs(cls, indices: npt.ArrayLike, values: npt.ArrayLike) -> SparseVector:
        """Return the sparse vector of (id, weight) pairs, ids unique and ascending."""
        ids = np.asarray(indices, dtype=np.int64).reshape(-1)
        weights = np.asarray(values, dtype=np.float32).reshape(-1)
        if ids.size == 0:
            return cls(ids, weights)
        # sort by id, then by weight descending: the first of each id is its largest weight
        order = np.lexsort((-weights, ids))
        ids, weights = ids[order], weights[order]
        first = np.ones(ids.size, dtype=bool)
        first[1:] = ids[1:] != ids[:-1]
        return cls(ids[first], weights[first])

    @classmethod
    def from_dict(cls, weights: Mapping[Any, float]) -> SparseVector:
        """Return the sparse vector of a ``{token id: weight}`` dict (keys int or str)."""
        return cls.from_pairs([int(k) for k in weights], list(weights.values()))

    def to_dict(self) -> dict[str, float]:
        """Return FlagEmbedding's shape: token id as a string → weight (a Python float)."""
        return dict(zip(map(str, self.indices.tolist()), self.values.tolist(), strict=True))

    def dot(self, other: SparseVector) -> float:
        """Return the sum over shared ids of the two weights (bge-m3's lexical matching score)."""
        _, mine, theirs = np.intersect1d(
            self.indices, other.indices, assume_unique=True, return_indices=True
        )
        return float(np.dot(self.values[mine].astype(np.float64), other.values[theirs]))

    def __len__(self) -> int:
        return int(self.indices.size)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SparseVector):
            return NotImplemented
        return np.array_equal(self.indices, other.indices) and np.array_equal(
            self.values, other.values
        )


@dataclass(frozen=True)
class Output:
    """One input's outputs; what was not asked for is None.

    ``pooled``: the raw (unnormalised) pooled row; ``sparse``: the lexical weights;
    ``colbert``: ColBERT vectors ((n_tokens − 1) × d, unit rows); ``tokens``: raw token
    states (n_tokens × n_embd).
    """

    pooled: npt.NDArray[np.float32] | None = None
    sparse: SparseVector | None = None
    colbert: npt.NDArray[np.float32] | None = None
    tokens: npt.NDArray[np.float32] | None = None
