"""How a GGUF model runs in llama.cpp: its pooling, context and micro-batches.

``read_layout`` decides, from the file's metadata and the caller's parameters, which
pooling the model runs with (and whether it is a cross-encoder), how long a text may be
and how texts are packed into micro-batches; ``plan_batches`` packs them. No llama.cpp
call is made here beyond reading what the open model reports.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._files import sample_file
from ..errors import RerankNotSupportedError
from ..params import LlamaParams, Pooling

__all__ = [
    "DECODER_DEFAULT_CTX",
    "Layout",
    "file_fingerprint",
    "plan_batches",
    "read_layout",
]

logger = logging.getLogger(__name__)

# Decoders train on long contexts; a default this size keeps the KV cache and compute
# buffers small. Pass n_ctx explicitly to go further.
DECODER_DEFAULT_CTX = 2048


@dataclass(frozen=True)
class Layout:
    """What ``read_layout`` decided for one model opened with one set of parameters."""

    architecture: str
    is_decoder: bool
    gguf_pooling: Pooling | None  # what the file says it was trained with
    has_rank_head: bool  # a classification head: a cross-encoder
    pooling: Pooling  # what it runs with
    n_ctx: int  # the most tokens of one text
    n_ubatch: int  # llama.cpp's micro-batch
    budget: int  # tokens per micro-batch when packing texts
    n_seq_max: int  # texts per micro-batch
    fingerprint: str
    end_token: int | None = None  # appended to every text unless the tokenizer ends with it


def file_fingerprint(path: Path, pooling: Pooling) -> str:
    """Return a short hash of the file's size and sampled contents, plus the pooling."""
    digest = hashlib.sha256()
    sample_file(digest, path)
    digest.update(pooling.value.encode())
    return digest.hexdigest()[:32]


def _has_cls_head(path: Path) -> bool:
    """Return True when the file holds a classification head (``cls.output.weight``).

    llama.cpp's converter writes cross-encoders with their labels (an array, which
    llama.cpp's metadata API does not expose) and no pooling type, so the tensor itself
    is the sign.
    """
    from .gguf_check import scan

    return "cls.output.weight" in scan(path).tensors


def read_layout(model: Any, params: LlamaParams, *, warn_pooling: bool = True) -> Layout:
    """Return the layout of an open ``NativeModel`` under ``params``.

    Raises RerankNotSupportedError for rank pooling on a model without a classification
    head; warns (unless ``warn_pooling`` is False) when the pooling asked for is not the
    one the file was trained with.
    """
    meta = model.metadata
    architecture = meta.get("general.architecture", "unknown")
    is_decoder = meta.get(f"{architecture}.attention.causal", "true") == "true" and bool(
        model.has_decoder
    )
    code = meta.get(f"{architecture}.pooling_type")
    gguf_pooling = Pooling.parse(int(code)) if code not in (None, "") else None
    has_rank_head = (
        gguf_pooling is Pooling.RANK
        or f"{architecture}.classifier.output_labels" in meta
        or (gguf_pooling is None and not is_decoder and _has_cls_head(model.path))
    )
    if has_rank_head and gguf_pooling is None:
        default = Pooling.RANK  # a cross-encoder from llama.cpp's converter: no pooling key
    else:
        default = gguf_pooling or (Pooling.LAST if is_decoder else Pooling.MEAN)
    pooling = params.pooling or default
    name = Path(params.model_path).name
    mismatch = gguf_pooling not in (None, params.pooling)
    if params.pooling is not None and mismatch and warn_pooling:
        logger.warning(
            "%s was trained with %s pooling but is opened with %s pooling",
            name,
            gguf_pooling.value if gguf_pooling else "?",
            params.pooling.value,
        )
    if pooling is Pooling.RANK and not has_rank_head:
        raise RerankNotSupportedError(
            f"{name} has no classification head, so rank pooling is impossible: it is a "
            "bi-encoder; use embed() and cosine similarity"
        )
    trained = model.n_ctx_train or 512
    limit = min(trained, DECODER_DEFAULT_CTX) if is_decoder else trained
    n_ctx = min(params.n_ctx, trained) if params.n_ctx else limit
    # Every text must fit one micro-batch (encoders attend across it), so the
    # micro-batch holds at least a full context. A decoder's batch also fills its KV
    # cache, so it holds at most n_ctx tokens (llama.cpp cuts n_batch to n_ctx for
    # causal models). A micro-batch cannot hold more sequences than tokens, and
    # llama.cpp aborts (GGML_ASSERT in output_reserve) when n_seq_max exceeds it.
    n_ubatch = n_ctx if is_decoder else max(n_ctx, params.n_batch)
    end_token = _end_token(model, params, pooling, is_decoder, name)
    _warn_known_gaps(model, architecture, has_rank_head, name)
    fingerprint = file_fingerprint(model.path, pooling)
    if end_token is not None:
        fingerprint = hashlib.sha256(f"{fingerprint}+eos{end_token}".encode()).hexdigest()[:32]
    return Layout(
        architecture=architecture,
        is_decoder=is_decoder,
        gguf_pooling=gguf_pooling,
        has_rank_head=has_rank_head,
        pooling=pooling,
        n_ctx=n_ctx,
        n_ubatch=n_ubatch,
        budget=min(params.n_batch, n_ubatch),
        n_seq_max=min(params.n_seq_max, n_ubatch),
        fingerprint=fingerprint,
        end_token=end_token,
    )


