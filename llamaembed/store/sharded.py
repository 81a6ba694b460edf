"""An index split into shards by a stable hash of the ids, searched as one.

On disk a sharded index is a folder of ordinary index folders named
``shard-000-of-003`` … ``shard-002-of-003``; each can be built on its own machine
(``Index.from_parquet(..., shard=i, num_shards=S)``) and copied together. A search embeds
the query once, asks every shard for its candidates and merges them by score, so with
exact search the top-k equals that of one index over all the rows.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy.typing as npt

from ..code.ranking import CodeRanking
from ..embedder import Embedder
from ..errors import IndexModelMismatchError, SearchIndexError
from .encoder import DocumentEncoder
from .index import Index
from .keywords import KeywordMatches, KeywordSide
from .partition import shard_of
from .search import DEFAULT_RANKING, Hit, code_ranked, fuse_candidates, rerank_hits, search_pool

__all__ = ["ShardedIndex", "shard_folder", "shard_of"]

_SHARD_NAME = re.compile(r"shard-(\d{3,})-of-(\d{3,})")


def shard_folder(root: str | os.PathLike[str], shard: int, num_shards: int) -> Path:
    """Return the folder of one shard inside a sharded index's folder."""
    return Path(root) / f"shard-{shard:03d}-of-{num_shards:03d}"


def _shard_folders(root: Path) -> dict[tuple[int, int], Path]:
    found = {}
    if root.is_dir():
        for child in root.iterdir():
            match = _SHARD_NAME.fullmatch(child.name)
            if match and child.is_dir():
                found[(int(match[1]), int(match[2]))] = child
    return found


