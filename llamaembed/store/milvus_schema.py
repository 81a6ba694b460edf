"""Milvus collection layout, filters and store addresses for ``MilvusStore``.

Pure helpers besides ``create_collection``, which takes a connected ``MilvusClient``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from .search import is_any_of

__all__ = ["MAX_TEXT_BYTES", "create_collection", "milvus_filter", "parse_store"]

MAX_TEXT_BYTES = 65_535  # Milvus's largest VARCHAR
_KEY = re.compile(r"[A-Za-z0-9_]+")
_WORD = re.compile(r"\w+", re.UNICODE)


def parse_store(spec: str) -> tuple[str, str]:
    """Return (uri, collection) of a CLI store: ``milvus://HOST:PORT/COLLECTION`` or ``FILE.db``.

    A file may name its collection after ``#`` (``docs.db#notes``); the default is
    ``llamaembed``.
    """
    if spec.startswith("milvus://"):
        rest = spec[len("milvus://") :]
        address, _, collection = rest.partition("/")
        if not address or not collection:
            raise ValueError(f"a Milvus store is milvus://HOST:PORT/COLLECTION, not {spec!r}")
        return f"http://{address}", collection
    path, _, collection = spec.partition("#")
    if not path.endswith(".db"):
        raise ValueError(
            f"--store takes milvus://HOST:PORT/COLLECTION or a Milvus Lite file ending in .db, "
            f"not {spec!r}"
        )
    return path, collection or "llamaembed"


def milvus_filter(equals: Mapping[str, Any]) -> str:
    """Return a Milvus filter expression: metadata equals every given value.

    A list, tuple or set value matches any of its items (none: nothing matches).
    """
    clauses = []
    for key, value in equals.items():
        if not _KEY.fullmatch(key):
            raise ValueError(f"metadata filter keys are letters, digits and _: {key!r}")
        if is_any_of(value):
            items = sorted(value, key=repr) if isinstance(value, set | frozenset) else value
            # Milvus takes `in` on fields only, not on a JSON field's keys
            alternatives = [f'metadata["{key}"] == {json.dumps(v)}' for v in items]
            clauses.append(f"({' or '.join(alternatives)})" if alternatives else "id in []")
        else:
            clauses.append(f'metadata["{key}"] == {json.dumps(value)}')
    return " and ".join(clauses)


def words_field(text: str, metadata: Mapping[str, Any]) -> str:
    """Return the ``words`` a row keeps for the BM25 function, cut to Milvus's VARCHAR size."""
    from .keywords import keyword_text

    words = keyword_text(text, metadata)
    data = words.encode("utf-8")
    if len(data) <= MAX_TEXT_BYTES:
        return words
    return data[:MAX_TEXT_BYTES].decode("utf-8", "ignore").rsplit(" ", 1)[0]


def create_collection(
    client: Any,
    name: str,
    dim: int,
    keywords: str,
    index_type: str,
    properties: Mapping[str, str],
) -> None:
    """Create a collection: id, text, metadata (JSON), dense vector and a sparse side.

    With ``keywords="bm25"`` Milvus's BM25 function fills the sparse side from the
    analysed ``words`` field (``keywords.keyword_text``: identifiers whole and split, the
    file path's words, as ``Index`` indexes them); with "sparse" or "words" the caller
    supplies sparse vectors (inner product); "none" has no sparse side.
    """
    from pymilvus import DataType, Function, FunctionType

    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=512)
    schema.add_field("text", DataType.VARCHAR, max_length=MAX_TEXT_BYTES)
    if keywords == "bm25":
        schema.add_field("words", DataType.VARCHAR, max_length=MAX_TEXT_BYTES, enable_analyzer=True)
    schema.add_field("metadata", DataType.JSON)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
    if keywords != "none":
        schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
    if keywords == "bm25":
        schema.add_function(
            Function(
                name="text_bm25",
                function_type=FunctionType.BM25,
                input_field_names=["words"],
                output_field_names=["sparse"],
            )
        )
    params = client.prepare_index_params()
    params.add_index("vector", index_type=index_type, metric_type="COSINE")
    if keywords != "none":
        params.add_index(
            "sparse",
            index_type="SPARSE_INVERTED_INDEX",
            metric_type="BM25" if keywords == "bm25" else "IP",
        )
    # Strong: a search, get or count right after a write sees it, as with Index
    client.create_collection(
        name,
        schema=schema,
        index_params=params,
        properties=dict(properties),
        consistency_level="Strong",
    )
