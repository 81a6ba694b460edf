"""A vector index: hnswlib for neighbours, SQLite for texts, metadata and BM25 (FTS5).

On disk an index is a folder: ``manifest.json`` (format version, model, settings, file
checksums) and the current generation's ``vectors.hnsw`` and ``store.sqlite``. Saves are
atomic (``store.manifest``): a crash at any point leaves the last good index loadable.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .._types import FloatArray
from ..embedder import Embedder
from ..engine.pooling import l2_normalize, truncate_dimensions
from ..errors import MissingHeadError
from ..hub.spec import model_record
from ..params import check_int
from . import manifest as disk
from .keywords import fts_query, salient_words
from .m3 import (
    SCHEMA,
    choose_keywords,
    encode_documents,
    forget,
    needs_m3,
    query_weights,
    remember,
    sparse_search,
    stored_colbert,
)
from .search import (
    Hit,
    checked_rows,
    document_vectors,
    exact_search,
    fuse_candidates,
    index_width,
    query_vector,
    rerank_hits,
    search_pool,
    similarities,
    sql_where,
    stored_metadata,
)

__all__ = ["Hit", "Index"]


class Index:
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
    ) -> None:
        if space not in ("cosine", "ip"):
            raise ValueError("space must be 'cosine' or 'ip'")
        if embedder is None and dim is None:
            raise ValueError("give an embedder or the vector dimension")
        # hnswlib takes these unchecked: M below 2 crashes the process.
        if dim is not None:
            check_int("dim", dim, 1)
        check_int("M", M, 2, 10_000)
        check_int("ef_construction", ef_construction, 1)
        check_int("ef", ef, 1)
        check_int("capacity", capacity, 0)
        check_int("exact_threshold", exact_threshold, 0)
        self.embedder = embedder
        # Matryoshka: the index keeps the model's vectors cut to ``dimensions``.
        self.dim, self.dimensions = index_width(embedder, dim, dimensions)
        self.space = space
        self.M = M
        self.ef_construction = ef_construction
        self._ef = ef
        # Up to this many vectors a search is exact (one matrix product, faster than a
        # graph walk at this size); above it, hnswlib's approximate search.
        self.exact_threshold = exact_threshold
        self._exact: tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]] | None = None
        self.model: dict[str, Any] = model_record(embedder)
        # The keyword side of hybrid search: "bm25" (SQLite FTS5) or "sparse" (bge-m3's
        # lexical weights, the default for a model that has them); ``colbert`` stores
        # ColBERT vectors for rerank_with="colbert" (else they are computed per query).
        self.keywords = choose_keywords(embedder, keywords)
        if colbert and (embedder is None or not embedder.capabilities.colbert):
            raise MissingHeadError("colbert=True needs a model with bge-m3's colbert head")
        self.colbert = colbert
        self._lock = threading.RLock()
        self._generation = 0
        self._db = self._new_db()
        self._hnsw = self._new_hnsw(max(capacity, 16))
        self._size = 0  # rows in docs, kept here: SQLite's count(*) scans the table

    # ----------------------------------------------------------------- setup
    @staticmethod
    def _new_db() -> sqlite3.Connection:
        db = sqlite3.connect(":memory:", check_same_thread=False)
        db.executescript(
            """
            CREATE TABLE docs (label INTEGER PRIMARY KEY, id TEXT UNIQUE NOT NULL,
                               text TEXT NOT NULL, metadata TEXT NOT NULL);
            CREATE VIRTUAL TABLE docs_fts USING fts5(text, content='docs', content_rowid='label');
            CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);
            """
            + SCHEMA
        )
        return db

    def _new_hnsw(self, capacity: int) -> Any:
        import hnswlib

        index = hnswlib.Index(space=self.space, dim=self.dim)
        index.init_index(max_elements=capacity, M=self.M, ef_construction=self.ef_construction)
        index.set_ef(self._ef)
        return index

    @property
    def ef(self) -> int:
        """Return the search breadth (higher: better recall, slower queries)."""
        return self._ef

    @ef.setter
    def ef(self, value: int) -> None:
        self._ef = check_int("ef", value, 1)
        self._hnsw.set_ef(self._ef)

    def __len__(self) -> int:
        return self._size

    def __contains__(self, doc_id: object) -> bool:
        row = self._db.execute("SELECT 1 FROM docs WHERE id = ?", (str(doc_id),)).fetchone()
        return row is not None

    # ----------------------------------------------------------------- writing
    def add(
        self,
        texts: Sequence[str],
        metadatas: Sequence[Mapping[str, Any]] | None = None,
        ids: Sequence[str] | None = None,
    ) -> list[str]:
        """Embed and add texts (an existing id is replaced); return their ids."""
        texts = list(texts)
        if self.embedder is not None and needs_m3(self):
            # bge-m3: the dense vector, lexical weights and ColBERT vectors of one pass
            vectors, lexical, multi = encode_documents(self, texts)
            vectors = truncate_dimensions(vectors, self.dimensions)
            return self.add_vectors(vectors, texts, metadatas, ids, m3=(lexical, multi))
        vectors = document_vectors(self.embedder, texts, self.dim, self.dimensions)
        return self.add_vectors(vectors, texts, metadatas, ids)

    def add_vectors(
        self,
        vectors: npt.ArrayLike,
        texts: Sequence[str] | None = None,
        metadatas: Sequence[Mapping[str, Any]] | None = None,
        ids: Sequence[str] | None = None,
        *,
        m3: tuple[Any, Any] | None = None,
    ) -> list[str]:
        """Add precomputed vectors with optional texts, metadata and ids; return the ids.

        An index with sparse keywords or stored ColBERT vectors computes them from the
        texts (``m3``: lexical weights and ColBERT vectors already computed).
        """
        if m3 is None and texts is not None and needs_m3(self):
            m3 = encode_documents(self, list(texts))[1:]
        with self._lock:
            first = self._next_label()
            array, texts, metas, ids = checked_rows(
                vectors,
                texts,
                metadatas,
                ids,
                self.dim,
                lambda count: [f"{first + i}" for i in range(count)],
            )
            n = len(ids)
            if n == 0:
                return []
            self.delete(ids)  # replaces existing ids; delete() skips unknown ones
            self._grow(n)
            labels = np.arange(first, first + n, dtype=np.int64)
            if self.space == "cosine":
                array = l2_normalize(array)
            self._hnsw.add_items(array, labels)
            self._exact = None
            rows = [
                (int(lab), i, t, json.dumps(m, ensure_ascii=False, default=str))
                for lab, i, t, m in zip(labels, ids, texts, metas, strict=True)
            ]
            self._db.executemany("INSERT INTO docs VALUES (?, ?, ?, ?)", rows)
            self._size += n
            self._db.executemany(
                "INSERT INTO docs_fts(rowid, text) VALUES (?, ?)", [(r[0], r[2]) for r in rows]
            )
            if m3 is not None:
                remember(self._db, labels.tolist(), *m3)
            self._db.execute(
                "INSERT OR REPLACE INTO meta VALUES ('next_label', ?)", (str(first + n),)
            )
            self._db.commit()
        return ids

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

    def _next_label(self) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key = 'next_label'").fetchone()
        return int(row[0]) if row else 0

    def _grow(self, extra: int) -> None:
        needed = self._hnsw.element_count + extra
        capacity = self._hnsw.get_max_elements()
        if needed > capacity:
            self._hnsw.resize_index(max(needed, capacity * 2))

    def delete(self, ids: Sequence[str]) -> int:
        """Remove documents by id; return how many existed."""
        removed = 0
        with self._lock:
            for doc_id in ids:
                row = self._db.execute(
                    "SELECT label, text FROM docs WHERE id = ?", (str(doc_id),)
                ).fetchone()
                if row is None:
                    continue
                label, text = row
                self._hnsw.mark_deleted(int(label))
                self._exact = None
                self._db.execute(
                    "INSERT INTO docs_fts(docs_fts, rowid, text) VALUES ('delete', ?, ?)",
                    (label, text),
                )
                self._db.execute("DELETE FROM docs WHERE label = ?", (label,))
                forget(self._db, [label])
                self._size -= 1
                removed += 1
            self._db.commit()
        return removed

    # ----------------------------------------------------------------- reading
    def get(self, doc_id: str) -> Hit | None:
        """Return the stored document with this id (score 0), or None."""
        row = self._db.execute(
            "SELECT id, text, metadata FROM docs WHERE id = ?", (str(doc_id),)
        ).fetchone()
        return Hit(row[0], 0.0, row[1], stored_metadata(row[2])) if row else None

    def iter_metadata(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """Yield (id, metadata) of every document."""
        for doc_id, meta in self._db.execute("SELECT id, metadata FROM docs").fetchall():
            yield doc_id, stored_metadata(meta)

    def ids_where(self, **equals: Any) -> list[str]:
        """Return ids whose metadata has all the given key = value pairs."""
        sql, args = sql_where(equals)
        return [r[0] for r in self._db.execute(f"SELECT id FROM docs {sql}", args)]

    def _rows(self, labels: Sequence[int]) -> dict[int, tuple[str, str, str]]:
        if not labels:
            return {}
        marks = ",".join("?" * len(labels))
        cursor = self._db.execute(
            f"SELECT label, id, text, metadata FROM docs WHERE label IN ({marks})",
            [int(x) for x in labels],
        )
        return {r[0]: (r[1], r[2], r[3]) for r in cursor}

    def _exact_matrix(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        if self._exact is None:
            labels = np.array(
                [r[0] for r in self._db.execute("SELECT label FROM docs")], dtype=np.int64
            )
            vectors = (
                np.asarray(self._hnsw.get_items(labels), dtype=np.float32)
                if len(labels)
                else np.empty((0, self.dim), np.float32)
            )
            self._exact = (labels, vectors)
        return self._exact

    def _vector_search(
        self, vector: npt.NDArray[np.float32], k: int, allowed: set[int] | None
    ) -> list[tuple[int, float]]:
        live = len(self) if allowed is None else len(allowed)
        k = min(k, live)
        if k <= 0:
            return []
        if len(self) <= self.exact_threshold:
            query = l2_normalize(vector) if self.space == "cosine" else vector
            return exact_search(*self._exact_matrix(), query, k, allowed)
        query = vector  # hnswlib normalises queries itself in cosine space
        predicate = None if allowed is None else (lambda label: label in allowed)
        while True:
            try:
                labels, distances = self._hnsw.knn_query(query, k=k, filter=predicate)
                break
            except RuntimeError:  # fewer reachable candidates than k
                if k == 1:
                    return []
                k = max(1, k // 2)
        return [(int(lab), 1.0 - float(d)) for lab, d in zip(labels[0], distances[0], strict=True)]

    def _keyword_search(
        self, text: str, k: int, allowed: set[int] | None
    ) -> list[tuple[int, float]]:
        """Return (label, relevance) pairs, best first: -FTS5's bm25, or lexical matching."""
        if self.keywords == "sparse":
            return sparse_search(self._db, query_weights(self.embedder, text), k, allowed)
        count = self.embedder.count_tokens if self.embedder is not None else None
        query = fts_query(salient_words(text, count))
        if not query:
            return []
        rows = self._db.execute(
            "SELECT rowid, bm25(docs_fts) FROM docs_fts WHERE docs_fts MATCH ? "
            "ORDER BY bm25(docs_fts) LIMIT ?",
            (query, k * 4 if allowed is not None else k),
        ).fetchall()
        found = [(int(r[0]), -float(r[1])) for r in rows]
        return [pair for pair in found if allowed is None or pair[0] in allowed][:k]

    def query_vector(self, query: str | npt.ArrayLike) -> tuple[FloatArray, str | None]:
        """Return a query's vector and its text (None when the query is a vector)."""
        return query_vector(self.embedder, self.dim, query, self.dimensions)

    def candidates(
        self,
        vector: npt.NDArray[np.float32],
        text: str | None,
        pool: int,
        *,
        filter: Mapping[str, Any] | None = None,
        hybrid: bool = True,
    ) -> tuple[list[tuple[int, float]], list[tuple[int, float]] | None]:
        """Return the dense and keyword candidate lists, each (label, score) best first.

        The keyword list is None when keywords take no part (no text, or ``hybrid`` off).
        Scores are comparable across indexes of one model, so shards can be merged.
        """
        with self._lock:
            allowed = None
            if filter:
                sql, args = sql_where(filter)
                allowed = {r[0] for r in self._db.execute(f"SELECT label FROM docs {sql}", args)}
            dense = self._vector_search(vector, pool, allowed)
            keyword = (
                self._keyword_search(text, pool, allowed) if hybrid and text is not None else None
            )
        return dense, keyword

    def hits_by_label(
        self, ranked: Sequence[tuple[int, float]], query: FloatArray | None = None
    ) -> dict[int, Hit]:
        """Return the stored documents of (label, score) pairs as Hits, keyed by label.

        A label deleted since it was ranked is left out. With the ``query`` vector each
        hit's ``similarity`` is its dense cosine (inner product in "ip" space).
        """
        with self._lock:
            rows = self._rows([lab for lab, _ in ranked])
            live = [lab for lab, _ in ranked if lab in rows]
            near = similarities(self._hnsw, live, query, self.space == "cosine")
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
    ) -> list[Hit]:
        """Return the k best documents for a query text (or vector), best first.

        ``filter`` keeps documents whose metadata equals every given value. ``hybrid``
        fuses vector and keyword rankings (reciprocal-rank fusion; score = fused score);
        keywords are BM25 or, with ``keywords="sparse"``, bge-m3's lexical weights.
        ``rerank_with`` (a cross-encoder Llama, or "colbert" for the index model's
        late interaction) rescores the top ``candidates`` and its scores become the scores.
        """
        pool = search_pool(k, candidates, hybrid or rerank_with is not None)
        if pool == 0:
            return []
        vector, text = self.query_vector(query)
        dense, keyword = self.candidates(vector, text, pool, filter=filter, hybrid=hybrid)
        ranked = fuse_candidates(dense, keyword, max(pool, k))
        found = self.hits_by_label(ranked, vector)
        hits = [found[lab] for lab, _ in ranked if lab in found]
        if rerank_with is not None and text is not None:
            hits = rerank_hits(hits, text, rerank_with, self.embedder, self._stored_colbert)
        return hits[:k]

    def _stored_colbert(self, ids: Sequence[str]) -> dict[str, FloatArray]:
        with self._lock:
            return stored_colbert(self._db, ids)

    # ----------------------------------------------------------------- persistence
    def save(self, folder: str | os.PathLike[str]) -> Path:
        """Write the index to a folder atomically (the previous save stays until replaced)."""
        from .persist import save_index

        return save_index(self, Path(folder))

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
        """Open a saved index; with a model, check it is the one that built the index."""
        from .persist import load_index

        return load_index(cls, Path(folder), embedder)
