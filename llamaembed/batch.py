"""The batch interface: what a server's queue runs, apart from what users call.

The server packs the inputs of many requests into shared model runs, so a request's inputs
are prepared first (tokenised, checked) and run together later. :class:`BatchEmbedder` is
an :class:`~llamaembed.embedder.Embedder` that offers that interface:

- ``prepare_texts``, ``prepare_tokens``, ``prepare_pairs``: inputs as ``forward`` takes
  them; ``on_tokens(n)`` hears each input's tokens as soon as they are counted, and an
  exception it raises stops the work (a server refuses an over-large request before it has
  tokenised all of it);
- ``forward(inputs)``: one run over :class:`~llamaembed.outputs.ModelInput` items, each
  saying what it wants (pooled row, sparse weights, ColBERT vectors, token states), as
  text-embeddings-inference's backends take pooled and raw indices in one batch.

``encode_outputs`` (and so ``encode_m3``) is built on the two for every such model.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from typing import Any

from .embedder import Embedder
from .errors import RerankNotSupportedError
from .outputs import ModelInput, Output, Want

__all__ = ["BatchEmbedder", "ModelInput", "Output", "Want"]

_CHUNK = 512  # texts whose token-level outputs are computed at once


class BatchEmbedder(Embedder):
    """An embedder a server's queue can run: prepare inputs, then forward them together."""

    @abc.abstractmethod
    def prepare_texts(
        self,
        texts: Sequence[str],
        *,
        truncate: bool = True,
        on_truncate: Callable[[int], None] | None = None,
        on_tokens: Callable[[int], None] | None = None,
    ) -> list[Any]:
        """Return each text's token ids as ``forward`` takes them; ``on_truncate(n)`` hears cuts."""

    @abc.abstractmethod
    def prepare_tokens(
        self, token_lists: Sequence[Sequence[int]], *, truncate: bool = True
    ) -> list[Any]:
        """Return token id lists checked against the vocabulary, as ``forward`` takes them."""

    def prepare_pairs(
        self,
        query: str,
        documents: Sequence[str],
        *,
        on_tokens: Callable[[int], None] | None = None,
    ) -> list[Any]:
        """Return query–document inputs for ``forward``; a model that is no cross-encoder raises.

        Raises RerankNotSupportedError unless ``capabilities.rerank``.
        """
        raise RerankNotSupportedError(
            f"{self!r} embeds texts and does not score pairs; rerank with a cross-encoder "
            "GGUF, or compare embeddings with cosine similarity"
        )

    @abc.abstractmethod
    def forward(self, inputs: Sequence[ModelInput]) -> list[Output]:
        """Return each input's outputs, as its ``want`` asks, in input order."""

    def encode_outputs(
        self, texts: Sequence[str], want: Want, *, batch_size: int | None = None
    ) -> list[Output]:
        """Return each text's typed outputs, prepared and forwarded a chunk at a time.

        Token-level outputs hold ``n_tokens × n_embd`` floats a text: at most ``batch_size``
        (else 512) texts' token states are held at once.
        """
        if not want:
            return [Output() for _ in texts]
        step = min(_CHUNK, batch_size or _CHUNK)
        outputs: list[Output] = []
        for start in range(0, len(texts), step):
            prepared = self.prepare_texts(texts[start : start + step])
            outputs.extend(self.forward([ModelInput(tokens, want) for tokens in prepared]))
        return outputs
