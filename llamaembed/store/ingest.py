"""Index a tree of text files: chunk, embed, and skip files whose content has not changed."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..code.languages import Language, is_prose, language_for
from ..embedder import Embedder
from .base import VectorStore
from .chunking import LineChunk, chunk_document
from .selection import FileRules, select_files

__all__ = ["IngestReport", "indexed_files", "ingest_files"]


@dataclass(frozen=True)
class IngestReport:
    """What an ingest run did."""

    indexed_files: int
    chunks: int
    unchanged_files: int
    removed_files: int
    skipped_files: tuple[str, ...]
    excluded_files: int = 0  # indexed before, now left out by the rules

    @property
    def changed(self) -> bool:
        """Return True when the run added or removed passages."""
        return bool(self.indexed_files or self.removed_files or self.excluded_files)


def indexed_files(store: VectorStore) -> dict[str, int]:
    """Return each indexed file's path (its passages' ``source``) and its passage count."""
    counts: dict[str, int] = {}
    for _, meta in store.iter_metadata():
        source = meta.get("source")
        if source is not None:
            counts[str(source)] = counts.get(str(source), 0) + 1
    return dict(sorted(counts.items()))


def _read_text(path: Path) -> tuple[str, str] | None:
    data = path.read_bytes()
    if b"\x00" in data[:8192]:
        return None  # binary
    return data.decode("utf-8", "replace"), hashlib.sha256(data).hexdigest()


def passage_context(path: Path, heading: str, chunk: LineChunk | None = None) -> str:
    """Return the line the model reads before a passage: its file, and where in the file.

    A passage alone often lacks what it is about ("it takes a list"); the file name and the
    section title say it, so a question finds the section that answers it. ``path`` is
    the file's path as the reader should see it (relative to the folder indexed). Code
    cut by syntax names the symbol path instead of headings ("client.py › Client ›
    send"), and a later piece of a long definition adds the definition's first line.
    """
    if chunk is not None and chunk.symbol:
        lead = f"{path.as_posix()} › {chunk.symbol}\n"
        return lead + (f"{chunk.signature}\n" if chunk.signature else "")
    name = path.as_posix() if chunk is not None and chunk.kind else path.name
    return f"{name}: {heading}\n" if heading else f"{name}\n"


def _passage_metadata(
    source: str, digest: str, n: int, chunk: LineChunk, language: Language | None
) -> dict[str, Any]:
    """Return a passage's metadata: its file, place, heading and, for code, what it defines."""
    meta: dict[str, Any] = {
        "source": source,
        "sha256": digest,
        "chunk": n,
        "start": chunk.start,
        "end": chunk.end,
        "line_start": chunk.line_start,
        "line_end": chunk.line_end,
    }
    if chunk.heading:
        meta["heading"] = chunk.heading
    if language is not None:
        meta["language"] = language.name
    if chunk.kind:  # cut by syntax
        meta["symbol"] = chunk.symbol
        meta["kind"] = chunk.kind
        meta["defines"] = list(chunk.defines)
    return meta


def _shown_path(path: Path, folders: Sequence[Path]) -> Path:
    """Return a file's path relative to the folder given that holds it (else its name)."""
    for folder in folders:
        if path.is_relative_to(folder):
            return path.relative_to(folder)
    return Path(path.name)


def _prune(
    index: VectorStore,
    known: Iterable[str],
    chosen: set[str],
    folders: Sequence[Path],
    prune_missing: bool,
) -> tuple[int, int]:
    """Delete the passages of indexed files that are gone, or that the rules now leave out.

    Returns (files removed because they no longer exist, files now excluded: still there,
    under a folder walked, but not chosen).
    """
    removed = excluded = 0
    for source in known:
        if source in chosen:
            continue
        path = Path(source)
        if path.exists() and any(path.is_relative_to(f) for f in folders):
            excluded += 1
        elif not path.exists() and prune_missing:
            removed += 1
        else:
            continue
        index.delete(index.ids_where(source=source))
    return removed, excluded


def ingest_files(
    index: VectorStore,
    embedder: Embedder,
    paths: Sequence[str | os.PathLike[str]],
    *,
    rules: FileRules | None = None,
    skip: Sequence[Path] = (),
    max_tokens: int | None = None,
    overlap: int | None = None,
    show_progress: bool = False,
    prune_missing: bool = True,
) -> IngestReport:
    """Chunk, embed and add files to the index; files with unchanged content are skipped.

    ``paths`` are files and folders: a file named is read; a folder's files are those
    ``rules`` choose (``store.selection``; default ``FileRules()``: .gitignore files
    honoured, hidden files skipped), leaving out the folders in ``skip``. Passages of
    files under a given folder that the rules no longer choose are removed and counted
    in ``excluded_files``.

    Chunks are whole lines (``chunk_document``): prose (``code.languages.is_prose``) in
    passages of at most 128 tokens cut at paragraphs and headings, code in passages of at
    most 256 cut between definitions (``max_tokens`` sets both; less if the model's context
    is shorter).
    The model reads each after a context line (``passage_context``: file name, headings);
    the index keeps the passage itself. Each chunk's id is ``"{path}#{n}"``; its metadata
    holds ``source``, ``sha256``, ``chunk``, ``start`` and ``end`` (character offsets),
    ``line_start`` and ``line_end`` (1-based, inclusive) and, in prose under a heading,
    ``heading``. With ``prune_missing``, chunks of files that no longer exist are removed.
    """
    files = select_files(paths, rules, skip)
    folders = [Path(p).resolve() for p in paths if Path(p).is_dir()]
    known: dict[str, str] = {}
    for _, meta in index.iter_metadata():
        if "source" in meta:
            known[meta["source"]] = meta.get("sha256", "")
    # Room for [CLS] … [SEP]; and at most 256 tokens by default: sentence embedders are
    # trained on passages that long (all-MiniLM-L6-v2's max_seq_length), and attention
    # cost grows with the square of the length.
    # (and room for the context line: about 24 tokens)
    limit = max_tokens or max(16, min(256, embedder.max_tokens - 2 - 24))
    # Prose: shorter passages, each about one thing, match a question better (measured in
    # benchmarks/search_quality.py on this repository's README: MRR 0.44 -> 0.56).
    prose_limit = max_tokens or min(128, limit)

    texts: list[str] = []
    embedded: list[str] = []  # what the model reads: the passage after its context line
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
        prose = is_prose(path)
        language = None if prose else language_for(path)
        shown = _shown_path(path.resolve(), folders)
        for n, chunk in enumerate(
            chunk_document(
                text,
                embedder.count_tokens,
                prose_limit if prose else limit,
                prose=prose,
                overlap=overlap,
                language=language,
            )
        ):
            texts.append(chunk.text)
            embedded.append(passage_context(shown, chunk.heading, chunk) + chunk.text)
            ids.append(f"{source}#{n}")
            metadatas.append(_passage_metadata(source, digest, n, chunk, language))
        indexed += 1
    removed, excluded = _prune(index, known, {str(f) for f in files}, folders, prune_missing)
    if texts:  # every output the store keeps, from one pass over what the model reads
        encoded = index.encoder.documents(embedded, show_progress=show_progress)
        index.add_encoded(encoded, texts, metadatas, ids)
    return IngestReport(indexed, len(texts), unchanged, removed, tuple(skipped), excluded)
