"""Split long documents into overlapping passages that fit a model's context."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Chunk", "chunk_text"]

_WORD = re.compile(r"\S+")


@dataclass(frozen=True)
class Chunk:
    """A passage of a document and its character span ``text[start:end]``."""

    text: str
    start: int
    end: int


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
    if max_tokens < 1:
        raise ValueError("max_tokens must be positive")
    if overlap is None:
        overlap = min(32, max_tokens // 4)
    if not 0 <= overlap < max_tokens:
        raise ValueError("overlap must be in [0, max_tokens)")
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
