"""One file made ready for the model: read, hashed, cut into passages with their context.

``prepare_file`` does for one file what an ingest run does before the model: reads it
(binary files are left out), hashes it (an unchanged file is skipped), cuts it into
passages (``chunk_document``) and gives each its id, metadata and the context line the
model reads before it (``passage_context``). ``ahead`` runs it in a thread that keeps a
few files ready while the model works. Nothing here touches the model's weights or the
store.
"""

from __future__ import annotations

import hashlib
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..code.languages import Language, is_prose, language_for
from .chunking import LineChunk, chunk_document

__all__ = [
    "Chunking",
    "PreparedFile",
    "ahead",
    "file_size",
    "passage_context",
    "prepare_file",
    "remembered",
]


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


@dataclass
class PreparedFile:
    """One file read and chunked: its passages as stored and as the model reads them."""

    source: str
    size: int
    digest: str = ""
    status: str = "new"  # "new" (to embed), "unchanged", "binary"
    texts: list[str] = field(default_factory=list)
    embedded: list[str] = field(default_factory=list)
    metadatas: list[dict[str, Any]] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Chunking:
    """How the files of one run are cut: token limits, overlap, the token counter."""

    count_tokens: Callable[[str], int]
    limit: int
    prose_limit: int
    overlap: int | None
    folders: Sequence[Path]


def remembered(count_tokens: Callable[[str], int]) -> Callable[[str], int]:
    """Return ``count_tokens`` remembering short texts' counts for the whole run.

    The chunker counts a file's words one by one (``chunk_document``); a tree's words
    repeat from file to file, and counting one costs a tokenizer call.
    """
    counts: dict[str, int] = {}

    def counted(text: str) -> int:
        if len(text) > 64:
            return count_tokens(text)
        found = counts.get(text)
        if found is None:
            if len(counts) >= 1 << 18:
                counts.clear()
            found = counts[text] = count_tokens(text)
        return found

    return counted


def prepare_file(path: Path, known: dict[str, str], chunking: Chunking) -> PreparedFile:
    """Return a file read, hashed and (when new or changed) cut into passages."""
    source = str(path)
    read = _read_text(path)
    if read is None:
        return PreparedFile(source, path.stat().st_size, status="binary")
    text, digest = read
    prepared = PreparedFile(source, len(text), digest)
    if known.get(source) == digest:
        prepared.status = "unchanged"
        return prepared
    prose = is_prose(path)
    language = None if prose else language_for(path)
    shown = _shown_path(path.resolve(), chunking.folders)
    chunks = chunk_document(
        text,
        chunking.count_tokens,
        chunking.prose_limit if prose else chunking.limit,
        prose=prose,
        overlap=chunking.overlap,
        language=language,
    )
    for n, chunk in enumerate(chunks):
        prepared.texts.append(chunk.text)
        prepared.embedded.append(passage_context(shown, chunk.heading, chunk) + chunk.text)
        prepared.ids.append(f"{source}#{n}")
        prepared.metadatas.append(_passage_metadata(source, digest, n, chunk, language))
    return prepared


_DONE = object()


def ahead(
    items: Iterator[PreparedFile], depth: int, closed: threading.Event
) -> Iterator[PreparedFile]:
    """Yield ``items`` produced by a thread that keeps up to ``depth`` of them ready.

    The model lets go of the GIL while it decodes, so reading and chunking the next files
    overlap its work. An error in the thread is raised here; ``closed`` (set when the
    consumer stops early) ends the thread.
    """
    ready: queue.Queue[Any] = queue.Queue(maxsize=depth)

    def put(item: Any) -> bool:
        while not closed.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(_DONE)
        except BaseException as exc:  # handed to the consumer, raised there
            put(exc)

    thread = threading.Thread(target=produce, name="llamaembed-chunking", daemon=True)
    thread.start()
    try:
        while True:
            item = ready.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        closed.set()
        thread.join()


def file_size(path: Path) -> int:
    """Return a file's size in bytes (0 when it cannot be read)."""
    try:
        return path.stat().st_size
    except OSError:
        return 0
