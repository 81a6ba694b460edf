"""llamaembed: private, small and fast embeddings and reranking with GGUF models on llama.cpp.

``import llamaembed`` does not load llama.cpp; the native library loads when a model
is first opened.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .conversion import convert
    from .conversion.quantize import QUANT_TYPES, quantize
    from .distributed.ray import embed_dataset
    from .embedder import Capabilities, Embedder, ModelFacts
    from .engine.llama import Llama
    from .engine.m3 import colbert_score, lexical_matching_score
    from .engine.pairs import RerankResult
    from .engine.pooling import cosine_similarity, l2_normalize, reciprocal_rank_fusion
    from .errors import (
        ConversionError,
        DatasetError,
        EmbeddingsDisabledError,
        EmptyInputError,
        IndexError_,
        IndexLockedError,
        IndexModelMismatchError,
        InferenceError,
        InputTooLongError,
        InvalidTokenError,
        KeywordsError,
        LlamaEmbedError,
        MissingHeadError,
        ModelLoadError,
        ModelNotCachedError,
        PoolingError,
        QuantizationError,
        QueueFullError,
        RegistryError,
        RequestTooLargeError,
        RerankNotSupportedError,
        SearchIndexError,
    )
    from .outputs import Output, SparseVector, Want
    from .params import EmbedOptions, LlamaParams, Pooling
    from .static.distill import distill
    from .static.model import StaticModel
    from .store.chunking import Chunk, chunk_text
    from .store.index import Index
    from .store.milvus import MilvusStore
    from .store.search import Hit
    from .store.sharded import ShardedIndex

# Names load on first use (PEP 562), so `import llamaembed` and the CLI's start-up only
# pay for the modules they touch.
_LAZY = {
    "Capabilities": "embedder",
    "Chunk": "store.chunking",
    "ConversionError": "errors",
    "DatasetError": "errors",
    "EmbedOptions": "params",
    "Embedder": "embedder",
    "ModelFacts": "embedder",
    "Output": "outputs",
    "SparseVector": "outputs",
    "Want": "outputs",
    "EmbeddingsDisabledError": "errors",
    "EmptyInputError": "errors",
    "Hit": "store.search",
    "Index": "store.index",
    "IndexError_": "errors",
    "IndexLockedError": "errors",
    "IndexModelMismatchError": "errors",
    "KeywordsError": "errors",
    "InferenceError": "errors",
    "InputTooLongError": "errors",
    "InvalidTokenError": "errors",
    "Llama": "engine.llama",
    "LlamaEmbedError": "errors",
    "LlamaParams": "params",
    "MilvusStore": "store.milvus",
    "MissingHeadError": "errors",
    "ModelLoadError": "errors",
    "ModelNotCachedError": "errors",
    "Pooling": "params",
    "PoolingError": "errors",
    "QUANT_TYPES": "conversion.quantize",
    "QuantizationError": "errors",
    "QueueFullError": "errors",
    "RequestTooLargeError": "errors",
    "RegistryError": "errors",
    "RerankNotSupportedError": "errors",
    "RerankResult": "engine.pairs",
    "SearchIndexError": "errors",
    "ShardedIndex": "store.sharded",
    "StaticModel": "static.model",
    "chunk_text": "store.chunking",
    "colbert_score": "engine.m3",
    "convert": "conversion",
    "cosine_similarity": "engine.pooling",
    "distill": "static.distill",
    "embed_dataset": "distributed.ray",
    "l2_normalize": "engine.pooling",
    "lexical_matching_score": "engine.m3",
    "quantize": "conversion.quantize",
    "reciprocal_rank_fusion": "engine.pooling",
}

__version__ = "0.1.0"

__all__ = [
    "QUANT_TYPES",
    "Capabilities",
    "Chunk",
    "ConversionError",
    "DatasetError",
    "EmbedOptions",
    "Embedder",
    "EmbeddingsDisabledError",
    "EmptyInputError",
    "Hit",
    "Index",
    "IndexError_",
    "IndexLockedError",
    "IndexModelMismatchError",
    "InferenceError",
    "InputTooLongError",
    "InvalidTokenError",
    "KeywordsError",
    "Llama",
    "LlamaEmbedError",
    "LlamaParams",
    "MilvusStore",
    "MissingHeadError",
    "ModelFacts",
    "ModelLoadError",
    "ModelNotCachedError",
    "Output",
    "Pooling",
    "PoolingError",
    "QuantizationError",
    "QueueFullError",
    "RegistryError",
    "RequestTooLargeError",
    "RerankNotSupportedError",
    "RerankResult",
    "SearchIndexError",
    "ShardedIndex",
    "SparseVector",
    "StaticModel",
    "Want",
    "chunk_text",
    "colbert_score",
    "convert",
    "cosine_similarity",
    "distill",
    "embed_dataset",
    "l2_normalize",
    "lexical_matching_score",
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
