"""llamaembed: private, small and fast embeddings and reranking with GGUF models on llama.cpp.

``import llamaembed`` does not load llama.cpp; the native library loads when a model
is first opened.
"""

from __future__ import annotations

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
from .llama import Llama, RerankResult
from .params import EmbedOptions, LlamaParams, Pooling
from .pooling import cosine_similarity, l2_normalize
from .quantize import QUANT_TYPES, quantize

__version__ = "0.1.0"

__all__ = [
    "QUANT_TYPES",
    "ConversionError",
    "EmbedOptions",
    "EmbeddingsDisabledError",
    "EmptyInputError",
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
    "convert",
    "cosine_similarity",
    "l2_normalize",
    "quantize",
]
