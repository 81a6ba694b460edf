"""A Milvus collection behind ``Index``'s interface: search past one machine on Milvus.

``MilvusStore(embedder, uri=..., collection=...)`` adds, searches (dense, or hybrid with
keyword sides fused as ``Index`` fuses them), gets and deletes as ``Index`` does. A local
``*.db`` file opens Milvus Lite, the embedded engine pymilvus starts itself; an
``http://host:19530`` URI reaches a Milvus server or cluster with the same code.

The keyword side is Milvus's own BM25 function over the text (``keywords="bm25"``, the
default; Milvus 2.5+), bge-m3's lexical weights (``"sparse"``, the default for such a
model), or, on an engine without BM25 functions, word-count vectors computed here
(``"words"``; sparse vectors need Milvus 2.4+). ``"none"`` keeps no keyword side (dense
search only), for servers older than that. The model's
fingerprint and spec are stored in the collection's properties: opening it with another
model is an ``IndexModelMismatchError``.

Needs pymilvus (``pip install 'llamaembed[milvus]'``), imported when a store opens.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import uuid
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from ..code.ranking import CodeRanking
from ..embedder import Embedder
from ..engine.pooling import l2_normalize
from ..errors import IndexModelMismatchError, KeywordsError, SearchIndexError
from ..hub.spec import model_record
from ..outputs import SparseVector
from .base import EncodedWrites
from .encoder import DocumentEncoder, Encoded
from .keywords import SCHEMES, KeywordMatches, KeywordScheme, KeywordSide, choose_scheme
from .milvus_schema import MAX_TEXT_BYTES, create_collection, milvus_filter, words_field
from .search import (
    DEFAULT_RANKING,
    Hit,
    checked_rows,
    code_ranked,
    fuse_candidates,
    index_width,
    is_any_of,
    rerank_hits,
    search_pool,
    weighted_sides,
)

__all__ = ["KEYWORDS", "MilvusStore"]

KEYWORDS = ("bm25", "sparse", "words", "none")
"""The keyword schemes a ``MilvusStore`` supports."""

FORMAT = "2"  # 2: a words field feeds BM25 (1: the text itself, still read)
_PREFIX = "llamaembed."
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,254}")
_EMPTY_SPARSE = {2**32 - 2: 1e-9}  # Milvus refuses empty sparse rows; no query has this key
_SHORT_ANY_OF = 16  # longer any-of lists are matched as ids (MilvusStore._expression)


class MilvusStore(EncodedWrites):
    """Texts, metadata and vectors in a Milvus collection, searched like an ``Index``."""

    def __init__(
        self,
        embedder: Embedder,
        *,
        uri: str = "llamaembed.db",
        collection: str = "llamaembed",
        dimensions: int | None = None,
        keywords: str | None = None,
        token: str | None = None,
        index_type: str | None = None,
    ) -> None:
        if not _NAME.fullmatch(collection):
            raise ValueError(
                f"a collection name is letters, digits and _, not starting with a digit: "
                f"{collection!r}"
            )
        local = not re.match(r"(https?|tcp|grpc)://", uri)
        if local and not uri.endswith(".db"):
            raise ValueError(f"a Milvus Lite file name ends in .db: {uri!r}")
        try:
            from pymilvus import MilvusClient
            from pymilvus.exceptions import MilvusException
        except ImportError as exc:
            raise ImportError(
                "MilvusStore needs pymilvus: pip install 'llamaembed[milvus]'"
            ) from exc
        self._error: type[Exception] = MilvusException
        self.embedder = embedder
        self.uri = uri
        self.collection = collection
        # Milvus Lite searches rows not yet flushed by brute force in Python-side segments:
        # 600 ms a query at 20,000 rows, against 30 ms once flushed. So a local store
        # flushes before the first search after writes (a server seals segments itself).
        self._local = local
        self._unflushed = False
        self._words_field = True  # BM25 reads the words field (format 2), not the text
        try:
            self._client = MilvusClient(uri=uri, token=token or "")
        except MilvusException as exc:
            raise SearchIndexError(f"cannot reach Milvus at {uri}: {exc.message}") from exc
        try:
            with self._milvus("open"):
                if self._client.has_collection(collection):
                    self._open_existing(dimensions, keywords)
                else:
                    self.dim, self.dimensions = index_width(embedder, None, dimensions)
                    self.scheme = self._create(
                        keywords, index_type or ("FLAT" if local else "AUTOINDEX")
                    )
                self._client.load_collection(collection)
        except BaseException:
            self._client.close()  # a refused open leaves no connection (nor file lock) behind
            raise
        self.model: dict[str, Any] = model_record(embedder)
        self.encoder = DocumentEncoder(embedder, self.dim, self.dimensions, self.scheme.wants)

    @property
    def keywords(self) -> str:
        """Return the keyword scheme's name: "bm25", "sparse", "words" or "none"."""
        return self.scheme.name

    # ----------------------------------------------------------------- setup
    @contextlib.contextmanager
    def _milvus(self, action: str) -> Iterator[None]:
        """Turn Milvus's errors inside the block into ours, naming what failed."""
        try:
            yield
        except self._error as exc:
            message = getattr(exc, "message", str(exc))
            raise SearchIndexError(
                f"Milvus could not {action} ({self.uri}, {self.collection}): {message}"
            ) from exc

    @staticmethod
    def recorded_model(
        uri: str, collection: str, token: str | None = None
    ) -> dict[str, Any] | None:
        """Return the model record stored with a collection, or None if it has none.

        A local file that does not exist is not created.
        """
        from pymilvus import MilvusClient
        from pymilvus.exceptions import MilvusException

        if not re.match(r"(https?|tcp|grpc)://", uri) and not os.path.exists(uri):
            return None
        try:
            client = MilvusClient(uri=uri, token=token or "")
        except MilvusException as exc:
            raise SearchIndexError(f"cannot reach Milvus at {uri}: {exc.message}") from exc
        try:
            if not client.has_collection(collection):
                return None
            properties = client.describe_collection(collection).get("properties", {})
            record = properties.get(_PREFIX + "model")
            return dict(json.loads(record)) if record else None
        except MilvusException as exc:
            raise SearchIndexError(f"Milvus at {uri}: {exc.message}") from exc
        finally:
            client.close()

    def _open_existing(self, dimensions: int | None, keywords: str | None) -> None:
        properties = self._client.describe_collection(self.collection).get("properties", {})
        if properties.get(_PREFIX + "format") not in (FORMAT, "1"):
            raise SearchIndexError(
                f"collection {self.collection} at {self.uri} was not made by llamaembed; "
                "choose another collection name"
            )
        self._words_field = properties[_PREFIX + "format"] != "1"
        fingerprint = properties[_PREFIX + "fingerprint"]
        if fingerprint != self.embedder.fingerprint:
            name = json.loads(properties.get(_PREFIX + "model", "{}")).get("name", "?")
            raise IndexModelMismatchError(
                f"collection {self.collection} was built with another model ({name}, "
                f"fingerprint {fingerprint[:12]}); open it with that model or use a new collection"
            )
        self.dim = int(properties[_PREFIX + "dim"])
        stored = properties.get(_PREFIX + "dimensions") or None
        self.dimensions = int(stored) if stored else None
        if dimensions is not None and dimensions != self.dimensions:
            raise IndexModelMismatchError(
                f"collection {self.collection} holds {self.dim}-d vectors, not {dimensions}-d"
            )
        index_width(self.embedder, self.dim, self.dimensions)  # the model still fits
        self.scheme = choose_scheme(self.embedder, properties[_PREFIX + "keywords"], KEYWORDS)
        if keywords is not None and keywords != self.keywords:
            raise KeywordsError(
                f"collection {self.collection} keeps {self.keywords} keywords, not {keywords}"
            )

    def _create(self, keywords: str | None, index_type: str) -> KeywordScheme:
        scheme = choose_scheme(self.embedder, keywords, KEYWORDS)
        try:
            self._create_collection(scheme.name, index_type)
        except self._error as exc:
            if scheme.name != "bm25" or keywords is not None:
                raise
            # an engine without full-text functions (Milvus < 2.5): our own word vectors
            if self._client.has_collection(self.collection):  # made in part: start again
                self._client.drop_collection(self.collection)
            warnings.warn(
                f"this Milvus has no BM25 function ({getattr(exc, 'message', exc)}); "
                "hybrid search uses word vectors computed by llamaembed",
                stacklevel=3,
            )
            scheme = SCHEMES["words"]
            self._create_collection(scheme.name, index_type)
        return scheme

    def _create_collection(self, keywords: str, index_type: str) -> None:
        properties = {
            _PREFIX + "format": FORMAT,
            _PREFIX + "fingerprint": self.embedder.fingerprint,
            _PREFIX + "model": json.dumps(model_record(self.embedder), ensure_ascii=False),
            _PREFIX + "dim": str(self.dim),
            _PREFIX + "dimensions": str(self.dimensions or ""),
            _PREFIX + "keywords": keywords,
        }
        create_collection(self._client, self.collection, self.dim, keywords, index_type, properties)

    def _flush(self) -> None:
        if self._unflushed:
            with self._milvus("flush"):
                self._client.flush(self.collection)
            self._unflushed = False

    def close(self) -> None:
        """Close the connection (a Milvus Lite file's engine stops with its last client)."""
        self._flush()
        self._client.close()

    def __enter__(self) -> MilvusStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------- writing
    def add_encoded(
        self,
        encoded: Encoded,
        texts: Sequence[str] | None = None,
        metadatas: Sequence[Mapping[str, Any]] | None = None,
        ids: Sequence[str] | None = None,
    ) -> list[str]:
        """Add an encoded batch (``encoder.documents``) with texts, metadata and ids."""
        array, texts, metas, ids = checked_rows(
            encoded.vectors,
            texts,
            metadatas,
            ids,
            self.dim,
            lambda count: [uuid.uuid4().hex for _ in range(count)],
        )
        n = len(ids)
        for doc_id, text in zip(ids, texts, strict=True):
            if len(text.encode("utf-8")) > MAX_TEXT_BYTES or len(doc_id) > 512:
                raise ValueError(
                    f"document {doc_id[:40]!r}: Milvus keeps ids up to 512 characters and "
                    f"texts up to {MAX_TEXT_BYTES} bytes; chunk long texts first"
                )
        if n == 0:
            return []
        array = l2_normalize(array)
        rows = []
        for i in range(n):
            row: dict[str, Any] = {
                "id": ids[i],
                "text": texts[i],
                "metadata": json.loads(json.dumps(metas[i], ensure_ascii=False, default=str)),
                "vector": array[i].tolist(),
            }
            if self.keywords == "bm25" and self._words_field:
                row["words"] = words_field(texts[i], metas[i])
            if self.keywords in ("sparse", "words"):
                sparse = None if encoded.sparse is None else encoded.sparse[i]
                terms = self.scheme.document_terms(texts[i], sparse)
                weights = _milvus_sparse(terms) if terms is not None else {}
                row["sparse"] = weights or _EMPTY_SPARSE
            rows.append(row)
        with self._milvus("add documents"):
            for first in range(0, n, 1000):
                self._client.upsert(self.collection, rows[first : first + 1000])
        self._unflushed = self._local
        return ids

    def add_parquet(
        self,
        paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
        *,
        batch_rows: int = 65_536,
    ) -> int:
        """Bulk-load embedded Parquet files (``embed_dataset`` output); return the row count.

        Files are checked first: each must record this store's model and width.
        """
        from .parquet import add_parquet

        return add_parquet(self, paths, batch_rows=batch_rows)

    def delete(self, ids: Sequence[str]) -> int:
        """Remove documents by id; return how many existed."""
        ids = [str(i) for i in ids]
        if not ids:
            return 0
        with self._milvus("delete documents"):
            present = self._client.get(self.collection, ids=ids, output_fields=["id"])
            if present:
                self._client.delete(self.collection, ids=[row["id"] for row in present])
                self._unflushed = self._local
        return len(present)

    # ----------------------------------------------------------------- reading
    def __len__(self) -> int:
        with self._milvus("count documents"):
            rows = self._client.query(self.collection, filter="", output_fields=["count(*)"])
        return int(rows[0]["count(*)"])

    def __contains__(self, doc_id: object) -> bool:
        return self.get(str(doc_id)) is not None

    def get(self, doc_id: str) -> Hit | None:
        """Return the stored document with this id (score 0), or None."""
        with self._milvus("get a document"):
            rows = self._client.get(
                self.collection, ids=[str(doc_id)], output_fields=["text", "metadata"]
            )
        return Hit(rows[0]["id"], 0.0, rows[0]["text"], dict(rows[0]["metadata"])) if rows else None

    def iter_metadata(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """Yield (id, metadata) of every document."""
        # Milvus Lite's in-process gRPC server lacks AllocTimestamp, which the iterator tries
        # first; it falls back, but grpc logs the refusal with a traceback, pymilvus warns.
        quiet = [logging.getLogger(n) for n in ("grpc._server", "pymilvus.client.iterator")]
        levels = [logger.level for logger in quiet]
        for logger in quiet:
            logger.setLevel(logging.CRITICAL)
        try:
            with self._milvus("read metadata"):
                iterator = self._client.query_iterator(
                    self.collection, batch_size=1000, filter="", output_fields=["metadata"]
                )
                while batch := iterator.next():
                    for row in batch:
                        yield row["id"], dict(row["metadata"])
                iterator.close()
        finally:
            for logger, level in zip(quiet, levels, strict=True):
                logger.setLevel(level)

    def ids_where(self, **equals: Any) -> list[str]:
        """Return ids whose metadata has all the given key = value pairs."""
        with self._milvus("filter documents"):
            rows = self._client.query(
                self.collection, filter=milvus_filter(equals), output_fields=["id"], limit=16_384
            )
        return [row["id"] for row in rows]

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

        As ``Index.search``: ``hybrid`` adds keyword matches to the cosine (``fuse_candidates``,
        score = fused score), ``ranking`` applies the code ranking rules, ``rerank_with``
        rescores the top ``candidates``. Every hit's ``similarity`` is the dense cosine.
        """
        pool = search_pool(k, candidates, hybrid or rerank_with is not None or ranking is not None)
        if pool == 0:
            return []
        vector, text = self.encoder.query_vector(query)
        self._flush()
        expression = self._expression(filter or {})
        sides = (
            weighted_sides(self.scheme.query_sides(text, self.encoder), text, ranking)
            if hybrid and text
            else []
        )
        fields = ["text", "metadata", "vector"]
        rows: dict[str, Any] = {}
        with self._milvus("search"):
            found = self._client.search(
                self.collection,
                [vector.tolist()],
                anns_field="vector",
                limit=pool,
                filter=expression,
                search_params={"metric_type": "COSINE"},
                output_fields=fields,
            )[0]
            dense = [(row["id"], float(row["distance"])) for row in found]
            rows.update((row["id"], row["entity"]) for row in found)
            keyword: list[KeywordMatches] = []
            for side in sides:
                matches = self._keyword_search(side, pool, expression, fields)
                keyword.append((side, [(row["id"], score) for row, score in matches]))
                rows.update((row["id"], row["entity"]) for row, _ in matches)
        # the same fusion as Index and ShardedIndex (store.search), done here, not by Milvus
        ranked = fuse_candidates(dense, keyword, max(pool, k))  # no sides: dense order
        unit = l2_normalize(vector)
        hits = []
        for doc_id, score in ranked:
            entity = rows[doc_id]
            similarity = float(np.dot(np.asarray(entity["vector"], np.float32), unit))
            hits.append(
                Hit(doc_id, score, entity["text"], dict(entity["metadata"]), similarity=similarity)
            )
        hits = code_ranked(hits, text, ranking)
        if rerank_with is not None and text is not None:
            hits = rerank_hits(hits, text, rerank_with, self._late_interaction)
        return hits[:k]

    def _expression(self, equals: Mapping[str, Any]) -> str:
        """Return a search's filter expression; a long any-of list is matched here, as ids.

        Milvus evaluates an any-of on a JSON key as one comparison per item and row (1,000
        items over 5,000 rows: 12 s on Milvus Lite); the ids of the documents that match,
        from one pass over the metadata, make it a primary-key lookup (25 ms).
        """
        many = {
            key: value
            for key, value in equals.items()
            if is_any_of(value) and len(value) > _SHORT_ANY_OF
        }
        if not many:
            return milvus_filter(equals)
        wanted: dict[str, Any] = {}
        for key, value in many.items():
            try:
                wanted[key] = set(value)
            except TypeError:  # unhashable items (lists, dicts): compared one by one
                wanted[key] = list(value)
        ids = [
            doc_id
            for doc_id, meta in self.iter_metadata()
            if all(key in meta and meta[key] in items for key, items in wanted.items())
        ]
        rest = milvus_filter({k: v for k, v in equals.items() if k not in many})
        return " and ".join(part for part in (rest, f"id in {json.dumps(ids)}") if part)

    def _late_interaction(self, text: str, hits: list[Hit]) -> list[float]:
        # a collection keeps no ColBERT vectors: they are computed from the hit texts
        return self.encoder.late_interaction(text, [h.text for h in hits], [None] * len(hits))

    def _keyword_search(
        self, side: KeywordSide, pool: int, expression: str, fields: list[str]
    ) -> list[tuple[Any, float]]:
        """Return one keyword side's matches (Milvus rows) and their scores, best first."""
        bm25 = not isinstance(side.terms, SparseVector)
        if not bm25:
            weights = _milvus_sparse(side.terms)
            if not weights:
                return []
            data: Any = weights
            params = {"metric_type": "IP"}
        else:  # BM25 over the words, as Index's full-text side (store.keywords)
            data, params = " ".join(sorted(side.terms)), {"metric_type": "BM25"}
        found = self._client.search(
            self.collection,
            [data],
            anns_field="sparse",
            limit=pool,
            filter=expression,
            search_params=params,
            output_fields=fields,
        )[0]
        # BM25 is never negative, but Milvus Lite reports it negated: |distance|
        score = abs if bm25 else float
        return [(row, float(score(row["distance"]))) for row in found]


def _milvus_sparse(vector: SparseVector) -> dict[int, float]:
    """Return a sparse vector in pymilvus's shape, ``{token id: weight}`` (positive weights)."""
    ids, values = vector.indices.tolist(), vector.values.tolist()
    return {i: v for i, v in zip(ids, values, strict=True) if v > 0}
