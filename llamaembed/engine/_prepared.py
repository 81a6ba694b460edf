"""The batch interface of ``Llama`` that the server's queue runs: prepare, then forward.

The server packs inputs of many requests into shared batches, so it prepares each
request's inputs first (tokenising, checking lengths) and runs them together later.
``PreparedInputs`` is mixed into ``Llama``; it uses the open model's tokenizer, layout
and runner, which ``Llama`` sets up.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from .._types import FloatArray, TokenArray
from ..errors import PoolingError
from ..params import EmbedOptions, Pooling
from .inputs import check_texts, check_token_ids, fit_tokens, tokenize_texts
from .pairs import build_pairs

__all__ = ["PreparedInputs"]


class PreparedInputs:
    """``prepare_texts``, ``prepare_tokens``, ``prepare_pairs`` and ``forward`` of ``Llama``."""

    _model: Any
    _layout: Any
    _segments: Any
    n_ctx: int
    n_embd: int
    n_cls_out: int
    pooling: Pooling
    _require_embedder: Callable[[], None]
    _require_reranker: Callable[[], None]
    _run: Callable[..., Any]

    def prepare_texts(
        self,
        texts: Sequence[str],
        *,
        truncate: bool = True,
        on_truncate: Callable[[int], None] | None = None,
        on_tokens: Callable[[int], None] | None = None,
    ) -> list[TokenArray]:
        """Return the token sequences ``forward`` takes for texts (specials added, fitted).

        Truncated texts are logged as a warning, or counted by ``on_truncate(n)`` instead
        (a server counts them in a metric rather than logging every request).
        ``on_tokens(n)`` hears each text's token count as it is tokenised.
        """
        self._require_embedder()
        options = EmbedOptions(truncate=truncate)
        texts = check_texts(texts)
        return tokenize_texts(
            self._model,
            texts,
            options,
            self.n_ctx,
            on_truncate,
            on_tokens,
            end_token=self._layout.end_token,
        )

    def prepare_tokens(
        self, token_lists: Sequence[Sequence[int]], *, truncate: bool = True
    ) -> list[TokenArray]:
        """Return token sequences for ``forward`` from token ids, used as given.

        Ids must be the model's vocabulary ids; no special tokens are added (an id list
        from ``tokenize()`` or a Hugging Face tokenizer already holds them).
        """
        self._require_embedder()
        n_vocab = self.n_vocab
        prepared = []
        for i, ids in enumerate(token_lists):
            tokens = check_token_ids(ids, i, n_vocab)
            fitted, _ = fit_tokens(
                tokens.astype(np.int32), self.n_ctx, self._model.vocab, index=i, truncate=truncate
            )
            prepared.append(fitted)
        return prepared

    def prepare_pairs(
        self,
        query: str,
        documents: Sequence[str],
        *,
        on_tokens: Callable[[int], None] | None = None,
    ) -> list[npt.NDArray[Any]]:
        """Return the query–document inputs ``forward`` takes to score documents."""
        self._require_reranker()
        if not isinstance(query, str):
            raise TypeError(f"query is {type(query).__name__}, not str")
        docs = check_texts(documents)
        return build_pairs(self._model, query, docs, self.n_ctx, self._segments, on_tokens)

    def forward(self, sequences: list[npt.NDArray[Any]]) -> FloatArray:
        """Return the raw pooled outputs of prepared inputs, one row each, in input order.

        Rows are unnormalised vectors (n_embd wide) or, for a cross-encoder, its class
        logits (n_cls_out wide). Inputs are packed into micro-batches longest first.
        """
        if self.pooling is Pooling.NONE:
            raise PoolingError("forward() needs pooled outputs; this model has pooling none")
        width = self.n_cls_out if self.pooling is Pooling.RANK else self.n_embd
        if not sequences:
            return np.empty((0, width), dtype=np.float32)
        result = self._run(sequences, width)
        assert isinstance(result, np.ndarray)
        return result

    @property
    def n_vocab(self) -> int:
        """Return the number of tokens in the model's vocabulary."""
        return int(self._model.vocab.n_tokens)
