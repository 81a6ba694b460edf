"""Pure numpy helpers: normalisation, similarity, scores and rank fusion."""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from .._types import FloatArray

__all__ = [
    "check_dimensions",
    "cosine_similarity",
    "l2_normalize",
    "reciprocal_rank_fusion",
    "sigmoid",
    "truncate_dimensions",
]

Item = TypeVar("Item", bound=Hashable)


def l2_normalize(vectors: npt.ArrayLike, eps: float = 1e-12) -> FloatArray:
    """Return float32 vectors scaled to unit L2 norm along the last axis (zeros stay zero)."""
    array = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(array, axis=-1, keepdims=True)
    return (array / np.maximum(norms, eps)).astype(np.float32, copy=False)


def check_dimensions(dimensions: object, n_embd: int) -> int | None:
    """Return ``dimensions`` (None: the full width), raising ValueError outside 1..n_embd."""
    if dimensions is None:
        return None
    if isinstance(dimensions, bool) or not isinstance(dimensions, (int, np.integer)):
        raise ValueError(f"dimensions must be an integer, got {dimensions!r}")
    if not 1 <= int(dimensions) <= n_embd:
        raise ValueError(f"dimensions must be between 1 and {n_embd}, got {dimensions}")
    return int(dimensions)


def truncate_dimensions(
    vectors: FloatArray, dimensions: int | None, *, normalize: bool = True
) -> FloatArray:
    """Return Matryoshka vectors: the first ``dimensions`` columns, re-normalised.

    None keeps the full width. ``normalize=False`` cuts without re-normalising.
    """
    if dimensions is None or dimensions >= vectors.shape[-1]:
        return vectors
    cut = np.ascontiguousarray(vectors[..., :dimensions])
    return l2_normalize(cut) if normalize else cut


def cosine_similarity(a: npt.ArrayLike, b: npt.ArrayLike) -> FloatArray:
    """Return cosine similarities: a vector for 1-D × 2-D, a matrix for 2-D × 2-D."""
    left = l2_normalize(a)
    right = l2_normalize(b)
    return np.asarray(left @ right.T, dtype=np.float32)


def sigmoid(scores: npt.ArrayLike) -> FloatArray:
    """Return the logistic function of raw scores, computed without overflow."""
    x = np.asarray(scores, dtype=np.float64)
    out = np.empty_like(x)
    positive = x >= 0
    out[positive] = 1.0 / (1.0 + np.exp(-x[positive]))
    exp_x = np.exp(x[~positive])
    out[~positive] = exp_x / (1.0 + exp_x)
    return out.astype(np.float32)


def reciprocal_rank_fusion(
    rankings: Iterable[Sequence[Item]], k: int = 60
) -> list[tuple[Item, float]]:
    """Return ids fused from several best-first rankings, best first, with their RRF scores.

    Each id scores ``sum(1 / (k + rank))`` over the rankings it appears in (rank from 1);
    ties keep the order of first appearance.
    """
    scores: dict[Item, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda pair: -pair[1])
