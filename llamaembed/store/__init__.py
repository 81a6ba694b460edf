"""Search storage: the hnswlib + SQLite index, the Milvus store, keywords, chunking, ingestion.

Modules here take any embedder (``store.index.Embedder``) and never import llama.cpp;
they may import ``llamaembed.errors``, ``llamaembed.engine.pooling`` and ``llamaembed._files``.
pymilvus is imported only when a ``MilvusStore`` opens.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .index import Index
    from .milvus import MilvusStore
    from .search import Hit
    from .sharded import ShardedIndex

_LAZY = {"Hit": "search", "Index": "index", "MilvusStore": "milvus", "ShardedIndex": "sharded"}

__all__ = ["Hit", "Index", "MilvusStore", "ShardedIndex"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)
