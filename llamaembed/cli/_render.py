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
from typing import TYPE_CHECKING, Any

import click

from ..store.search import Hit
from ..store.snippet import Snippet, best_snippet, highlight

if TYPE_CHECKING:
    from ..store.related import Related

__all__ = [
    "FileLines",
    "display_path",
    "files_of",
    "hit_record",
    "related_record",
    "relevance_of",
    "render_hits",
]

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


class FileLines:
    """The lines around hits (``-A/-B/-C``), read from their files once each.

    A file is used only while it still holds the passage as indexed (its text at the
    passage's offsets, or at its lines); otherwise a hit gets no context.
    """

    def __init__(self, before: int, after: int) -> None:
        self.before = before
        self.after = after
        self._files: dict[str, list[str] | None] = {}

    def _lines(self, source: str) -> list[str] | None:
        if source not in self._files:
            try:
                text = Path(source).read_text(encoding="utf-8", errors="replace")
                # lines as the chunker counts them: at "\n" only (a CRLF file's "\r" dropped)
                lines = [line.removesuffix("\r") for line in text.split("\n")]
                self._files[source] = lines[:-1] if lines[-1] == "" else lines
            except OSError:
                self._files[source] = None
        return self._files[source]

    def around(
        self, hit: Hit, snippet: Snippet, lines: tuple[int, int] | None
    ) -> tuple[list[tuple[int, str]], list[tuple[int, str]], list[tuple[int, str]]] | None:
        """Return (before, the snippet's own lines whole, after) as (number, text), or None."""
        source = hit.metadata.get("source")
        if lines is None or not isinstance(source, str):
            return None
        file = self._lines(source)
        passage = hit.text.replace("\r\n", "\n").rstrip("\n")
        if file is None or "\n".join(file[lines[0] - 1 : lines[1]]) != passage:
            return None  # the file changed since it was indexed
        first, last = snippet.line_start, snippet.line_end

        def numbered(a: int, b: int) -> list[tuple[int, str]]:
            return [(n, file[n - 1]) for n in range(max(1, a), min(len(file), b) + 1)]

        return (
            numbered(first - self.before, first - 1),
            numbered(first, last),
            numbered(last + 1, last + self.after),
        )


def files_of(hits: Sequence[Hit]) -> list[str]:
    """Return the hits' files, each once, in the order of their best hit (``-l``)."""
    return list(dict.fromkeys(str(h.metadata.get("source", h.id)) for h in hits))


def display_path(source: str) -> str:
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
    rank: int,
    hit: Hit,
    query: str,
    reranker: Any,
    scorer: Any = None,
    context: FileLines | None = None,
) -> dict[str, Any]:
    """Return every field of a hit for ``--json``: scores, lines, snippet, text, metadata.

    With ``context`` (``-A/-B/-C``), ``"context"`` holds the file's lines before and
    after the snippet as ``{"line": n, "text": ...}`` (None when the file changed).
    """
    snippet, lines = _snippet(hit, query, scorer)
    record = {
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
    if context is not None:
        found = context.around(hit, snippet, lines)
        record["context"] = (
            {
                side: [{"line": n, "text": text} for n, text in numbered]
                for side, numbered in (("before", found[0]), ("after", found[2]))
            }
            if found is not None
            else None
        )
    return record


def related_record(found: Related, shown: Callable[[str], str] = str) -> dict[str, Any]:
    """Return ``related``'s answer for ``--json`` and the MCP tool: anchor, symbol, hits.

    ``anchor`` is FILE:FIRST-LAST of the passage asked about (its path through ``shown``);
    the hits are ``hit_record``s, snippets chosen by the anchor's text.
    """
    meta = found.anchor.metadata
    return {
        "anchor": f"{shown(meta['source'])}:{meta['line_start']}-{meta['line_end']}",
        "symbol": meta.get("symbol", ""),
        "hits": [hit_record(n, h, found.anchor.text, None) for n, h in enumerate(found.hits, 1)],
    }


def render_hits(
    hits: Sequence[Hit],
    query: str,
    *,
    reranker: Any,
    color: bool,
    scorer: Callable[[list[str]], Sequence[float]] | None = None,
    context: FileLines | None = None,
) -> str:
    """Return hits as text for a person: grouped by file, best group first.

    With ``context`` each hit shows its snippet's lines whole and the file's lines around
    them, numbered as grep does (``12:`` a snippet line, ``11-`` a context line).
    """
    if not hits:
        return "no results"
    groups: dict[str, list[tuple[int, Hit]]] = {}
    for rank, hit in enumerate(hits, start=1):
        groups.setdefault(str(hit.metadata.get("source", hit.id)), []).append((rank, hit))

    def style(text: str, **how: Any) -> str:
        return click.style(text, **how) if color else text

    out: list[str] = []
    for source, members in groups.items():
        shown = _CONTROL.sub("\ufffd", display_path(source))
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
            # prose: its headings; code cut by syntax: its symbol path
            heading = hit.metadata.get("heading") or hit.metadata.get("symbol")
            heading = _CONTROL.sub("\ufffd", heading) if isinstance(heading, str) else None
            title = " · ".join([where, *scores] + ([heading] if heading else []))
            out.append(f"  {style(f'[{rank}]', bold=True)} {style(title, dim=True)}")
            around = context.around(hit, snippet, lines) if context is not None else None
            if around is not None:
                out.extend(_numbered(around, query, style))
                continue
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


def _numbered(
    around: tuple[list[tuple[int, str]], list[tuple[int, str]], list[tuple[int, str]]],
    query: str,
    style: Callable[..., str],
) -> list[str]:
    """Return a hit's lines as grep prints context: ``n:`` its own, ``n-`` around it."""
    before, own, after = around
    width = len(str(max(n for n, _ in before + own + after)))
    out = []
    for numbered, mark in ((before, "-"), (own, ":"), (after, "-")):
        for n, text in numbered:
            text = _CONTROL.sub("\ufffd", text)
            if mark == ":":
                text = highlight(text, query, lambda w: style(w, bold=True, fg="yellow"))
            out.append(f"      {style(f'{n:>{width}}{mark}', dim=True)}{text}".rstrip())
    return out
