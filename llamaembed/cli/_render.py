"""How ``llamaembed search`` shows hits: grouped by file, with line ranges and snippets.

A person reads the file and lines of each hit, the part that matched (cut at line or
sentence bounds, line breaks kept, query words highlighted on a terminal) and a score
that means something: the dense cosine, or the reranker's probability. The order stays
the search's (fused rank, or the reranker's). ``--json`` gets every field instead.
"""

from __future__ import annotations

import math
import os
import re
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

from ..store.search import Hit
from ..store.snippet import Snippet, best_snippet, highlight

__all__ = ["hit_record", "relevance_of", "render_hits"]

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\x9b]")


def relevance_of(hit: Hit, reranker: Any) -> float | None:
    """Return a reranked hit's relevance in [0, 1]: the reranker's probability.

    A cross-encoder's logit goes through a sigmoid unless the model already gives
    probabilities (Qwen3-Reranker); "colbert" late-interaction scores are mean cosines.
    None when no reranker ordered the hits.
    """
    if reranker is None:
        return None
    if isinstance(reranker, str) or reranker.capabilities.rerank_probabilities:
        return float(hit.score)
    return 1.0 / (1.0 + math.exp(-hit.score))


def _lines_of(hit: Hit) -> tuple[int, int] | None:
    """Return the 1-based line range a hit's passage covers in its file, when known."""
    meta = hit.metadata
    if "line_start" in meta and "line_end" in meta:
        return int(meta["line_start"]), int(meta["line_end"])
    source, start = meta.get("source"), meta.get("start")
    if source is None or start is None:
        return None
    try:  # an index built before line ranges were recorded: count in the file
        text = Path(source).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    if text[start : start + len(hit.text)] != hit.text:
        return None  # the file changed since it was indexed
    first = text.count("\n", 0, start) + 1
    return first, first + hit.text.count("\n")


def _display_path(source: str) -> str:
    try:
        relative = os.path.relpath(source)
    except ValueError:  # another drive on Windows
        return source
    return source if relative.startswith("..") else relative


def _snippet(hit: Hit, query: str, scorer: Any) -> tuple[Snippet, tuple[int, int] | None]:
    lines = _lines_of(hit)
    first = lines[0] if lines else 1
    return best_snippet(hit.text, query, first_line=first, scorer=scorer), lines


def hit_record(
    rank: int, hit: Hit, query: str, reranker: Any, scorer: Any = None
) -> dict[str, Any]:
    """Return every field of a hit for ``--json``: scores, lines, snippet, text, metadata."""
    snippet, lines = _snippet(hit, query, scorer)
    return {
        "rank": rank,
        "id": hit.id,
        "source": hit.metadata.get("source"),
        "line_start": lines[0] if lines else None,
        "line_end": lines[1] if lines else None,
        "heading": hit.metadata.get("heading"),
        "score": hit.score,
        "similarity": hit.similarity,
        "relevance": relevance_of(hit, reranker),
        "snippet": {
            "text": snippet.text,
            "line_start": snippet.line_start if lines else None,
            "line_end": snippet.line_end if lines else None,
        },
        "text": hit.text,
        "metadata": hit.metadata,
    }


def render_hits(
    hits: Sequence[Hit],
    query: str,
    *,
    reranker: Any,
    color: bool,
    scorer: Callable[[list[str]], Sequence[float]] | None = None,
) -> str:
    """Return hits as text for a person: grouped by file, best group first."""
    if not hits:
        return "no results"
    groups: dict[str, list[tuple[int, Hit]]] = {}
    for rank, hit in enumerate(hits, start=1):
        groups.setdefault(str(hit.metadata.get("source", hit.id)), []).append((rank, hit))

    def style(text: str, **how: Any) -> str:
        return click.style(text, **how) if color else text

    out: list[str] = []
    for source, members in groups.items():
        shown = _CONTROL.sub("\ufffd", _display_path(source))
        out.append(style(shown, bold=True, fg="cyan"))
        for rank, hit in members:
            snippet, lines = _snippet(hit, query, scorer)
            where = (
                f"lines {snippet.line_start}-{snippet.line_end}"
                if lines and snippet.line_start != snippet.line_end
                else f"line {snippet.line_start}"
                if lines
                else f"id {hit.id}"
            )
            scores = []
            relevance = relevance_of(hit, reranker)
            if relevance is not None:
                scores.append(f"relevance {relevance:.2f}")
            if hit.similarity is not None:
                scores.append(f"cosine {hit.similarity:.2f}")
            elif relevance is None:
                scores.append(f"score {hit.score:.4f}")
            heading = hit.metadata.get("heading")
            heading = _CONTROL.sub("\ufffd", heading) if isinstance(heading, str) else None
            title = " · ".join([where, *scores] + ([heading] if heading else []))
            out.append(f"  {style(f'[{rank}]', bold=True)} {style(title, dim=True)}")
            # dedent for reading (code deep in a class); --json keeps the text verbatim
            plain = snippet.text if snippet.cut_before else textwrap.dedent(snippet.text)
            plain = _CONTROL.sub("\ufffd", plain.replace("\r\n", "\n"))  # inert escape codes
            text = highlight(plain, query, lambda w: style(w, bold=True, fg="yellow"))
            if snippet.cut_before:
                text = "…" + text
            if snippet.cut_after:
                text += "…"
            out.extend(f"      {line}".rstrip() for line in text.split("\n"))
        out.append("")
    return "\n".join(out).rstrip("\n")
