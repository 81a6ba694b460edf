"""Passages for people: the part of a hit that matched, cut at line or sentence bounds.

Pure functions: a search hit's text is cut into units (lines; a long line into sentences),
and the window of consecutive units that holds most of the query's words (then, among
equals, the one a scorer ranks best: the CLI's dense cosine) is the snippet. Its text is
the passage's own, line breaks kept, with its 1-based line range when the passage's first
line is known.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .keywords import STOPWORDS

__all__ = ["Snippet", "best_snippet", "highlight", "query_terms"]

_WORD = re.compile(r"\w+", re.UNICODE)
_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+(?=\S)")


@dataclass(frozen=True)
class Snippet:
    """A window of a passage: ``text == passage[start:end]``, lines ``line_start..line_end``.

    Line numbers are 1-based in the passage's file when its first line was given, else in
    the passage. ``cut_before`` / ``cut_after``: the window begins or ends inside a line.
    """

    text: str
    start: int
    end: int
    line_start: int
    line_end: int
    cut_before: bool
    cut_after: bool


def query_terms(query: str) -> list[str]:
    """Return the query's words worth finding in a passage: lower-cased, stopwords left out."""
    seen: dict[str, None] = {}
    for word in _WORD.findall(query.lower()):
        if word not in STOPWORDS and (len(word) > 2 or word.isdigit()):
            seen.setdefault(word)
    return list(seen)


def _stem(term: str) -> str:
    # "reranking", "reranker" and "reranks" all match "rerank": compare a prefix
    return term[: max(4, len(term) - 3)] if len(term) > 5 else term


def _term_pattern(terms: Sequence[str]) -> re.Pattern[str] | None:
    if not terms:
        return None
    stems = sorted({_stem(t) for t in terms}, key=len, reverse=True)
    return re.compile(r"\b(?:" + "|".join(re.escape(s) for s in stems) + r")\w*", re.IGNORECASE)


def _units(text: str, max_chars: int) -> list[tuple[int, int, int]]:
    """Return (start, end, line index) of each line, long lines cut into sentences."""
    units = []
    offset = 0
    for number, line in enumerate(text.split("\n")):
        body = line.rstrip()
        if body.strip():
            if len(body) <= max_chars:
                units.append((offset, offset + len(body), number))
            else:
                start = 0
                for mark in _SENTENCE_END.finditer(body):
                    units.append((offset + start, offset + mark.start(), number))
                    start = mark.end()
                units.append((offset + start, offset + len(body), number))
        offset += len(line) + 1
    return units


def best_snippet(
    text: str,
    query: str,
    *,
    first_line: int = 1,
    max_lines: int = 6,
    max_chars: int = 360,
    scorer: Callable[[list[str]], Sequence[float]] | None = None,
    candidates: int = 6,
) -> Snippet:
    """Return the window of ``text`` that matches ``query`` best, at most ``max_lines`` lines.

    Windows hold whole lines, or whole sentences of a line longer than ``max_chars``, up
    to ``max_chars`` characters (one unit at least). The window with the most distinct
    query words wins, then the one whose first match comes soonest (the match at the top);
    ties go to ``scorer`` (higher is better) over at most ``candidates`` of them, else to
    the earliest. ``first_line`` is the passage's first line number.
    """
    units = _units(text, max_chars)
    if not units:
        return Snippet("", 0, 0, first_line, first_line, False, False)
    pattern = _term_pattern(query_terms(query))
    windows: list[tuple[int, int]] = []
    for i in range(len(units)):
        j = i
        while (
            j + 1 < len(units)
            and units[j + 1][1] - units[i][0] <= max_chars
            and units[j + 1][2] - units[i][2] < max_lines
        ):
            j += 1
        if not windows or windows[-1][1] < j:  # a window inside the last one adds nothing
            windows.append((i, j))
        if j == len(units) - 1:
            break

    def matched(window: tuple[int, int]) -> tuple[int, int]:
        """Return (distinct query words, minus the units before the first match)."""
        if pattern is None:
            return 0, 0
        found = pattern.findall(text[units[window[0]][0] : units[window[1]][1]])
        lead = next(
            (
                n
                for n in range(window[0], window[1] + 1)
                if pattern.search(text[units[n][0] : units[n][1]])
            ),
            window[1],
        )
        return len({_stem(w.lower()) for w in found}), window[0] - lead

    counts = [matched(w) for w in windows]
    best = max(counts)
    tied = [w for w, c in zip(windows, counts, strict=True) if c == best]
    chosen = tied[0]
    if scorer is not None and len(tied) > 1:
        step = max(1, len(tied) // candidates)
        pool = tied[::step][:candidates]
        scores = scorer([text[units[a][0] : units[b][1]] for a, b in pool])
        chosen = pool[max(range(len(pool)), key=lambda n: scores[n])]
    start, end = units[chosen[0]][0], units[chosen[1]][1]
    line_start = first_line + units[chosen[0]][2]
    line_end = first_line + units[chosen[1]][2]
    line_begin = text.rfind("\n", 0, start) + 1
    line_stop = text.find("\n", end)
    line_stop = len(text) if line_stop < 0 else line_stop
    cut_before = bool(text[line_begin:start].strip())
    cut_after = bool(text[end:line_stop].strip())
    return Snippet(text[start:end], start, end, line_start, line_end, cut_before, cut_after)


def highlight(text: str, query: str, style: Callable[[str], str]) -> str:
    """Return ``text`` with the query's words (and their inflections) passed through ``style``."""
    pattern = _term_pattern(query_terms(query))
    if pattern is None:
        return text
    return pattern.sub(lambda m: style(m.group(0)), text)
