"""Search storage: the hnswlib + SQLite index, the Milvus store, keywords, chunking, ingestion.

The pieces, each with its own state and job:

- ``encoder``: the document encoder (texts in, one typed ``Encoded`` batch out; queries);
- ``keywords``: the keyword schemes (BM25, learned sparse, hashed words, none);
- ``documents`` (SQLite) and ``graph`` (hnswlib): the two parts an ``Index`` composes,
  each owning its schema or file, its save and its load;
- ``index``, ``sharded``, ``milvus``: the stores (``base.VectorStore`` is what writers
  need of one); ``search``: the ranking they share, pure functions;
- ``manifest`` (generations on disk), ``lock`` (one writer a folder) and ``folder`` (an
  index folder kept open by a process that writes it more than once);
- ``selection`` (which files a folder's ignore rules choose), ``chunking``, ``snippet``,
  ``ingest``, ``parquet``, ``partition``: getting files and Parquet in, and showing what
  was found; ``watch``: keeping a folder index in step with its files.

Modules here take any embedder and never import llama.cpp; they may import
``llamaembed.errors``, ``llamaembed.outputs``, ``llamaembed.engine`` pure functions and
``llamaembed._files``. pymilvus is imported only when a ``MilvusStore`` opens. No import
circles, type-only imports counted (``tests/test_architecture.py``).
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
