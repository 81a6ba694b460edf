"""Index a tree of text files: chunk, embed, and skip files whose content has not changed.

A run is a pipeline: a thread reads, hashes and chunks the next files (``store.prepare``) while
the model embeds the current group of passages, gathered across files so that the model's
batches are full and sorted by length. A file's passages enter the index together (its
old passages leave in the same step), so every commit holds whole files; a run given a
``checkpoint`` commits every ``checkpoint_every`` seconds, and a stopped run (``stop``
set, or killed) resumes on the next run: committed files are skipped by their hash.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..embedder import Embedder
from .base import VectorStore
from .prepare import (
    Chunking,
    PreparedFile,
    ahead,
    file_size,
    passage_context,
    prepare_file,
    remembered,
)
from .progress import BuildProgress, ProgressDisplay, RunCounts
from .selection import FileRules, select_files

__all__ = ["IngestReport", "indexed_files", "ingest_files", "passage_context"]


@dataclass(frozen=True)
class IngestReport:
    """What an ingest run did."""

    indexed_files: int
    chunks: int
    unchanged_files: int
    removed_files: int
    skipped_files: tuple[str, ...]
    excluded_files: int = 0  # indexed before, now left out by the rules
    complete: bool = True  # False: stopped before every chosen file was indexed
    files_total: int = 0  # files chosen (indexed, unchanged, skipped or not reached)

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
    checkpoint: Callable[[BuildProgress], None] | None = None,
    checkpoint_every: float = 60.0,
    stop: threading.Event | None = None,
    group_passages: int = 128,
    progress_interval: float = 60.0,
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

    The model embeds groups of at least ``group_passages`` passages gathered across files
    (whole files, in the order chosen) while a thread chunks the next ones.
    ``checkpoint(progress)`` is called (a commit, for an index folder) between groups, at
    least every ``checkpoint_every`` seconds, and once at the end; when ``stop`` is set
    the run ends at the next group boundary (an unfinished group is left for the next run),
    checkpoints, and reports ``complete=False``. ``show_progress``: a bar on a terminal,
    else a line on stderr every ``progress_interval`` seconds.

    llama.cpp's vectors of a passage differ in the fourth decimal with the batch it is
    embedded in, so a group's files are added, committed and skipped together: a run that
    resumes after a stop or a kill starts at a group boundary of the run it continues and
    forms the same groups, and its index equals an uninterrupted run's.
    """
    files = select_files(paths, rules, skip)
    folders = [Path(p).resolve() for p in paths if Path(p).is_dir()]
    known: dict[str, str] = {}
    for _, meta in index.iter_metadata():
        if "source" in meta:
            known[meta["source"]] = meta.get("sha256", "")
    # Room for [CLS] … [SEP] and the context line (about 24 tokens); at most 256 tokens by
    # default: sentence embedders are trained on passages that long (all-MiniLM-L6-v2's
    # max_seq_length), and attention cost grows with the square of the length.
    limit = max_tokens or max(16, min(256, embedder.max_tokens - 2 - 24))
    # Prose: shorter passages, each about one thing, match a question better (measured in
    # benchmarks/search_quality.py on this repository's README: MRR 0.44 -> 0.56).
    prose_limit = max_tokens or min(128, limit)
    chunking = Chunking(remembered(embedder.count_tokens), limit, prose_limit, overlap, folders)

    # removed and excluded files leave first: every commit of this run is without them
    removed, excluded = _prune(index, known, {str(f) for f in files}, folders, prune_missing)
    counts = RunCounts(len(files), sum(file_size(f) for f in files))
    display = ProgressDisplay(counts, interval=progress_interval) if show_progress else None
    run = _GroupedRun(index, counts, group_passages)
    last_commit = time.monotonic()
    complete = False
    closed = threading.Event()
    try:
        for file in ahead((prepare_file(path, known, chunking) for path in files), 64, closed):
            run.take(file)
            if display is not None:
                display.update()
            if checkpoint is not None and time.monotonic() - last_commit >= checkpoint_every:
                checkpoint(counts.snapshot())
                last_commit = time.monotonic()
            if stop is not None and stop.is_set():
                break  # the files of an unfinished group wait for the next run
        else:
            run.embed_group()
            complete = True
    finally:
        closed.set()
        if display is not None:
            display.close()
    if checkpoint is not None:
        checkpoint(counts.snapshot(complete))
    return IngestReport(
        run.indexed,
        counts.passages,
        run.unchanged,
        removed,
        tuple(run.skipped),
        excluded,
        complete=complete,
        files_total=len(files),
    )


class _GroupedRun:
    """The files of a run as they come: groups of new files embedded and added together."""

    def __init__(self, index: VectorStore, counts: RunCounts, group_passages: int) -> None:
        self.index = index
        self.counts = counts
        self.group_passages = group_passages
        self.group: list[PreparedFile] = []
        self.indexed = self.unchanged = 0
        self.skipped: list[str] = []

    def take(self, file: PreparedFile) -> None:
        """Count a file skipped, or add it to the group (embedded once the group is full)."""
        if file.status == "new":
            self.group.append(file)
        else:
            if file.status == "binary":
                self.skipped.append(file.source)
            else:
                self.unchanged += 1
            self.counts.files_done += 1
            self.counts.bytes_done += file.size
        if sum(len(f.embedded) for f in self.group) >= self.group_passages:
            self.embed_group()

    def embed_group(self) -> None:
        """Embed the group's passages in one pass and put its files in the index."""
        group, index, counts = self.group, self.index, self.counts
        embedded = [text for file in group for text in file.embedded]
        if embedded:  # every output the store keeps, from one pass over what the model reads
            encoded = index.encoder.documents(embedded)
            for file in group:  # a changed file's old passages leave in the same step
                index.delete(index.ids_where(source=file.source))
            texts = [t for file in group for t in file.texts]
            metadatas = [m for file in group for m in file.metadatas]
            ids = [i for file in group for i in file.ids]
            index.add_encoded(encoded, texts, metadatas, ids)
        self.indexed += len(group)
        size = sum(file.size for file in group)
        counts.files_done += len(group)
        counts.passages += len(embedded)
        counts.bytes_done += size
        counts.bytes_embedded += size
        group.clear()
