"""Passages like the one at FILE:LINE: other implementations, its tests, its neighbours.

``related(store, source, line, k)`` finds the indexed passage that holds a file's line
(the file's first definition when no line is given), searches with its text by meaning
alone, and returns the most similar passages, passages of other files first. Works over
any store with ``ids_where``, ``get`` and ``search`` (``Index``, ``ShardedIndex``,
``MilvusStore``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import SearchIndexError
from .search import Hit

__all__ = ["Related", "anchor_passage", "related"]


@dataclass(frozen=True)
class Related:
    """The passage asked about and the passages most like it (other files first)."""

    anchor: Hit
    hits: list[Hit]


def anchor_passage(store: Any, source: str, line: int | None) -> Hit:
    """Return the indexed passage of ``source`` that holds ``line`` (1-based).

    Without a line: the file's first passage that defines something, else its first.
    Raises SearchIndexError when the file is not indexed or the line is past its end.
    """
    passages = [store.get(doc_id) for doc_id in store.ids_where(source=source)]
    found = sorted(
        (h for h in passages if h is not None), key=lambda h: int(h.metadata.get("line_start", 0))
    )
    if not found:
        raise SearchIndexError(f"{source} is not in the index; index it first (`llamaembed index`)")
    if line is None:
        return next((h for h in found if h.metadata.get("defines")), found[0])
    for hit in found:
        if int(hit.metadata["line_start"]) <= line <= int(hit.metadata["line_end"]):
            return hit
    last = max(int(h.metadata["line_end"]) for h in found)
    raise SearchIndexError(f"{source} has no indexed passage at line {line} (it ends at {last})")


def related(store: Any, source: str, line: int | None = None, k: int = 10) -> Related:
    """Return the ``k`` passages most like the one at ``source``:``line``, other files first.

    The passage's own text is the query (by meaning alone: no keywords, no code rules);
    the passage itself is left out; passages of the same file follow those of others.
    """
    if k < 1:
        raise ValueError("k must be at least 1")
    anchor = anchor_passage(store, source, line)
    found = store.search(anchor.text, k * 3 + 1, hybrid=False, ranking=None)
    others = [h for h in found if h.id != anchor.id]
    elsewhere = [h for h in others if h.metadata.get("source") != source]
    same = [h for h in others if h.metadata.get("source") == source]
    return Related(anchor, (elsewhere + same)[:k])
