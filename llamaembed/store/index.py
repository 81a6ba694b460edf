"""A vector index: hnswlib for neighbours, SQLite for texts, metadata and BM25 (FTS5).

On disk an index is a folder::

    manifest.json          format version, model fingerprint, parameters, file checksums
    gen-000007/vectors.hnsw
    gen-000007/store.sqlite

``save`` writes a new generation folder, fsyncs it, then atomically replaces
``manifest.json``; only then is the previous generation removed. A crash at any point
leaves a manifest that names complete files, so the last good index always loads.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .._files import atomic_path, fsync_dir, sha256_file
from ..embedder import Embedder
from ..engine.pooling import l2_normalize, reciprocal_rank_fusion
from ..errors import IndexModelMismatchError, SearchIndexError
from ..hub.spec import model_record
from ..params import check_int
from .keywords import fts_query, salient_words

__all__ = [
    "FORMAT_VERSION",
    "MANIFEST",
    "Hit",
    "Index",
    "embed_with",
    "fuse_candidates",
    "query_vector",
    "rerank_hits",
    "search_pool",
]

FORMAT_VERSION = 1
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Hit:
    """One search result."""

    id: str
    score: float
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)


def _metadata(stored: str) -> dict[str, Any]:
    """Decode a metadata column; most documents have none, so skip json for those."""
    return {} if stored == "{}" else dict(json.loads(stored))


def rerank_hits(hits: list[Hit], text: str, reranker: Any) -> list[Hit]:
    """Return hits rescored by a cross-encoder, best first; its scores become the scores."""
    if not hits:
        return hits
    scored = reranker.rerank(text, [h.text for h in hits])
    order = np.argsort(-np.asarray(scored), kind="stable")
    return [Hit(hits[i].id, float(scored[i]), hits[i].text, hits[i].metadata) for i in order]


def embed_with(
    embedder: Embedder | None, texts: list[str], *, query: bool
) -> npt.NDArray[np.float32]:
    """Embed texts with an index's model: its query or document side where it has one."""
    if embedder is None:
        raise SearchIndexError("this index has no model: pass vectors or open it with one")
    if query:
        return np.asarray([embedder.embed_query(t) for t in texts], dtype=np.float32)
    return np.asarray(embedder.embed_documents(texts), dtype=np.float32)


def query_vector(
    embedder: Embedder | None, dim: int, query: str | npt.ArrayLike
) -> tuple[npt.NDArray[np.float32], str | None]:
    """Return a query's vector and its text (None when the query is a vector)."""
    if isinstance(query, str):
        return embed_with(embedder, [query], query=True)[0], query
    vector = np.asarray(query, dtype=np.float32).reshape(-1)
    if vector.shape != (dim,):
        raise ValueError(f"query vector must have {dim} values")
    if not np.all(np.isfinite(vector)):
        raise ValueError("query vector contains NaN or infinity")
    return vector, None


def search_pool(k: int, candidates: int | None, widen: bool) -> int:
    """Return how many candidates a search for ``k`` hits gathers (0: none are wanted).

    ``widen`` (hybrid search or a rerank) gathers ``max(4k, 40)`` unless ``candidates``
    says how many.
    """
    if candidates is not None and candidates < 1:
        raise ValueError(f"candidates must be at least 1, got {candidates}")
    if k <= 0:
        return 0
    return candidates or (max(k * 4, 40) if widen else k)