# Rank pooling on these ends in a softmax over the yes/no rows: scores are probabilities.
PROBABILITY_RERANKERS = ("qwen3", "qwen3vl")


def _warn_known_gaps(model: Any, architecture: str, has_rank_head: bool, name: str) -> None:
    """Warn about published GGUFs known to lack a part of their model."""
    from .gguf_check import scan

    if architecture == "gemma-embedding" and "dense_2.weight" not in scan(model.path).tensors:
        logger.warning(
            "%s has no Dense projections (dense_2/dense_3): EmbeddingGemma's vectors pass "
            "through two after pooling, so these differ from the model's. Reconvert "
            "google/embeddinggemma-300m with `llamaembed convert` (llama.cpp #18677)",
            name,
        )
    label = " ".join(model.metadata.get(k, "") for k in ("general.name", "general.basename"))
    if (
        architecture in PROBABILITY_RERANKERS
        and not has_rank_head
        and "rerank" in f"{label} {name}".lower()
    ):
        logger.warning(
            "%s looks like a Qwen3-Reranker but has no yes/no head (cls.output): it was "
            "converted without it (llama.cpp #16407) and cannot rerank. Reconvert "
            "Qwen/Qwen3-Reranker with `llamaembed convert` (llama.cpp's converter)",
            name,
        )


def _end_token(
    model: Any, params: LlamaParams, pooling: Pooling, is_decoder: bool, name: str
) -> int | None:
    """Return the token to end every text with, or None; warn about a missing one.

    Last-token pooling reads the hidden state of the end-of-text token the model was
    trained with. A GGUF that does not add it gives vectors of the text's last word:
    worse, and silently so.
    """
    vocab = model.vocab
    wanted = params.append_eos
    if wanted is None:
        if pooling is Pooling.LAST and is_decoder and not vocab.add_eos:
            logger.warning(
                "%s does not add an end-of-text token, so last-token pooling reads each "
                "text's last word. If the model was trained with one (Qwen3-Embedding and "
                "gte-Qwen2 were: <|endoftext|>), open it with append_eos=True or the token "
                "(catalogue models do this); append_eos=False silences this warning",
                name,
            )
        return None
    if wanted is False:
        return None
    if wanted is True:
        if vocab.eos < 0:
            raise ValueError(f"{name} has no EOS token; name one: append_eos='<token>'")
        return int(vocab.eos)
    ids = model.tokenize(wanted, add_special=False, parse_special=True)
    if len(ids) != 1:
        raise ValueError(
            f"append_eos={wanted!r} is not one token of {name}'s vocabulary "
            f"(it tokenises to {len(ids)} tokens)"
        )
    return int(ids[0])


def plan_batches(lengths: Sequence[int], budget: int, max_seqs: int) -> list[list[int]]:
    """Group text indices into micro-batches: longest first, packed up to ``budget`` tokens.

    A text longer than the budget gets a micro-batch of its own; no micro-batch holds more
    than ``max_seqs`` texts.
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    used = 0
    for i in order:
        n = lengths[i]
        full = used + n > max(budget, lengths[current[0]]) if current else False
        if full or len(current) >= max_seqs:
            batches.append(current)
            current, used = [], 0
        current.append(i)
        used += n
    if current:
        batches.append(current)
    return batches
