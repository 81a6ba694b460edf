"""An index's documents in SQLite: texts, metadata, and the keyword table its scheme uses.

:class:`DocumentTable` owns one in-memory SQLite database and its schema:

- ``docs(label, id, text, metadata)`` and ``meta(key, value)`` (the next label);
- with BM25 keywords, ``docs_words``, an FTS5 table over each text's keyword words
  (``keywords.keyword_text``: identifiers whole and split, and the file path's words);
- with learned sparse or hashed-word keywords, ``sparse(label, token, weight)``, indexed
  by token: a document scores ``Σ q_t · d_t`` over the query's tokens (bge-m3's lexical
  matching score);
- ``colbert(label, width, vectors)``: ColBERT vectors as float16 bytes, for
  late-interaction rescoring, when the index keeps them.

Only the tables the scheme uses are built. ``save`` copies the database to a file and
``load`` reads one back (SQLite's online backup), adding what an older file lacks.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .._types import FloatArray
from ..outputs import SparseVector
from .keywords import fts_query, keyword_text
from .search import Hit, sql_where, stored_metadata

__all__ = ["DocumentTable"]

_DOCS = """
CREATE TABLE IF NOT EXISTS docs (label INTEGER PRIMARY KEY, id TEXT UNIQUE NOT NULL,
                                 text TEXT NOT NULL, metadata TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
"""
_FTS = """
CREATE VIRTUAL TABLE IF NOT EXISTS docs_words
    USING fts5(words, tokenize="unicode61 tokenchars '_'");
"""
_OLD_FTS = "docs_fts"  # indexes before identifier words: FTS5 over the plain text
_SPARSE = """
CREATE TABLE IF NOT EXISTS sparse (label INTEGER NOT NULL, token INTEGER NOT NULL,
                                   weight REAL NOT NULL);
CREATE INDEX IF NOT EXISTS sparse_token ON sparse(token);
CREATE INDEX IF NOT EXISTS sparse_label ON sparse(label);
"""
_COLBERT = """
CREATE TABLE IF NOT EXISTS colbert (label INTEGER PRIMARY KEY, width INTEGER NOT NULL,
                                    vectors BLOB NOT NULL);
"""


class DocumentTable:
    """Documents by label: text, metadata, keyword terms and ColBERT vectors, in SQLite."""

    def __init__(self, keywords: str, colbert: bool, db: sqlite3.Connection | None = None) -> None:
        self.full_text = keywords == "bm25"
        self.sparse = keywords in ("sparse", "words")
        self.colbert = colbert
        self._db = db if db is not None else sqlite3.connect(":memory:", check_same_thread=False)
        schema = _DOCS + (_FTS if self.full_text else "") + (_SPARSE if self.sparse else "")
        self._db.executescript(schema + (_COLBERT if colbert else ""))
        if self.full_text:
            self._upgrade_words()
        # rows in docs, kept here: SQLite's count(*) scans the table
        self.size = int(self._db.execute("SELECT count(*) FROM docs").fetchone()[0])

    def _upgrade_words(self) -> None:
        """Give a table saved before identifier words its ``docs_words``, from its texts."""
        db = self._db
        old = db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (_OLD_FTS,)
        ).fetchone()
        if old is None:
            return
        db.execute(f"DROP TABLE {_OLD_FTS}")
        db.execute("DELETE FROM docs_words")
        db.executemany(
            "INSERT INTO docs_words(rowid, words) VALUES (?, ?)",
            [
                (label, keyword_text(text, stored_metadata(meta)))
                for label, text, meta in db.execute("SELECT label, text, metadata FROM docs")
            ],
        )
        db.commit()

    # ----------------------------------------------------------------- writing
    def next_label(self) -> int:
        """Return the first label not used yet."""
        row = self._db.execute("SELECT value FROM meta WHERE key = 'next_label'").fetchone()
        return int(row[0]) if row else 0

    def insert(
        self,
        labels: Sequence[int],
        ids: Sequence[str],
        texts: Sequence[str],
        metadatas: Sequence[Mapping[str, Any]],
        terms: Sequence[SparseVector | None] | None,
        colbert: Sequence[FloatArray] | None,
    ) -> None:
        """Add documents under new labels, with the terms and vectors the table keeps."""
        rows = [
            (int(label), doc_id, text, json.dumps(meta, ensure_ascii=False, default=str))
            for label, doc_id, text, meta in zip(labels, ids, texts, metadatas, strict=True)
        ]
        db = self._db
        db.executemany("INSERT INTO docs VALUES (?, ?, ?, ?)", rows)
        if self.full_text:
            db.executemany(
                "INSERT INTO docs_words(rowid, words) VALUES (?, ?)",
                [(r[0], keyword_text(r[2], meta)) for r, meta in zip(rows, metadatas, strict=True)],
            )
        if self.sparse and terms is not None:
            db.executemany(
                "INSERT INTO sparse VALUES (?, ?, ?)",
                [
                    (int(label), token, weight)
                    for label, vector in zip(labels, terms, strict=True)
                    if vector is not None
                    for token, weight in zip(
                        vector.indices.tolist(), vector.values.tolist(), strict=True
                    )
                ],
            )
        if self.colbert and colbert is not None:
            db.executemany(
                "INSERT OR REPLACE INTO colbert VALUES (?, ?, ?)",
                [
                    (int(label), int(m.shape[1]), np.ascontiguousarray(m, dtype="<f2").tobytes())
                    for label, m in zip(labels, colbert, strict=True)
                ],
            )
        last = max((int(label) for label in labels), default=self.next_label() - 1)
        db.execute("INSERT OR REPLACE INTO meta VALUES ('next_label', ?)", (str(last + 1),))
        db.commit()
        self.size += len(rows)

    def delete(self, ids: Sequence[str]) -> list[int]:
        """Remove documents by id; return the labels of those that existed."""
        db = self._db
        removed = []
        for doc_id in ids:
            row = db.execute("SELECT label FROM docs WHERE id = ?", (str(doc_id),)).fetchone()
            if row is None:
                continue
            label = row[0]
            if self.full_text:
                db.execute("DELETE FROM docs_words WHERE rowid = ?", (label,))
            db.execute("DELETE FROM docs WHERE label = ?", (label,))
            if self.sparse:
                db.execute("DELETE FROM sparse WHERE label = ?", (label,))
            if self.colbert:
                db.execute("DELETE FROM colbert WHERE label = ?", (label,))
            removed.append(int(label))
        db.commit()
        self.size -= len(removed)
        return removed

    # ----------------------------------------------------------------- reading
    def __contains__(self, doc_id: object) -> bool:
        row = self._db.execute("SELECT 1 FROM docs WHERE id = ?", (str(doc_id),)).fetchone()
        return row is not None

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

    def ids_where(self, equals: Mapping[str, Any]) -> list[str]:
        """Return ids whose metadata has all the given key = value pairs."""
        sql, args = sql_where(equals)
        return [r[0] for r in self._db.execute(f"SELECT id FROM docs {sql}", args)]

    def labels_where(self, equals: Mapping[str, Any]) -> set[int]:
        """Return the labels whose metadata has all the given key = value pairs."""
        sql, args = sql_where(equals)
        return {r[0] for r in self._db.execute(f"SELECT label FROM docs {sql}", args)}

    def labels(self) -> npt.NDArray[np.int64]:
        """Return every live label."""
        rows = self._db.execute("SELECT label FROM docs").fetchall()
        return np.array([r[0] for r in rows], dtype=np.int64)

    def rows(self, labels: Sequence[int]) -> dict[int, tuple[str, str, str]]:
        """Return label -> (id, text, metadata as stored) of the labels that exist."""
        if not labels:
            return {}
        marks = ",".join("?" * len(labels))
        cursor = self._db.execute(
            f"SELECT label, id, text, metadata FROM docs WHERE label IN ({marks})",
            [int(x) for x in labels],
        )
        return {r[0]: (r[1], r[2], r[3]) for r in cursor}

    def keyword_search(
        self, terms: Any, k: int, allowed: set[int] | None
    ) -> list[tuple[int, float]]:
        """Return (label, relevance) pairs, best first, for a query's keyword terms.

        ``terms`` are words (full text: -FTS5's bm25) or a sparse vector (the inner
        product with each document's terms).
        """
        if terms is None or k <= 0:
            return []
        limit = k * 4 if allowed is not None else k
        if isinstance(terms, SparseVector):
            found = self._sparse_search(terms, limit) if self.sparse else []
        else:
            query = fts_query(terms)
            if not query or not self.full_text:
                return []
            rows = self._db.execute(
                "SELECT rowid, bm25(docs_words) FROM docs_words WHERE docs_words MATCH ? "
                "ORDER BY bm25(docs_words) LIMIT ?",
                (query, limit),
            ).fetchall()
            found = [(int(r[0]), -float(r[1])) for r in rows]
        return [pair for pair in found if allowed is None or pair[0] in allowed][:k]

    def _sparse_search(self, terms: SparseVector, limit: int) -> list[tuple[int, float]]:
        tokens = terms.indices.tolist()
        if not tokens:
            return []
        cases = " ".join("WHEN ? THEN ?" for _ in tokens)
        args: list[Any] = []
        for token, weight in zip(tokens, terms.values.tolist(), strict=True):
            args += (token, weight)
        marks = ",".join("?" * len(tokens))
        rows = self._db.execute(
            f"SELECT label, SUM(weight * CASE token {cases} END) AS s FROM sparse "
            f"WHERE token IN ({marks}) GROUP BY label ORDER BY s DESC, label LIMIT ?",
            [*args, *tokens, limit],
        ).fetchall()
        return [(int(r[0]), float(r[1])) for r in rows if r[1] > 0]

    def stored_colbert(self, ids: Sequence[str]) -> dict[str, FloatArray]:
        """Return the stored ColBERT vectors of documents, by id (those without left out)."""
        if not ids or not self.colbert:
            return {}
        marks = ",".join("?" * len(ids))
        rows = self._db.execute(
            f"SELECT d.id, c.width, c.vectors FROM colbert c JOIN docs d ON d.label = c.label "
            f"WHERE d.id IN ({marks})",
            list(ids),
        ).fetchall()
        return {
            r[0]: np.frombuffer(r[2], dtype="<f2").reshape(-1, r[1]).astype(np.float32)
            for r in rows
        }

    def count(self, table: str) -> int:
        """Return the rows of one of the table's own tables (``docs``, ``sparse``, …)."""
        return int(self._db.execute(f"SELECT count(*) FROM {self._own(table)}").fetchone()[0])

    def labels_in(self, table: str) -> set[int]:
        """Return the distinct labels that rows of one of the table's own tables hold."""
        column = "rowid" if table == "docs_words" else "label"
        rows = self._db.execute(f"SELECT DISTINCT {column} FROM {self._own(table)}")
        return {int(r[0]) for r in rows}

    def _own(self, table: str) -> str:
        kept = {"docs": True, "sparse": self.sparse, "colbert": self.colbert}
        if not kept.get(table, table == "docs_words" and self.full_text):
            raise ValueError(f"this document table keeps no {table!r} table")
        return table

    # ----------------------------------------------------------------- files
    def save(self, path: Path) -> None:
        """Copy the database into a new SQLite file at ``path``."""
        self._db.commit()  # a backup waits forever on an open write transaction
        target = sqlite3.connect(path)
        try:
            self._db.backup(target)
        finally:
            target.close()

    @classmethod
    def load(cls, path: Path, keywords: str, colbert: bool) -> DocumentTable:
        """Return the table saved at ``path``, read into memory (the file is not kept open)."""
        source = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        db = sqlite3.connect(":memory:", check_same_thread=False)
        try:
            source.backup(db)
        finally:
            source.close()
        return cls(keywords, colbert, db)
