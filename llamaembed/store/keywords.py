"""Which query words keyword (BM25) search should use in hybrid search; pure functions."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

__all__ = ["STOPWORDS", "fts_query", "salient_words"]

_WORD = re.compile(r"\w+", re.UNICODE)
STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "but",
        "by",
        "for",
        "from",
        "has",
        "have",
        "how",
        "i",
        "in",
        "is",
        "it",
        "of",
        "on",
        "or",
        "that",
        "the",
        "this",
        "to",
        "was",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "will",
        "with",
        "you",
        "your",
        "do",
        "does",
        "did",
        "can",
        "should",
        "would",
    ]
)


def salient_words(text: str, count_tokens: Callable[[str], int] | None = None) -> set[str]:
    """Return the lower-cased words of a query that keyword search should match.

    Ordinary words are the embedding's strength; letting BM25 match them ("need",
    "should") only adds noise to the fusion. Words the model's vocabulary lacks (split
    into several pieces: ``count_tokens(word) > 1``: part numbers, names, identifiers)
    or holding digits are where exact matching helps. Without a token counter,
    every word but stopwords and words of one or two letters counts.
    """
    salient = set()
    for word in {w.lower() for w in _WORD.findall(text)}:
        if any(ch.isdigit() for ch in word):
            salient.add(word)
        elif count_tokens is not None:
            if count_tokens(word) > 1:
                salient.add(word)
        elif word not in STOPWORDS and len(word) > 2:
            salient.add(word)
    return salient


def fts_query(words: Iterable[str]) -> str:
    """Return an SQLite FTS5 query matching any of the words (each quoted, so safe)."""
    return " OR ".join(f'"{w}"' for w in sorted(set(words)))
