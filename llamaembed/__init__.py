"""llamaembed: private, small and fast embeddings and reranking with GGUF models on llama.cpp.

``import llamaembed`` does not load llama.cpp; the native library loads when a model
is first opened.
"""

from __future__ import annotations

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
