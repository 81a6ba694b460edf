"""A vector index: a document table (SQLite) and a vector graph (hnswlib), one folder on disk.

``Index`` composes its parts: a :class:`~.encoder.DocumentEncoder` (texts in, one typed
batch out), a keyword scheme (``store.keywords``), a :class:`~.documents.DocumentTable`
and a :class:`~.graph.VectorGraph`. Every write goes through ``add_encoded``.

On disk an index is a folder: ``manifest.json`` (format version, model, settings, file
checksums) and the current generation's ``vectors.hnsw`` and ``store.sqlite``. ``save``
takes the folder's writer lock (``store.lock``), checks that nobody committed since this
index was loaded from (or last saved to) the folder, and if somebody did, loads their
generation and applies this index's changes on top: two writers never lose each other's
work. A commit is atomic (``store.manifest``): a crash at any point leaves the last good
index loadable, and a reader loading while a writer commits gets a complete generation.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .._types import FloatArray
from ..code.ranking import CodeRanking
from ..embedder import Embedder
from ..errors import SearchIndexError
from ..hub.spec import model_record
from ..outputs import Want
from ..params import check_int
from . import manifest as disk
from .base import EncodedWrites
from .documents import DocumentTable
from .encoder import DocumentEncoder, Encoded
from .graph import VectorGraph
from .keywords import KeywordMatches, KeywordScheme, choose_scheme
from .lock import FolderLock
from .progress import BuildProgress
from .search import (
    DEFAULT_RANKING,
    Hit,
    checked_rows,
    code_ranked,
    fuse_candidates,
    index_width,
    rerank_hits,
    search_pool,
    stored_metadata,
    weighted_sides,
)

__all__ = ["KEYWORDS", "Hit", "Index"]

KEYWORDS = ("bm25", "sparse", "none")
"""The keyword schemes an ``Index`` supports."""

_Change = Callable[["Index"], object]


class Index(EncodedWrites):
    """Texts, metadata and vectors, searchable by meaning (and by keywords with hybrid)."""

    def __init__(
        self,
        embedder: Embedder | None = None,
        *,
        dim: int | None = None,
        space: str = "cosine",
        M: int = 32,
        ef_construction: int = 200,
        ef: int = 128,
        capacity: int = 1024,
        exact_threshold: int = 20_000,
        keywords: str | None = None,
        colbert: bool = False,
        dimensions: int | None = None,
        graph: VectorGraph | None = None,
        table: DocumentTable | None = None,
    ) -> None:
        """Make an empty index, or one of given parts (``graph``, ``table``: as ``load``)."""
        if embedder is None and dim is None:
            raise ValueError("give an embedder or the vector dimension")
        if dim is not None:
            check_int("dim", dim, 1)  # before index_width, which would round 4.5 down
        self.embedder = embedder
        # Matryoshka: the index keeps the model's vectors cut to ``dimensions``.
        self.dim, self.dimensions = index_width(embedder, dim, dimensions)
        if graph is not None and (graph.dim, graph.space) != (self.dim, space):
            raise ValueError(f"the graph holds {graph.dim}-d {graph.space} vectors")
        self.graph = graph or VectorGraph(
            self.dim,
            space,
            M=M,
            ef_construction=ef_construction,
            ef=ef,
            capacity=capacity,
            exact_threshold=exact_threshold,
        )
        self.model: dict[str, Any] = model_record(embedder)
        # The keyword side of hybrid search: "bm25" (SQLite FTS5), "sparse" (bge-m3's
        # lexical weights, the default for a model that has them) or "none"; ``colbert``
        # keeps ColBERT vectors for rerank_with="colbert" (else computed per query).
        self.scheme: KeywordScheme = choose_scheme(embedder, keywords, KEYWORDS)
        keep = self.scheme.wants | (Want.COLBERT if colbert else Want(0))
        self.encoder = DocumentEncoder(embedder, self.dim, self.dimensions, keep)
        self.colbert = colbert
        self.table = table or DocumentTable(self.scheme.name, colbert)
        self._lock = threading.RLock()
        # How much of its tree a run had indexed when it committed (None: no run recorded
        # it); a search of a partial index says so (store.progress).
        self.progress: BuildProgress | None = None
        # The generation each folder held when this index last loaded from or saved to
        # it, and the changes made since (replayed onto a newer generation at save).
        self._bases: dict[str, int] = {}
        self._changes: list[_Change] = []

    # ----------------------------------------------------------------- settings
    @property
    def keywords(self) -> str:
        """Return the keyword scheme's name: "bm25", "sparse" or "none"."""
        return self.scheme.name

    @property
    def space(self) -> str:
        """Return the vector space: "cosine" or "ip"."""
        return self.graph.space

    @property
    def ef(self) -> int:
        """Return the search breadth (higher: better recall, slower queries)."""
        return self.graph.ef

    @ef.setter
    def ef(self, value: int) -> None:
        self.graph.ef = value

    @property
    def M(self) -> int:
        """Return the graph's links per node."""
        return self.graph.M

    @property
    def ef_construction(self) -> int:
        """Return the graph's build-time search breadth."""
        return self.graph.ef_construction

    @property
    def exact_threshold(self) -> int:
        """Return the size up to which a search is exact."""
        return self.graph.exact_threshold

    def __len__(self) -> int:
        return self.table.size

    def __contains__(self, doc_id: object) -> bool:
        return doc_id in self.table

    # ----------------------------------------------------------------- writing
    def add_encoded(
        self,
        encoded: Encoded,
        texts: Sequence[str] | None = None,
        metadatas: Sequence[Mapping[str, Any]] | None = None,
        ids: Sequence[str] | None = None,
    ) -> list[str]:
        """Add an encoded batch (``encoder.documents``) with texts, metadata and ids.

        An existing id is replaced; return the ids.
        """
        with self._lock:
            first = self.table.next_label()
            array, texts, metas, ids = checked_rows(
                encoded.vectors,
                texts,
                metadatas,
                ids,
                self.dim,
                lambda count: [f"{first + i}" for i in range(count)],
            )
            if not ids:
                return []
            self.delete(ids)  # replaces existing ids; delete() skips unknown ones
            labels = np.arange(first, first + len(ids), dtype=np.int64)
            self.graph.add(array, labels)
            sparse = encoded.sparse
            terms = [
                self.scheme.document_terms(text, None if sparse is None else sparse[i])
                for i, text in enumerate(texts)
            ]
            self.table.insert(labels.tolist(), ids, texts, metas, terms, encoded.colbert)
            if self._bases:  # replayed if another writer commits first (see save)
                batch = Encoded(array, sparse, encoded.colbert)
                self._changes.append(lambda index: index.add_encoded(batch, texts, metas, ids))
        return ids

    def delete(self, ids: Sequence[str]) -> int:
        """Remove documents by id; return how many existed."""
        with self._lock:
            removed = self.table.delete(ids)
            self.graph.delete(removed)
            if removed and self._bases:
                gone = list(ids)
                self._changes.append(lambda index: index.delete(gone))
        return len(removed)

    @classmethod
    def from_parquet(
        cls,
        paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
        embedder: Embedder,
        *,
        shard: int | None = None,
        num_shards: int | None = None,
        **options: Any,
    ) -> Index:
        """Return a new index of embedded Parquet files (from ``embed_dataset``).

        Files whose recorded model is not ``embedder`` are refused. With ``shard`` and
        ``num_shards`` only the ids in that stable hash partition are kept (see
        ``store.partition.shard_of``). ``options`` go to ``Index(...)``.
        """
        index = cls(embedder, **options)
        index.add_parquet(paths, shard=shard, num_shards=num_shards)
        return index

    def add_parquet(
        self,
        paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
        *,
        shard: int | None = None,
        num_shards: int | None = None,
        batch_rows: int = 65_536,
    ) -> int:
        """Add the rows of embedded Parquet files (an existing id is replaced); return the count.

        Every file is checked before any row is added. Columns other than the id, text and
        embedding become each document's metadata. A later row with an id already seen
        replaces the earlier one, as ``add`` does.
        """
        from .parquet import add_parquet

        return add_parquet(self, paths, shard=shard, num_shards=num_shards, batch_rows=batch_rows)

    # ----------------------------------------------------------------- reading
    def get(self, doc_id: str) -> Hit | None:
        """Return the stored document with this id (score 0), or None."""
        return self.table.get(doc_id)

    def iter_metadata(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """Yield (id, metadata) of every document."""
        return self.table.iter_metadata()

    def ids_where(self, **equals: Any) -> list[str]:
        """Return ids whose metadata has all the given key = value pairs."""
        return self.table.ids_where(equals)

    def query_vector(self, query: str | npt.ArrayLike) -> tuple[FloatArray, str | None]:
        """Return a query's vector and its text (None when the query is a vector)."""
        return self.encoder.query_vector(query)

    def candidates(
        self,
        vector: npt.NDArray[np.float32],
        text: str | None,
        pool: int,
        *,
        filter: Mapping[str, Any] | None = None,
        hybrid: bool = True,
        ranking: CodeRanking | None = DEFAULT_RANKING,
    ) -> tuple[list[tuple[int, float]], list[KeywordMatches] | None]:
        """Return the dense candidates and each keyword side's matches, (label, score) best first.

        The keyword lists are None when keywords take no part (no text, ``hybrid`` off, or
        the "none" scheme). Scores are comparable across indexes of one model, so shards
        can be merged.
        """
        with self._lock:
            allowed = self.table.labels_where(filter) if filter else None
            dense = self.graph.search(vector, pool, allowed, self.table.labels, len(self))
            keyword = None
            if hybrid and text is not None and self.keywords != "none":
                sides = self.scheme.query_sides(text, self.encoder)
                keyword = [
                    (side, self.table.keyword_search(side.terms, pool, allowed))
                    for side in weighted_sides(sides, text, ranking)
                ]
        return dense, keyword

    def hits_by_label(
        self, ranked: Sequence[tuple[int, float]], query: FloatArray | None = None
    ) -> dict[int, Hit]:
        """Return the stored documents of (label, score) pairs as Hits, keyed by label.

        A label deleted since it was ranked is left out. With the ``query`` vector each
        hit's ``similarity`` is its dense cosine (inner product in "ip" space).
        """
        with self._lock:
            rows = self.table.rows([lab for lab, _ in ranked])
            near = self.graph.similarities([lab for lab, _ in ranked if lab in rows], query)
        return {
            lab: Hit(
                rows[lab][0],
                float(score),
                rows[lab][1],
                stored_metadata(rows[lab][2]),
                near.get(lab),
            )
            for lab, score in ranked
            if lab in rows
        }

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
        """Return the k best documents for a query text (or vector), best first.

        ``filter`` keeps documents whose metadata equals every given value. ``hybrid``
        adds keyword matches to the cosine (``fuse_candidates``; score = the fused score);
        keywords are BM25 or, with ``keywords="sparse"``, bge-m3's lexical weights.
        ``rerank_with`` (a cross-encoder Llama, or "colbert" for the index model's
        late interaction) rescores the top ``candidates`` and its scores become the scores.
        ``ranking`` holds the code ranking rules (``code.ranking.CodeRanking``; None or
        ``CodeRanking.off()``: none), which reorder code passages only.
        """
        pool = search_pool(k, candidates, hybrid or rerank_with is not None or ranking is not None)
        if pool == 0:
            return []
        vector, text = self.query_vector(query)
        dense, keyword = self.candidates(
            vector, text, pool, filter=filter, hybrid=hybrid, ranking=ranking
        )
        ranked = fuse_candidates(dense, keyword, max(pool, k))
        found = self.hits_by_label(ranked, vector)
        hits = code_ranked([found[lab] for lab, _ in ranked if lab in found], text, ranking)
        if rerank_with is not None and text is not None:
            hits = rerank_hits(hits, text, rerank_with, self.late_interaction)
        return hits[:k]

    def late_interaction(self, text: str, hits: list[Hit]) -> list[float]:
        """Return ColBERT scores of hits for a query, from the vectors kept where kept."""
        with self._lock:
            kept = self.table.stored_colbert([h.id for h in hits])
        stored = [kept.get(h.id) for h in hits]
        return self.encoder.late_interaction(text, [h.text for h in hits], stored)

    # ----------------------------------------------------------------- persistence
    def save(self, folder: str | os.PathLike[str], *, wait: float = 60.0) -> Path:
        """Commit the index to a folder atomically, under the folder's writer lock.

        If another writer committed to the folder since this index was loaded from it
        (or last saved to it), its generation is loaded and this index's changes applied
        on top, so neither loses the other's work; this index then holds the merged
        documents. A new index (never loaded from or saved to the folder) replaces what
        the folder held. ``wait``: seconds to wait for another writer's lock, after which
        IndexLockedError names it.
        """
        root = Path(folder)
        key = str(root.resolve())
        with FolderLock(root, wait), self._lock:
            current = disk.generation_number(root)
            base = self._bases.get(key)
            if base is not None and current != base:
                self._rebase(Index.load(root, self.embedder))
            generation = current + 1
            data = disk.new_generation(root, generation)
            self.graph.save(data / "vectors.hnsw")
            self.table.save(data / "store.sqlite")
            disk.commit_generation(root, data, self._settings())
            self._bases = {key: generation}
            self._changes = []
        return root

    def _rebase(self, newer: Index) -> None:
        """Take a newer generation's parts and replay this index's changes onto them."""
        changes, self._changes = self._changes, []
        self.graph, self.table = newer.graph, newer.table
        for change in changes:
            change(self)

    def _settings(self) -> dict[str, Any]:
        return {
            "dim": self.dim,
            "space": self.space,
            "normalized": self.space == "cosine",
            "count": len(self),
            "model": self.model,
            "keywords": self.keywords,
            "colbert": self.colbert,
            "dimensions": self.dimensions,
            "hnsw": self.graph.settings(),
            **({"progress": self.progress.to_dict()} if self.progress is not None else {}),
        }

    @staticmethod
    def exists(folder: str | os.PathLike[str]) -> bool:
        """Return True when ``folder`` holds a saved index (its manifest)."""
        return (Path(folder) / disk.MANIFEST).exists()

    @classmethod
    def load_or_create(
        cls, folder: str | os.PathLike[str], embedder: Embedder, *, dimensions: int | None = None
    ) -> Index:
        """Return the index saved in ``folder``, or a new one for ``embedder`` (``dimensions``)."""
        if cls.exists(folder):
            return cls.load(folder, embedder)
        return cls(embedder, dimensions=dimensions)

    @classmethod
    def load(cls, folder: str | os.PathLike[str], embedder: Embedder | None = None) -> Index:
        """Open a saved index; with a model, check it is the one that built the index.

        A writer committing meanwhile does not break the load: a generation whose files
        went away under it is given up for the newer one the manifest names.
        """
        root = Path(folder)
        for attempt in range(5):
            seen = disk.generation_number(root)
            try:
                return cls._load_generation(root, embedder)
            except SearchIndexError:
                if attempt == 4 or disk.generation_number(root) == seen:
                    raise  # not a commit under our feet: the folder is broken
        raise AssertionError("unreachable")

    @classmethod
    def _load_generation(cls, root: Path, embedder: Embedder | None) -> Index:
        import sqlite3

        manifest, data = disk.read_manifest(root)
        disk.check_model(manifest, embedder.fingerprint if embedder is not None else None, root)
        settings = manifest["hnsw"]
        keywords = manifest.get("keywords", "bm25")  # indexes before bge-m3: BM25
        colbert = bool(manifest.get("colbert", False))
        invalid = f"{root / disk.MANIFEST} holds invalid settings"
        try:
            dim, space = int(manifest["dim"]), manifest["space"]
            graph = VectorGraph(
                dim,
                space,
                M=int(settings["M"]),
                ef_construction=int(settings["ef_construction"]),
                ef=int(settings["ef"]),
                capacity=int(settings["capacity"]),
                exact_threshold=int(settings.get("exact_threshold", 20_000)),
                path=data / "vectors.hnsw",
            )
            table = DocumentTable.load(data / "store.sqlite", keywords, colbert)
        except (ValueError, KeyError, TypeError) as exc:
            raise SearchIndexError(f"{invalid}: {exc}") from exc
        except (RuntimeError, sqlite3.Error, OSError) as exc:
            raise SearchIndexError(f"cannot read the index at {root}: {exc}") from exc
        try:
            index = cls(
                embedder,
                dim=dim,
                space=space,
                keywords=keywords,
                colbert=colbert,
                dimensions=manifest.get("dimensions"),  # Matryoshka width, None: the model's
                graph=graph,
                table=table,
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise SearchIndexError(f"{invalid}: {exc}") from exc
        index.model = manifest.get("model", {})
        index.progress = BuildProgress.from_dict(manifest.get("progress"))
        index._bases = {str(root.resolve()): int(manifest["generation"].split("-")[1])}
        return index
