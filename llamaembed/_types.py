"""Array aliases shared by the package (one definition, imported everywhere)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["FloatArray", "IdArray", "TokenArray"]

FloatArray = npt.NDArray[np.float32]
"""Vectors and scores: float32, one row per text (or one value per document)."""

TokenArray = npt.NDArray[np.int32]
"""llama.cpp token ids of one text."""

IdArray = npt.NDArray[np.int64]
"""Token ids as a static model's tokenizer gives them."""
