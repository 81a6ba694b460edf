"""Split long documents into overlapping passages that fit a model's context."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..code.languages import Language
    from ..code.passages import CodeSpan

__all__ = ["Chunk", "LineChunk", "chunk_document", "chunk_text"]

_WORD = re.compile(r"\S+")


@dataclass(frozen=True)
class Chunk:
    """A passage of a document and its character span ``text[start:end]``."""

    text: str
    start: int
    end: int


@dataclass(frozen=True)
class LineChunk(Chunk):
    """A passage of whole lines: its text, character span, 1-based line range and headings.

    ``heading`` is the path of Markdown headings above it ("Server > Routes"), or "".
    Code cut by syntax also says what the passage is: ``symbol`` (its symbol path,
    "Client › send"), ``kind`` ("function", "class", …, "code" for lines that define
    nothing), ``defines`` (the names defined in it) and, for a piece of a definition too
    long for one passage, ``signature`` (the definition's first line).
    """

    line_start: int
    line_end: int
    heading: str
    symbol: str = ""
    kind: str = ""
    defines: tuple[str, ...] = ()
    signature: str = ""


def _checked_overlap(max_tokens: int, overlap: int | None) -> int:
    """Return the overlap to use (default ``min(32, max_tokens // 4)``); refuse bad sizes."""
    if max_tokens < 1:
        raise ValueError("max_tokens must be positive")
    if overlap is None:
        overlap = min(32, max_tokens // 4)
    if not 0 <= overlap < max_tokens:
        raise ValueError("overlap must be in [0, max_tokens)")
    return overlap


def chunk_text(
    text: str,
    count_tokens: Callable[[str], int],
    max_tokens: int,
    overlap: int | None = None,
) -> list[Chunk]:
    """Return passages of at most ``max_tokens`` tokens, consecutive ones sharing ~``overlap``.

    ``overlap`` defaults to ``min(32, max_tokens // 4)`` tokens.

    Passages break between whitespace-separated words and keep the original text
    (whitespace included) of their span. ``count_tokens`` counts a word's tokens without
    special tokens, e.g. ``lambda w: len(llama.tokenize(w, add_special=False))``. A single
    word longer than ``max_tokens`` becomes a passage of its own (the model truncates it).
    """
    overlap = _checked_overlap(max_tokens, overlap)
    words = [(m.start(), m.end()) for m in _WORD.finditer(text)]
    if not words:
        return []
    cache: dict[str, int] = {}
    costs = []
    for start, end in words:
        word = text[start:end]
        if word not in cache:
            cache[word] = max(1, count_tokens(word))
        costs.append(cache[word])

    chunks: list[Chunk] = []
    first = 0
    while first < len(words):
        last = first
        used = costs[first]
        while last + 1 < len(words) and used + costs[last + 1] <= max_tokens:
            last += 1
            used += costs[last]
        start, end = words[first][0], words[last][1]
        chunks.append(Chunk(text[start:end], start, end))
        if last + 1 >= len(words):
            break
        # Step back from the end until about `overlap` tokens are repeated.
        following = last + 1
        shared = 0
        while following - 1 > first and shared + costs[following - 1] <= overlap:
            following -= 1
            shared += costs[following]
        first = following
    return chunks


_HEADING = re.compile(r"#{1,6}\s|\S.*\n[=-]{3,}\s*$")  # Markdown ATX heading (or setext)
_FENCE = re.compile(r"\s*(```|~~~)")


@dataclass(frozen=True)
class Block:
    """Consecutive lines that belong together: a paragraph, a fenced block, a definition.

    ``lines`` index the document's lines (from 0, end excluded); ``heading`` is the
    heading path above it in prose ("Setup > GPU"), ``top`` whether it starts at column 0.
    """

    first: int
    end: int
    heading: str
    top: bool
    starts_section: bool


def _blocks(lines: list[str], prose: bool) -> list[Block]:
    """Return a document's blocks, split at blank lines (not inside fenced code)."""
    blocks: list[Block] = []
    path: list[tuple[int, str]] = []  # (level, title) of the headings above
    first: int | None = None
    fenced = False
    section = False

    def close(end: int) -> None:
        nonlocal first, section
        if first is not None:
            top = not lines[first][:1].isspace()
            heading = " > ".join(title for _, title in path)
            blocks.append(Block(first, end, heading, top, section))
            first, section = None, False

    for i, line in enumerate(lines):
        if prose and _FENCE.match(line):
            fenced = not fenced
        if not fenced and not line.strip():
            close(i)
            continue
        if prose and not fenced and line.startswith("#") and _HEADING.match(line):
            close(i)
            level = len(line) - len(line.lstrip("#"))
            path[:] = [(lv, t) for lv, t in path if lv < level]
            if level > 1:  # the document's title says little about one section
                path.append((level, line.strip("# \n")))
            section = True
        if first is None:
            first = i
    close(len(lines))
    return blocks


def chunk_document(
    text: str,
    count_tokens: Callable[[str], int],
    max_tokens: int,
    *,
    prose: bool,
    overlap: int | None = None,
    language: Language | None = None,
) -> list[LineChunk]:
    """Return passages of whole lines, at most ``max_tokens`` tokens, cut at natural bounds.

    Code in a ``language`` with a grammar is cut by syntax (``code.passages``: one
    definition or a run of small ones a passage, each with its symbol path); a file that
    does not parse, and any other text, is cut as follows.

    Lines are grouped into blocks (paragraphs; with ``prose``, fenced code stays whole and
    a heading starts a new passage; in code, a passage prefers to end before a line at
    column 0: the next definition). Blocks are packed into passages up to ``max_tokens``;
    a block longer than that is split between lines, consecutive pieces sharing about
    ``overlap`` tokens (default ``min(32, max_tokens // 4)``), and a line longer than that
    between words (``chunk_text``). Each passage keeps its text verbatim, line breaks
    included, with its 1-based line range and its heading path.
    """
    overlap = _checked_overlap(max_tokens, overlap)
    lines = text.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))
    cache: dict[str, int] = {}

    def cost(i: int) -> int:
        total = 0
        for word in _WORD.findall(lines[i]):
            if word not in cache:
                cache[word] = max(1, count_tokens(word))
            total += cache[word]
        return total

    costs = [cost(i) for i in range(len(lines))]
    if language is not None and not prose:
        code = _code_chunks(text, lines, offsets, costs, language, count_tokens, max_tokens)
        if code is not None:
            return code
    pieces: list[tuple[int, int, str]] = []  # (first line, end line, heading) of each passage
    current: list[Block] = []
    used = 0

    def flush() -> None:
        nonlocal used
        if current:
            pieces.append((current[0].first, current[-1].end, current[0].heading))
        current.clear()
        used = 0

    for block in _blocks(lines, prose):
        size = sum(costs[block.first : block.end])
        if size > max_tokens:
            # a heading just above stays with the first piece instead of standing alone
            lead = (
                current[0].first if current and current[0].starts_section and used <= 32 else None
            )
            if lead is None:
                flush()
            current.clear()
            used = 0
            split = _split_block(block, costs, max_tokens, overlap)
            if lead is not None and split[0][0] != split[0][1]:
                split[0] = (lead, split[0][1], split[0][2])
            pieces.extend(split)
            continue
        # code: a definition at column 0 after a full-ish passage starts a new one
        fresh = block.starts_section or (not prose and block.top and used > max_tokens // 2)
        if current and (used + size > max_tokens or fresh):
            flush()
        current.append(block)
        used += size
    flush()

    chunks: list[LineChunk] = []
    for first, end, heading in pieces:
        if first == end:  # a single line longer than max_tokens: split between words
            line = lines[first]
            for part in chunk_text(line, count_tokens, max_tokens, overlap):
                start = offsets[first] + part.start
                chunks.append(
                    LineChunk(
                        part.text, start, start + len(part.text), first + 1, first + 1, heading
                    )
                )
            continue
        start, stop = offsets[first], offsets[end]
        body = text[start:stop].rstrip()
        chunks.append(LineChunk(body, start, start + len(body), first + 1, end, heading))
    return chunks


def _split_block(
    block: Block, costs: list[int], max_tokens: int, overlap: int
) -> list[tuple[int, int, str]]:
    """Return (first, end, heading) pieces of a block too long for one passage, by lines.

    A piece ``(i, i, heading)`` marks line ``i`` alone longer than ``max_tokens``.
    """
    pieces = []
    first = block.first
    while first < block.end:
        if costs[first] > max_tokens:
            pieces.append((first, first, block.heading))
            first += 1
            continue
        last, used = first, costs[first]
        while last + 1 < block.end and used + costs[last + 1] <= max_tokens:
            last += 1
            used += costs[last]
        pieces.append((first, last + 1, block.heading))
        if last + 1 >= block.end:
            break
        following, shared = last + 1, 0
        while following - 1 > first and shared + costs[following - 1] <= overlap:
            following -= 1
            shared += costs[following]
        first = following
    return pieces


def _code_chunks(
    text: str,
    lines: list[str],
    offsets: list[int],
    costs: list[int],
    language: Language,
    count_tokens: Callable[[str], int],
    max_tokens: int,
) -> list[LineChunk] | None:
    """Return a code file's passages cut by syntax, or None when it does not parse."""
    from ..code.passages import code_spans

    spans = code_spans(text, language, costs, max_tokens)
    if spans is None:
        return None
    chunks: list[LineChunk] = []
    for span in spans:
        if span.first == span.last and costs[span.first] > max_tokens:
            # one line longer than the budget (minified code): split between words
            for part in chunk_text(lines[span.first], count_tokens, max_tokens, 0):
                start = offsets[span.first] + part.start
                chunks.append(_code_chunk(part.text, start, span, span.last))
            continue
        start, stop = offsets[span.first], offsets[span.last + 1]
        chunks.append(_code_chunk(text[start:stop].rstrip(), start, span, span.last))
    return chunks


def _code_chunk(body: str, start: int, span: CodeSpan, last: int) -> LineChunk:
    """Return a passage of code: its text from ``start``, its lines and what it defines."""
    return LineChunk(
        body,
        start,
        start + len(body),
        span.first + 1,
        last + 1,
        "",
        symbol=" › ".join(span.path),
        kind=span.kind,
        defines=span.defines,
        signature=span.signature,
    )
