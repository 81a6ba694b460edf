"""Saving and opening an ``Index`` folder (the format is in ``store.manifest``)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import SearchIndexError
from . import manifest as disk
from .m3 import SCHEMA

if TYPE_CHECKING:
    from ..embedder import Embedder
    from .index import Index

__all__ = ["load_index", "save_index"]


def save_index(index: Index, root: Path) -> Path:
    """Write the index to a folder atomically (the previous save stays until replaced)."""
    root.mkdir(parents=True, exist_ok=True)
    with index._lock:
        generation = max(disk.generation_number(root), index._generation) + 1
        data = disk.new_generation(root, generation)
        index._hnsw.save_index(str(data / "vectors.hnsw"))
        index._db.commit()  # a backup waits forever on an open write transaction
        target = sqlite3.connect(data / "store.sqlite")
        try:
            index._db.backup(target)
        finally:
            target.close()
        settings = {
            "dim": index.dim,
            "space": index.space,
            "normalized": index.space == "cosine",
            "count": len(index),
            "model": index.model,
            "keywords": index.keywords,
            "colbert": index.colbert,
            "dimensions": index.dimensions,
            "hnsw": {
                "M": index.M,
                "ef_construction": index.ef_construction,
                "ef": index._ef,
                "capacity": int(index._hnsw.get_max_elements()),
                "exact_threshold": index.exact_threshold,
            },
        }
        disk.commit_generation(root, data, settings)
        index._generation = generation
    return root


def load_index(cls: type[Index], root: Path, embedder: Embedder | None) -> Index:
    """Open a saved index; with a model, check it is the one that built the index."""
    manifest, data = disk.read_manifest(root)
    disk.check_model(manifest, embedder.fingerprint if embedder is not None else None, root)
    hnsw = manifest["hnsw"]
    options: dict[str, Any] = {
        "dim": int(manifest["dim"]),
        "space": manifest["space"],
        "M": int(hnsw["M"]),
        "ef_construction": int(hnsw["ef_construction"]),
        "ef": int(hnsw["ef"]),
        "capacity": 16,
        "exact_threshold": int(hnsw.get("exact_threshold", 20_000)),
        "keywords": manifest.get("keywords", "bm25"),  # indexes before bge-m3: BM25
        "dimensions": manifest.get("dimensions"),  # Matryoshka width, None = the model's
    }
    try:
        index = cls(embedder, **options)
    except (ValueError, KeyError, TypeError) as exc:
        raise SearchIndexError(f"{root / disk.MANIFEST} holds invalid settings: {exc}") from exc
    index.colbert = bool(manifest.get("colbert", False))
    index.model = manifest.get("model", {})
    index._generation = int(manifest["generation"].split("-")[1])
    try:
        import hnswlib

        index._hnsw = hnswlib.Index(space=index.space, dim=index.dim)
        index._hnsw.load_index(str(data / "vectors.hnsw"), max_elements=int(hnsw["capacity"]))
        index._hnsw.set_ef(index._ef)
        source = sqlite3.connect(f"file:{data / 'store.sqlite'}?mode=ro", uri=True)
        index._db = sqlite3.connect(":memory:", check_same_thread=False)
        source.backup(index._db)
        source.close()
        index._db.executescript(SCHEMA)  # an index saved before the bge-m3 tables
        index._size = int(index._db.execute("SELECT count(*) FROM docs").fetchone()[0])
    except (RuntimeError, sqlite3.Error, OSError) as exc:
        raise SearchIndexError(f"cannot read the index at {root}: {exc}") from exc
    return index
