"""Index a tree of text files: chunk, embed, and skip files whose content has not changed."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..embedder import Embedder
from .chunking import chunk_text
from .index import Index
from .m3 import needs_m3

__all__ = ["TEXT_SUFFIXES", "IngestReport", "collect_files", "ingest_files"]

TEXT_SUFFIXES = frozenset(
    [
        ".txt",
        ".md",
        ".markdown",
        ".rst",
        ".adoc",
        ".org",
        ".tex",
        ".py",
        ".pyi",
        ".js",
        ".ts",
        ".tsx",
        ".jsx",
        ".java",
        ".kt",
        ".go",
        ".rs",
        ".c",
        ".h",
        ".cc",
        ".cpp",
        ".hpp",
        ".cs",
        ".rb",
        ".php",
        ".swift",
        ".scala",
        ".sh",
        ".bash",
        ".zsh",
        ".sql",
        ".html",
        ".htm",
        ".css",
        ".xml",
        ".json",
        ".yaml",
        ".yml",
        ".toml",
        ".ini",
        ".cfg",
        ".csv",
        ".tsv",
        ".log",
    ]
)
_SKIP_DIRS = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        ".venv",
        "venv",
        "node_modules",
        "__pycache__",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".tox",
        "build",
        "dist",
    }
)


@dataclass(frozen=True)
class IngestReport:
    """What an ingest run did."""

    indexed_files: int
    chunks: int
    unchanged_files: int
    removed_files: int
    skipped_files: tuple[str, ...]


def collect_files(
    paths: Iterable[str | os.PathLike[str]], exclude: Path | None = None
) -> list[Path]:
    """Return text-like files under the given files and folders, sorted, without duplicates."""
    found: set[Path] = set()
    excluded = exclude.resolve() if exclude is not None else None
    for raw in paths:
        path = Path(raw)
        if path.is_file():
            found.add(path.resolve())
            continue
        if not path.is_dir():
            raise FileNotFoundError(f"no such file or folder: {path}")
        for folder, dirs, files in os.walk(path):
            here = Path(folder).resolve()
            dirs[:] = sorted(
                d
                for d in dirs
                if d not in _SKIP_DIRS and not d.startswith(".") and here / d != excluded
            )
            for name in files:
                file = here / name
                if file.suffix.lower() in TEXT_SUFFIXES:
                    found.add(file)
    return sorted(found)


def _read_text(path: Path) -> tuple[str, str] | None:
    data = path.read_bytes()
    if b"\x00" in data[:8192]:
        return None  # binary
    return data.decode("utf-8", "replace"), hashlib.sha256(data).hexdigest()


def ingest_files(
    index: Index,
    embedder: Embedder,
    files: Sequence[Path],
    *,
    max_tokens: int | None = None,
    overlap: int | None = None,
    show_progress: bool = False,
    prune_missing: bool = True,
) -> IngestReport:
    """Chunk, embed and add files to the index; files with unchanged content are skipped.

    Chunks hold at most ``max_tokens`` tokens (default: 256, or less if the model's
    context is shorter). Each chunk's id is ``"{path}#{n}"``; its metadata holds
    ``source``, ``sha256``, ``chunk``, ``start`` and ``end`` (character offsets). With
    ``prune_missing``, chunks of files that no longer exist are removed.
    """
    known: dict[str, str] = {}
    for _, meta in index.iter_metadata():
        if "source" in meta:
            known[meta["source"]] = meta.get("sha256", "")
    # Room for [CLS] … [SEP]; and at most 256 tokens by default: sentence embedders are
    # trained on passages that long (all-MiniLM-L6-v2's max_seq_length), and attention
    # cost grows with the square of the length.
    limit = max_tokens or max(16, min(256, embedder.max_tokens - 2))

    texts: list[str] = []
    metadatas: list[dict[str, Any]] = []
    ids: list[str] = []
    unchanged = indexed = 0
    skipped: list[str] = []
    for path in files:
        source = str(path)
        read = _read_text(path)
        if read is None:
            skipped.append(source)
            continue
        text, digest = read
        if known.get(source) == digest:
            unchanged += 1
            continue
        index.delete(index.ids_where(source=source))
        for n, chunk in enumerate(chunk_text(text, embedder.count_tokens, limit, overlap)):
            texts.append(chunk.text)
            ids.append(f"{source}#{n}")
            metadatas.append(
                {
                    "source": source,
                    "sha256": digest,
                    "chunk": n,
                    "start": chunk.start,
                    "end": chunk.end,
                }
            )
        indexed += 1
    removed = 0
    if prune_missing:
        for source in known:
            if not Path(source).exists():
                index.delete(index.ids_where(source=source))
                removed += 1
    if texts and index.embedder is not None and needs_m3(index):
        index.add(texts, metadatas, ids)  # bge-m3: dense, lexical and ColBERT from one pass
    elif texts:
        vectors = embedder.embed_documents(
            texts, show_progress=show_progress, dimensions=index.dimensions
        )
        index.add_vectors(vectors, texts, metadatas, ids)
    return IngestReport(indexed, len(texts), unchanged, removed, tuple(skipped))
