"""Plain, picklable parameters: how to open a model and how to embed."""

from __future__ import annotations

import numbers
import os
from dataclasses import dataclass, replace
from enum import Enum

__all__ = ["EmbedOptions", "LlamaParams", "Pooling", "check_int", "default_threads"]


def check_int(name: str, value: object, low: int, high: int | None = None) -> int:
    """Return ``value`` as an int, raising ValueError unless it is an integer in [low, high].

    Python and numpy integers pass; bools, floats and strings do not.
    """
    number = int(value) if isinstance(value, numbers.Integral) else None
    too_high = high is not None and number is not None and number > high
    if isinstance(value, bool) or number is None or number < low or too_high:
        bound = f"{low}..{high}" if high is not None else f"at least {low}"
        raise ValueError(f"{name} must be an integer {bound}, got {value!r}")
    return number


class Pooling(str, Enum):
    """How token vectors become one vector per text (llama.cpp's pooling types)."""

    NONE = "none"
    MEAN = "mean"
    CLS = "cls"
    LAST = "last"
    RANK = "rank"

    @classmethod
    def parse(cls, value: Pooling | str | int) -> Pooling:
        """Return the Pooling for an enum, a name ("cls") or llama.cpp's integer code."""
        if isinstance(value, Pooling):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            for pooling, code in _LLAMA_CODES.items():
                if code == value:
                    return pooling
            raise ValueError(f"unknown llama.cpp pooling code {value}")
        if isinstance(value, str):
            try:
                return cls(value.strip().lower())
            except ValueError:
                pass
        valid = ", ".join(p.value for p in cls)
        raise ValueError(f"unknown pooling {value!r}; choose one of: {valid}")

    @property
    def llama_code(self) -> int:
        """Return llama.cpp's ``LLAMA_POOLING_TYPE_*`` value."""
        return _LLAMA_CODES[self]


_LLAMA_CODES = {
    Pooling.NONE: 0,
    Pooling.MEAN: 1,
    Pooling.CLS: 2,
    Pooling.LAST: 3,
    Pooling.RANK: 4,
}


def default_threads() -> int:
    """Return the threads a model runs on when none are asked for: the cores, at most 8."""
    return max(1, min(os.cpu_count() or 1, 8))


@dataclass(frozen=True)
class LlamaParams:
    """Everything needed to (re)open a model; safe to pickle and send to another process.

    ``pooling=None`` means "what the GGUF's metadata says". ``n_ctx=0`` means the model's
    trained context. ``n_batch`` is the target number of tokens per llama.cpp micro-batch:
    short texts are packed together up to it (a text longer than it gets a batch of its
    own). Encoders attend across the whole micro-batch, so small batches are faster.
    ``n_gpu_layers`` offloads that many layers to the GPU (0 = CPU only, -1 = all);
    ``main_gpu`` picks the device. A build without a GPU backend warns and runs on the CPU.
    ``n_contexts`` spreads a batch of several micro-batches over that many llama.cpp
    contexts sharing the model and the threads (0 = ``engine.hardware.choose_contexts``:
    two on a CPU with two or more threads, one on a GPU); a single micro-batch always runs
    on one context with every thread.
    ``append_eos`` ends every text with an end-of-text token for last-token pooling:
    None follows the GGUF (and warns when a decoder with last pooling adds none), True
    appends the vocabulary's EOS, a string appends that special token (Qwen3-Embedding and
    gte-Qwen2 were trained with ``"<|endoftext|>"``), False never appends one.
    """

    model_path: str
    pooling: Pooling | None = None
    n_ctx: int = 0
    n_batch: int = 128
    n_seq_max: int = 64
    n_threads: int = 0
    embeddings: bool = True
    flash_attn: bool = True
    verbose: bool = False
    query_prefix: str = ""
    document_prefix: str = ""
    n_gpu_layers: int = 0
    main_gpu: int = 0
    append_eos: bool | str | None = None
    n_contexts: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "model_path", os.fspath(self.model_path))
        if self.pooling is not None:
            object.__setattr__(self, "pooling", Pooling.parse(self.pooling))
        for name in ("n_ctx", "n_batch", "n_seq_max", "n_threads", "n_contexts"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
        if self.n_batch < 8:
            raise ValueError(f"n_batch must be at least 8, got {self.n_batch}")
        layers, gpu = self.n_gpu_layers, self.main_gpu
        if isinstance(layers, bool) or not isinstance(layers, int) or layers < -1:
            raise ValueError(f"n_gpu_layers must be an integer >= -1, got {layers!r}")
        if isinstance(gpu, bool) or not isinstance(gpu, int) or gpu < 0:
            raise ValueError(f"main_gpu must be a device index >= 0, got {gpu!r}")
        if self.append_eos is not None and not isinstance(self.append_eos, (bool, str)):
            raise ValueError(f"append_eos must be None, a bool or a token, got {self.append_eos!r}")
        if self.append_eos == "":
            raise ValueError("append_eos must name a token, got ''")
        if not 1 <= self.n_seq_max <= 256:
            raise ValueError(f"n_seq_max must be between 1 and 256, got {self.n_seq_max}")

    @property
    def threads(self) -> int:
        """Return the thread count to use (``n_threads`` or a default from the CPU count)."""
        return self.n_threads or default_threads()

    def with_n_contexts(self, n_contexts: int) -> LlamaParams:
        """Return a copy spreading large batches over ``n_contexts`` contexts (0 = the rule)."""
        return replace(self, n_contexts=n_contexts)

    def with_n_ctx(self, n_ctx: int) -> LlamaParams:
        """Return a copy with another context length (0 = the model's)."""
        return replace(self, n_ctx=n_ctx)

    def with_pooling(self, pooling: Pooling | str | None) -> LlamaParams:
        """Return a copy with another pooling (None = the GGUF's)."""
        return replace(self, pooling=None if pooling is None else Pooling.parse(pooling))

    def with_n_threads(self, n_threads: int) -> LlamaParams:
        """Return a copy with another thread count (0 = automatic)."""
        return replace(self, n_threads=n_threads)

    def with_n_batch(self, n_batch: int) -> LlamaParams:
        """Return a copy with another micro-batch token target."""
        return replace(self, n_batch=n_batch)

    def with_n_gpu_layers(self, n_gpu_layers: int) -> LlamaParams:
        """Return a copy offloading that many layers to the GPU (0 = CPU, -1 = all)."""
        return replace(self, n_gpu_layers=n_gpu_layers)

    def with_main_gpu(self, main_gpu: int) -> LlamaParams:
        """Return a copy that uses another GPU device index."""
        return replace(self, main_gpu=main_gpu)


@dataclass(frozen=True)
class EmbedOptions:
    """Per-call embedding options.

    ``normalize`` L2-normalises each vector; ``start_token=False`` leaves the BOS/CLS
    token out of the input; ``truncate=False`` raises InputTooLongError instead of
    cutting a text that does not fit the context.
    """

    normalize: bool = True
    start_token: bool = True
    truncate: bool = True

    def with_normalize(self, normalize: bool) -> EmbedOptions:
        """Return a copy with normalisation on or off."""
        return replace(self, normalize=normalize)