class ShardedIndex:
    """Several indexes of one model, searched together; same ``Hit`` results as ``Index``."""

    def __init__(self, shards: Sequence[Index], embedder: Embedder | None = None) -> None:
        if not shards:
            raise ValueError("a sharded index needs at least one shard")
        fingerprints = {s.model.get("fingerprint") for s in shards} - {None}
        if len(fingerprints) > 1:
            raise IndexModelMismatchError("the shards were built with different models")
        if len({s.dim for s in shards}) > 1:
            raise IndexModelMismatchError("the shards hold vectors of different widths")
        if embedder is not None and fingerprints and embedder.fingerprint not in fingerprints:
            raise IndexModelMismatchError(
                "the shards were built with another model; open them with that model"
            )
        self.shards = list(shards)
        self.embedder = embedder if embedder is not None else shards[0].embedder
        self.dim = shards[0].dim
        self.dimensions = shards[0].dimensions  # Matryoshka width, None = the model's
        self.model = shards[0].model
        self.encoder = DocumentEncoder(self.embedder, self.dim, self.dimensions)

    @staticmethod
    def is_sharded(folder: str | os.PathLike[str]) -> bool:
        """Return True when ``folder`` holds shard folders rather than one index."""
        return bool(_shard_folders(Path(folder)))

    @classmethod
    def load(cls, folder: str | os.PathLike[str], embedder: Embedder | None = None) -> ShardedIndex:
        """Open every shard of a sharded index folder; all must be present."""
        root = Path(folder)
        found = _shard_folders(root)
        if not found:
            raise SearchIndexError(f"no shards at {root} (expected shard-000-of-NNN folders)")
        counts = {total for _, total in found}
        if len(counts) > 1:
            raise SearchIndexError(
                f"{root} mixes shard counts {sorted(counts)}; remove the stale shard folders"
            )
        total = counts.pop()
        missing = [i for i in range(total) if (i, total) not in found]
        if missing:
            raise SearchIndexError(
                f"{root} lacks shards {missing} of {total}; build or copy them before searching"
            )
        shards = [Index.load(found[(i, total)], embedder) for i in range(total)]
        return cls(shards, embedder)

    @staticmethod
    def build_from_parquet(
        paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
        embedder: Embedder,
        folder: str | os.PathLike[str],
        num_shards: int,
        *,
        shards: Sequence[int] | None = None,
        dimensions: int | None = None,
    ) -> dict[int, int]:
        """Add embedded Parquet to the shards of ``folder`` (all, or only ``shards``).

        Shards are built one after another, each in one pass over the files, so memory
        holds one shard at a time; run with ``shards=[i]`` on S machines to build them in
        parallel. Existing shard folders are opened and added to (ids replace). Returns
        the documents added per shard.
        """
        root = Path(folder)
        counts = {total for _, total in _shard_folders(root)}
        if counts and counts != {num_shards}:
            raise SearchIndexError(
                f"{root} holds an index of {sorted(counts)} shards, not {num_shards}; "
                "choose another folder"
            )
        if Index.exists(root):
            raise SearchIndexError(f"{root} holds an unsharded index; choose another folder")
        wanted = list(range(num_shards)) if shards is None else list(shards)
        for number in wanted:
            if not 0 <= number < num_shards:
                raise ValueError(f"shard {number} is not in [0, {num_shards})")
        added = {}
        for number in wanted:
            target = shard_folder(root, number, num_shards)
            index = Index.load_or_create(target, embedder, dimensions=dimensions)
            added[number] = index.add_parquet(paths, shard=number, num_shards=num_shards)
            index.save(target)
        return added

    def __len__(self) -> int:
        return sum(len(s) for s in self.shards)

    def __contains__(self, doc_id: object) -> bool:
        return self.get(str(doc_id)) is not None

    def get(self, doc_id: str) -> Hit | None:
        """Return the stored document with this id (score 0), or None."""
        shard = int(shard_of([str(doc_id)], len(self.shards))[0])
        return self.shards[shard].get(doc_id)

    def iter_metadata(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """Yield (id, metadata) of every document, shard by shard."""
        for shard in self.shards:
            yield from shard.iter_metadata()

    def search(
        self,
        query: str | npt.ArrayLike,
        k: int = 10,
        *,
        filter: Mapping[str, Any] | None = None,
        hybrid: bool = True,
        rerank_with: Any = None,
        candidates: int | None = None,
        ranking: CodeRanking | None = DEFAULT_RANKING,
    ) -> list[Hit]:
        """Return the k best documents over all shards, best first (as ``Index.search``).

        Dense candidates merge by cosine score, each keyword side's matches by BM25
        relevance (each shard's BM25 uses its own word statistics, close to the whole's for
        a hash split); then they are fused as in one index.
        """
        pool = search_pool(k, candidates, hybrid or rerank_with is not None or ranking is not None)
        if pool == 0:
            return []
        vector, text = self.encoder.query_vector(query)
        dense: list[tuple[float, int, int]] = []
        # every shard makes the same keyword searches for a query, in the same order
        sides: list[KeywordSide] = []
        found_by_side: list[list[tuple[float, int, int]]] = []
        hybrid_used = False
        for number, shard in enumerate(self.shards):
            shard_dense, shard_keyword = shard.candidates(
                vector, text, pool, filter=filter, hybrid=hybrid, ranking=ranking
            )
            dense.extend((score, number, label) for label, score in shard_dense)
            if shard_keyword is not None:
                hybrid_used = True
                for position, (side, matches) in enumerate(shard_keyword):
                    if position == len(sides):
                        sides.append(side)
                        found_by_side.append([])
                    found_by_side[position].extend((s, number, lab) for lab, s in matches)
        dense.sort(key=lambda item: -item[0])
        merged_keyword: list[KeywordMatches] | None = None
        if hybrid_used:
            merged_keyword = []
            for side, matched in zip(sides, found_by_side, strict=True):
                matched.sort(key=lambda item: -item[0])
                merged_keyword.append((side, [((n, lab), s) for s, n, lab in matched[:pool]]))
        ranked = fuse_candidates(
            [((n, lab), score) for score, n, lab in dense[:pool]], merged_keyword, max(pool, k)
        )
        by_shard: dict[int, list[tuple[int, float]]] = {}
        for (number, label), score in ranked:
            by_shard.setdefault(number, []).append((label, score))
        found = {
            (number, label): hit
            for number, pairs in by_shard.items()
            for label, hit in self.shards[number].hits_by_label(pairs, vector).items()
        }
        hits = code_ranked([found[key] for key, _ in ranked if key in found], text, ranking)
        if rerank_with is not None and text is not None:
            hits = rerank_hits(hits, text, rerank_with, self._late_interaction)
        return hits[:k]

    def _late_interaction(self, text: str, hits: list[Hit]) -> list[float]:
        # hits of several shards: their ColBERT vectors are computed from their texts
        return self.encoder.late_interaction(text, [h.text for h in hits], [None] * len(hits))

    def save(self, folder: str | os.PathLike[str]) -> Path:
        """Write every shard under ``folder`` (each atomically, as ``Index.save``)."""
        root = Path(folder)
        total = len(self.shards)
        for number, shard in enumerate(self.shards):
            shard.save(shard_folder(root, number, total))
        return root
