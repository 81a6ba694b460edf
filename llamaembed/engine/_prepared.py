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

from .._blas import single_threaded_blas
from .._types import FloatArray, TokenArray
from ..errors import PoolingError
from ..heads import M3Heads
from ..outputs import ModelInput, Output, Want
from ..params import EmbedOptions, Pooling
from .inputs import check_texts, check_token_ids, fit_tokens, tokenize_texts
from .m3 import token_outputs, unused_token_ids
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
    _heads_for: Callable[[Want], M3Heads | None]
    metadata: Any
    forward_tokens: Callable[[list[TokenArray]], list[FloatArray]]

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

    def forward(self, inputs: Sequence[ModelInput]) -> list[Output]:
        """Return each prepared input's outputs, as its ``want`` asks, in input order.

        Pooled rows are unnormalised vectors (n_embd wide) or, for a cross-encoder, its
        class logits (n_cls_out wide), from one pooled run packed longest first. Inputs
        that want token-level outputs (bge-m3's sparse and ColBERT, token states) share a
        second, token-level run; their pooled row is pooled from the same states.
        """
        # (``is Want.POOLED`` first: a Flag operation costs 1.5 µs an input, identity 0.08)
        pooled = [
            i
            for i, item in enumerate(inputs)
            if item.want is Want.POOLED or not item.want.token_level
        ]
        if len(pooled) == len(inputs):  # the usual case: one pooled run
            rows = self.pooled_rows([item.tokens for item in inputs])
            return [Output(pooled=row) for row in rows]
        out: list[Output] = [Output()] * len(inputs)
        if pooled:
            rows = self.pooled_rows([inputs[i].tokens for i in pooled])
            for i, row in zip(pooled, rows, strict=True):
                out[i] = Output(pooled=row)
        deep = [i for i, item in enumerate(inputs) if item.want.token_level]
        union = Want(0)
        for i in deep:
            union |= inputs[i].want
        heads = self._heads_for(union)
        unused = unused_token_ids(self.metadata)
        sequences = [inputs[i].tokens for i in deep]
        states_list = self.forward_tokens(sequences)
        with single_threaded_blas():  # spinning BLAS threads would starve llama.cpp's (_blas)
            for i, ids, states in zip(deep, sequences, states_list, strict=True):
                out[i] = token_outputs(ids, states, inputs[i].want, heads, unused, self.pooling)
        return out

    def pooled_rows(self, sequences: list[npt.NDArray[Any]]) -> FloatArray:
        """Return the raw pooled row of each prepared input (one run, packed longest first)."""
        if self.pooling is Pooling.NONE:
            raise PoolingError("pooled outputs need a pooling; this model has pooling none")
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
