"""Adapters for the frameworks users already build retrieval in: LangChain and LlamaIndex.

Each module imports its framework when it is imported itself, never elsewhere, so
``import llamaembed`` works without them. The adapters stay thin: they translate between
the framework's types and our ``Embedder``, ``Index`` and ``Hit``; every behaviour lives in
the library. May import any layer below (embedder, hub, store); nothing imports this.
"""
