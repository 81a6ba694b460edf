"""Search storage: the hnswlib + SQLite index, keyword selection, chunking and ingestion.

Modules here take any embedder (``store.index.Embedder``) and never import llama.cpp;
they may import ``llamaembed.errors``, ``llamaembed.engine.pooling`` and ``llamaembed._files``.
"""
