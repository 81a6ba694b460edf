"""llamaembed: private, small and fast embeddings and reranking with GGUF models on llama.cpp.

``import llamaembed`` does not load llama.cpp; the native library loads when a model
is first opened.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .chunking import Chunk, chunk_text
    from .convert import convert
    from .errors import (
        ConversionError,
        EmbeddingsDisabledError,
        EmptyInputError,
        IndexError_,
        IndexModelMismatchError,
        InferenceError,
        InputTooLongError,
        LlamaEmbedError,
        ModelLoadError,
        ModelNotCachedError,
        PoolingError,
        QuantizationError,
        RegistryError,
        RerankNotSupportedError,
    )
    from .index import Embedder, Hit, Index
    from .llama import Llama, RerankResult
    from .params import EmbedOptions, LlamaParams, Pooling
    from .pooling import cosine_similarity, l2_normalize, reciprocal_rank_fusion
    from .quantize import QUANT_TYPES, quantize

# Names load on first use (PEP 562), so `import llamaembed` and the CLI's start-up only
# pay for the modules they touch.
_LAZY = {
    "Chunk": "chunking",
    "ConversionError": "errors",
    "EmbedOptions": "params",
    "Embedder": "index",
    "EmbeddingsDisabledError": "errors",
    "EmptyInputError": "errors",
    "Hit": "index",
    "Index": "index",
    "IndexError_": "errors",
    "IndexModelMismatchError": "errors",
    "InferenceError": "errors",
    "InputTooLongError": "errors",
    "Llama": "llama",
    "LlamaEmbedError": "errors",
    "LlamaParams": "params",
    "ModelLoadError": "errors",
    "ModelNotCachedError": "errors",
    "Pooling": "params",
    "PoolingError": "errors",
    "QUANT_TYPES": "quantize",
    "QuantizationError": "errors",
    "RegistryError": "errors",
    "RerankNotSupportedError": "errors",
    "RerankResult": "llama",
    "chunk_text": "chunking",
    "convert": "convert",
    "cosine_similarity": "pooling",
    "l2_normalize": "pooling",
    "quantize": "quantize",
    "reciprocal_rank_fusion": "pooling",
}

__version__ = "0.1.0"

__all__ = [
    "QUANT_TYPES",
    "Chunk",
    "ConversionError",
    "EmbedOptions",
    "Embedder",
    "EmbeddingsDisabledError",
    "EmptyInputError",
    "Hit",
    "Index",
    "IndexError_",
    "IndexModelMismatchError",
    "InferenceError",
    "InputTooLongError",
    "Llama",
    "LlamaEmbedError",
    "LlamaParams",
    "ModelLoadError",
    "ModelNotCachedError",
    "Pooling",
    "PoolingError",
    "QuantizationError",
    "RegistryError",
    "RerankNotSupportedError",
    "RerankResult",
    "chunk_text",
    "convert",
    "cosine_similarity",
    "l2_normalize",
    "quantize",
    "reciprocal_rank_fusion",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'llamaembed' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*__all__, "__version__"])