def fuse_candidates(
    dense: Sequence[tuple[Any, float]],
    keyword: Sequence[tuple[Any, float]] | None,
    limit: int,
) -> list[tuple[Any, float]]:
    """Return the first ``limit`` (key, score) pairs: dense alone, or fused with keywords.

    Both lists run best first; a key is any hashable (a label, or a shard and a label).
    The keyword list goes first into reciprocal-rank fusion, so an exact match on a rare
    word wins a tie.
    """
    if keyword is None:
        return list(dense[:limit])
    fused = reciprocal_rank_fusion([[key for key, _ in keyword], [key for key, _ in dense]])
    return fused[:limit]


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
        self.dim = int(dim if dim is not None else embedder.n_embd)  # type: ignore[union-attr]
        if embedder is not None and embedder.n_embd != self.dim:
            raise IndexModelMismatchError(
                f"the model makes {embedder.n_embd}-d vectors but the index holds {self.dim}-d"
            )
        self.space = space
        self.M = M
        self.ef_construction = ef_construction
        self._ef = ef
        # Up to this many vectors a search is exact (one matrix product, faster than a
        # graph walk at this size); above it, hnswlib's approximate search.
        self.exact_threshold = exact_threshold
        self._exact: tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]] | None = None
        self.model: dict[str, Any] = model_record(embedder)
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
    def _embed(self, texts: list[str], *, query: bool) -> npt.NDArray[np.float32]:
        return embed_with(self.embedder, texts, query=query)

    def add(
        self,
        texts: Sequence[str],
        metadatas: Sequence[Mapping[str, Any]] | None = None,
        ids: Sequence[str] | None = None,
    ) -> list[str]:
        """Embed and add texts (an existing id is replaced); return their ids."""
        texts = list(texts)
        vectors = self._embed(texts, query=False) if texts else np.empty((0, self.dim), np.float32)
        return self.add_vectors(vectors, texts, metadatas, ids)

    def add_vectors(
        self,
        vectors: npt.ArrayLike,
        texts: Sequence[str] | None = None,
        metadatas: Sequence[Mapping[str, Any]] | None = None,
        ids: Sequence[str] | None = None,
    ) -> list[str]:
        """Add precomputed vectors with optional texts, metadata and ids; return the ids."""
        array = np.asarray(vectors, dtype=np.float32)
        if array.ndim != 2 or array.shape[1] != self.dim:
            raise ValueError(f"expected vectors of shape (n, {self.dim}), got {array.shape}")
        n = array.shape[0]
        if not np.all(np.isfinite(array)):
            raise ValueError("vectors contain NaN or infinity")
        texts = list(texts) if texts is not None else [""] * n
        metas = [dict(m) for m in metadatas] if metadatas is not None else [{}] * n
        with self._lock:
            first = self._next_label()
            ids = [str(i) for i in ids] if ids is not None else [f"{first + i}" for i in range(n)]
            if not len(texts) == len(metas) == len(ids) == n:
                raise ValueError("vectors, texts, metadatas and ids must have the same length")
            if len(set(ids)) != n:
                raise ValueError("ids must be unique within one call")
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
        return Hit(row[0], 0.0, row[1], _metadata(row[2])) if row else None

    def iter_metadata(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """Yield (id, metadata) of every document."""
        for doc_id, meta in self._db.execute("SELECT id, metadata FROM docs").fetchall():
            yield doc_id, _metadata(meta)

    def ids_where(self, **equals: Any) -> list[str]:
        """Return ids whose metadata has all the given key = value pairs."""
        sql, args = self._where(equals)
        return [r[0] for r in self._db.execute(f"SELECT id FROM docs {sql}", args)]

    @staticmethod
    def _where(equals: Mapping[str, Any]) -> tuple[str, list[Any]]:
        clauses, args = [], []
        for key, value in equals.items():
            if not re.fullmatch(r"[A-Za-z0-9_]+", key):
                raise ValueError(f"metadata filter keys are letters, digits and _: {key!r}")
            clauses.append(f"json_extract(metadata, '$.{key}') = ?")
            args.append(value if not isinstance(value, bool) else int(value))
        return ("WHERE " + " AND ".join(clauses), args) if clauses else ("", [])

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

    def _exact_search(
        self, query: npt.NDArray[np.float32], k: int, allowed: set[int] | None
    ) -> list[tuple[int, float]]:
        labels, vectors = self._exact_matrix()
        scores = vectors @ query
        if allowed is not None:
            scores = np.where(np.isin(labels, list(allowed)), scores, -np.inf)
        top = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(int(labels[i]), float(scores[i])) for i in top if np.isfinite(scores[i])]

    def _vector_search(
        self, vector: npt.NDArray[np.float32], k: int, allowed: set[int] | None
    ) -> list[tuple[int, float]]:
        live = len(self) if allowed is None else len(allowed)
        k = min(k, live)
        if k <= 0:
            return []
        if len(self) <= self.exact_threshold:
            query = l2_normalize(vector) if self.space == "cosine" else vector
            return self._exact_search(query, k, allowed)
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
        """Return (label, BM25 relevance) pairs, best first (relevance = -FTS5's bm25)."""
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

    def query_vector(
        self, query: str | npt.ArrayLike
    ) -> tuple[npt.NDArray[np.float32], str | None]:
        """Return a query's vector and its text (None when the query is a vector)."""
        return query_vector(self.embedder, self.dim, query)

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
                sql, args = self._where(filter)
                allowed = {r[0] for r in self._db.execute(f"SELECT label FROM docs {sql}", args)}
            dense = self._vector_search(vector, pool, allowed)
            keyword = (
                self._keyword_search(text, pool, allowed) if hybrid and text is not None else None
            )
        return dense, keyword

    def hits_by_label(self, ranked: Sequence[tuple[int, float]]) -> dict[int, Hit]:
        """Return the stored documents of (label, score) pairs as Hits, keyed by label.

        A label deleted since it was ranked is left out.
        """
        with self._lock:
            rows = self._rows([lab for lab, _ in ranked])
        return {
            lab: Hit(rows[lab][0], float(score), rows[lab][1], _metadata(rows[lab][2]))
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
        fuses vector and BM25 rankings (reciprocal-rank fusion; score = fused score).
        ``rerank_with`` (a cross-encoder Llama) rescores the top ``candidates`` and its
        scores become the hit scores.
        """
        pool = search_pool(k, candidates, hybrid or rerank_with is not None)
        if pool == 0:
            return []
        vector, text = self.query_vector(query)
        dense, keyword = self.candidates(vector, text, pool, filter=filter, hybrid=hybrid)
        ranked = fuse_candidates(dense, keyword, max(pool, k))
        found = self.hits_by_label(ranked)
        hits = [found[lab] for lab, _ in ranked if lab in found]
        if rerank_with is not None and text is not None:
            hits = rerank_hits(hits, text, rerank_with)
        return hits[:k]

    # ----------------------------------------------------------------- persistence
    def save(self, folder: str | os.PathLike[str]) -> Path:
        """Write the index to a folder atomically (the previous save stays until replaced)."""
        root = Path(folder)
        root.mkdir(parents=True, exist_ok=True)
        with self._lock:
            previous = self._read_generation(root)
            generation = max(previous, self._generation) + 1
            data = root / f"gen-{generation:06d}"
            if data.exists():
                shutil.rmtree(data)
            data.mkdir()
            self._hnsw.save_index(str(data / "vectors.hnsw"))
            self._db.commit()  # a backup waits forever on an open write transaction
            target = sqlite3.connect(data / "store.sqlite")
            try:
                self._db.backup(target)
            finally:
                target.close()
            for file in data.iterdir():
                with file.open("rb+") as handle:
                    os.fsync(handle.fileno())
            fsync_dir(data)
            manifest = {
                "format_version": FORMAT_VERSION,
                "generation": data.name,
                "dim": self.dim,
                "space": self.space,
                "normalized": self.space == "cosine",
                "count": len(self),
                "model": self.model,
                "hnsw": {
                    "M": self.M,
                    "ef_construction": self.ef_construction,
                    "ef": self._ef,
                    "capacity": int(self._hnsw.get_max_elements()),
                    "exact_threshold": self.exact_threshold,
                },
                "checksums": {f.name: sha256_file(f) for f in sorted(data.iterdir())},
            }
            with atomic_path(root / MANIFEST) as tmp:
                tmp.write_text(json.dumps(manifest, indent=1), encoding="utf-8")
            self._generation = generation
            for old in root.glob("gen-*"):
                if old.name != data.name and old.is_dir():
                    shutil.rmtree(old, ignore_errors=True)
        return root

    @staticmethod
    def _read_generation(root: Path) -> int:
        try:
            name = json.loads((root / MANIFEST).read_text())["generation"]
            return int(name.split("-")[1])
        except (OSError, ValueError, KeyError, IndexError, TypeError):
            return 0

    @staticmethod
    def exists(folder: str | os.PathLike[str]) -> bool:
        """Return True when ``folder`` holds a saved index (its manifest)."""
        return (Path(folder) / MANIFEST).exists()

    @classmethod
    def load_or_create(cls, folder: str | os.PathLike[str], embedder: Embedder) -> Index:
        """Return the index saved in ``folder``, or a new empty one for ``embedder``."""
        return cls.load(folder, embedder) if cls.exists(folder) else cls(embedder)

    @classmethod
    def load(cls, folder: str | os.PathLike[str], embedder: Embedder | None = None) -> Index:
        """Open a saved index; with a model, check it is the one that built the index."""
        root = Path(folder)
        manifest_file = root / MANIFEST
        if not manifest_file.exists():
            raise SearchIndexError(f"no index at {root} (missing {MANIFEST})")
        try:
            manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
            version = manifest["format_version"]
            data = root / manifest["generation"]
            hnsw = manifest["hnsw"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise SearchIndexError(f"{manifest_file} is unreadable or incomplete: {exc}") from exc
        if version != FORMAT_VERSION:
            raise SearchIndexError(
                f"index format {version} is not supported (expected {FORMAT_VERSION})"
            )
        for name, expected in manifest.get("checksums", {}).items():
            file = data / name
            if not file.exists() or sha256_file(file) != expected:
                raise SearchIndexError(
                    f"{file} is missing, truncated or modified (checksum mismatch); "
                    "restore the folder from a backup or rebuild the index"
                )
        recorded = manifest.get("model", {}).get("fingerprint")
        if embedder is not None and recorded and embedder.fingerprint != recorded:
            raise IndexModelMismatchError(
                f"the index at {root} was built with another model "
                f"({manifest['model'].get('path', recorded)}); open it with that model or "
                "rebuild the index"
            )
        try:
            index = cls(
                embedder,
                dim=int(manifest["dim"]),
                space=manifest["space"],
                M=int(hnsw["M"]),
                ef_construction=int(hnsw["ef_construction"]),
                ef=int(hnsw["ef"]),
                capacity=16,
                exact_threshold=int(hnsw.get("exact_threshold", 20_000)),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise SearchIndexError(f"{manifest_file} holds invalid settings: {exc}") from exc
        index.model = manifest.get("model", {})
        index._generation = int(manifest["generation"].split("-")[1])
        try:
            import hnswlib

            index._hnsw = hnswlib.Index(space=index.space, dim=index.dim)
            index._hnsw.load_index(str(data / "vectors.hnsw"), max_elements=int(hnsw["capacity"]))
            index._hnsw.set_ef(index._ef)
            source = sqlite3.connect(f"file:{data / 'store.sqlite'}?mode=ro", uri=True)
            index._db = sqlite3.connect(":memory:", check_same_thread=False)
            source.backup(index._db)
            source.close()
            index._size = int(index._db.execute("SELECT count(*) FROM docs").fetchone()[0])
        except (RuntimeError, sqlite3.Error, OSError) as exc:
            raise SearchIndexError(f"cannot read the index at {root}: {exc}") from exc
        return index
