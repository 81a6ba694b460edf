"""What callers hand an embedder, checked and fitted: lists of texts and of token ids.

The checks are shared by ``Llama`` and ``StaticModel`` so that both reject bad input with
the same errors and messages (the server maps them to the same HTTP answers).
``fit_tokens`` and ``tokenize_texts`` turn texts into the token sequences a GGUF model
runs, cut to its context; they take the open model's tokenizer as an argument.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from .._types import TokenArray
from ..errors import EmptyInputError, InputTooLongError, InvalidTokenError
from ..params import EmbedOptions, check_int

__all__ = ["check_batch_size", "check_texts", "check_token_ids", "fit_tokens", "tokenize_texts"]

logger = logging.getLogger(__name__)


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
    except OverflowError:
        raise InvalidTokenError(
            f"token list at index {index} holds an id too large for any vocabulary; this "
            f"model's ids run from 0 to {n_vocab - 1}",
            index=index,
        ) from None
    except (ValueError, TypeError) as exc:
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


def fit_tokens(
    tokens: TokenArray,
    limit: int,
    vocab: Any,
    *,
    index: int,
    truncate: bool,
    end_token: int | None = None,
) -> tuple[TokenArray, bool]:
    """Return the tokens cut to ``limit`` (keeping a closing EOS/SEP) and whether they were.

    ``end_token``, when given, is a closing token too (one ``tokenize_texts`` appended).
    Raises InputTooLongError instead of cutting when ``truncate`` is False.
    """
    if len(tokens) <= limit:
        return tokens, False
    if not truncate:
        raise InputTooLongError(
            f"text at index {index} has {len(tokens)} tokens; the model takes at most "
            f"{limit}. Pass truncate=True or split it (llamaembed.chunking).",
            index=index,
            n_tokens=len(tokens),
            limit=limit,
        )
    last = int(tokens[-1])
    closing = (vocab.add_eos and last in (vocab.eos, vocab.sep)) or last == end_token
    if closing:
        return np.concatenate([tokens[: limit - 1], tokens[-1:]]), True
    return tokens[:limit], True


def tokenize_texts(
    model: Any,
    texts: list[str],
    options: EmbedOptions,
    limit: int,
    on_truncate: Callable[[int], None] | None = None,
    on_tokens: Callable[[int], None] | None = None,
    end_token: int | None = None,
) -> list[TokenArray]:
    """Return each text's tokens (specials added, fitted to ``limit``) from a NativeModel.

    Truncated texts are logged as one warning, or counted by ``on_truncate(n)`` instead.
    ``on_tokens(n)`` hears each text's fitted token count as soon as it is known.
    ``end_token`` ends every text that the tokenizer did not end with it.
    """
    vocab = model.vocab
    prepared = []
    n_truncated = 0
    for i, text in enumerate(texts):
        tokens = model.tokenize(text, add_special=True)
        if not options.start_token and vocab.add_bos and len(tokens) and tokens[0] == vocab.bos:
            tokens = tokens[1:]
        if end_token is not None and (len(tokens) == 0 or int(tokens[-1]) != end_token):
            tokens = np.append(tokens, np.int32(end_token)).astype(np.int32)
        if len(tokens) == 0:
            raise EmptyInputError(
                f"text at index {i} gives no tokens (this model adds no start token); "
                "skip empty texts"
            )
        tokens, cut = fit_tokens(
            tokens, limit, vocab, index=i, truncate=options.truncate, end_token=end_token
        )
        n_truncated += cut
        prepared.append(tokens)
        if on_tokens is not None:
            on_tokens(len(tokens))
    if n_truncated and on_truncate is not None:
        on_truncate(n_truncated)
    elif n_truncated:
        logger.warning(
            "%d of %d texts were longer than %d tokens and were truncated",
            n_truncated,
            len(texts),
            limit,
        )
    return prepared
