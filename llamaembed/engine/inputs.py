"""Checks of what callers hand an embedder: lists of texts and lists of token ids.

Shared by ``Llama`` and ``StaticModel`` so that both reject bad input with the same errors
and messages (the server maps them to the same HTTP answers). Pure functions, no model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import EmptyInputError, InvalidTokenError
from ..params import check_int

__all__ = ["check_batch_size", "check_texts", "check_token_ids"]


def check_texts(texts: Sequence[Any]) -> list[str]:
    """Return the texts as a list, raising TypeError for a bare string or a non-string item."""
    if isinstance(texts, (str, bytes)):
        raise TypeError("expected a list of strings, got a single string")
    checked = list(texts)
    for i, text in enumerate(checked):
        if not isinstance(text, str):
            raise TypeError(f"text at index {i} is {type(text).__name__}, not str")
    return checked


def check_batch_size(batch_size: int | None) -> int | None:
    """Return ``batch_size`` (None: the embedder's own), raising ValueError unless it is >= 1."""
    return None if batch_size is None else check_int("batch_size", batch_size, 1)


def check_token_ids(ids: Sequence[int], index: int, n_vocab: int) -> npt.NDArray[np.int64]:
    """Return one input's token ids as int64, each in ``[0, n_vocab)``, or raise our error.

    ``index`` is the input's position in its request, named in the message.
    """
    try:
        tokens = np.asarray(ids, dtype=np.int64)
    except (OverflowError, ValueError, TypeError) as exc:
        raise InvalidTokenError(
            f"token list at index {index} is not a list of token ids: {exc}", index=index
        ) from exc
    if tokens.ndim != 1 or len(tokens) == 0:
        raise EmptyInputError(f"token list at index {index} is empty")
    bad = (tokens < 0) | (tokens >= n_vocab)
    if bad.any():
        position = int(np.argmax(bad))
        raise InvalidTokenError(
            f"token list at index {index} holds id {int(tokens[position])} at position "
            f"{position}; this model's ids run from 0 to {n_vocab - 1}",
            index=index,
        )
    return tokens
