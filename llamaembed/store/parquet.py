"""Embedded Parquet (from ``embed_dataset``) into an index, whole or one hash shard of it.

The files are checked first (each must record this index's model and width), then read in
record batches, so memory holds one batch of rows at a time besides the index itself.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from ..errors import IndexModelMismatchError
from .base import VectorStore

__all__ = ["add_parquet"]


def add_parquet(
    index: VectorStore,
    paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    shard: int | None = None,
    num_shards: int | None = None,
    batch_rows: int = 65_536,
) -> int:
    """Add the rows of embedded Parquet files to ``index``; return how many were added."""
    from ..distributed.parquet import (
        EMBEDDING_COLUMN,
        embedding_matrix,
        parquet_files,
        read_info,
        require_pyarrow,
    )
    from .partition import shard_of

    if (shard is None) != (num_shards is None):
        raise ValueError("give both shard and num_shards, or neither")
    if num_shards is not None and not (num_shards >= 1 and 0 <= (shard or 0) < num_shards):
        raise ValueError(f"shard must be in [0, num_shards), got {shard} of {num_shards}")
    require_pyarrow()
    import pyarrow.parquet as pq

    infos = [read_info(f) for f in parquet_files(paths)]
    fingerprint = index.model.get("fingerprint")  # the embedder's, or the loaded index's
    for info in infos:
        if fingerprint is not None and info.fingerprint != fingerprint:
            raise IndexModelMismatchError(
                f"{info.path} was embedded with another model ({info.model_name}, "
                f"fingerprint {info.fingerprint[:12]}); index it with that model or "
                "embed the data again with this one"
            )
        if info.dim != index.dim:
            raise IndexModelMismatchError(
                f"{info.path} holds {info.dim}-d vectors but the index holds {index.dim}-d"
            )
    added = 0
    for info in infos:
        special = {info.id_column, info.text_column, EMBEDDING_COLUMN}
        for batch in pq.ParquetFile(info.path).iter_batches(batch_size=batch_rows):
            ids = [str(i) for i in batch.column(info.id_column).to_pylist()]
            names = batch.schema.names
            texts = (
                batch.column(info.text_column).to_pylist()
                if info.text_column in names
                else [""] * len(ids)
            )
            vectors = embedding_matrix(batch.column(EMBEDDING_COLUMN), info.dim)
            extra = [n for n in names if n not in special]
            columns = {n: batch.column(n).to_pylist() for n in extra}
            keep: dict[str, int] = {}  # id -> its last row: later rows replace earlier
            mine = (
                shard_of(ids, num_shards) == shard
                if num_shards is not None
                else np.ones(len(ids), dtype=bool)
            )
            for row, doc_id in enumerate(ids):
                if mine[row]:
                    keep.pop(doc_id, None)
                    keep[doc_id] = row
            rows = list(keep.values())
            if not rows:
                continue
            metadatas = [
                {n: columns[n][r] for n in extra if columns[n][r] is not None} for r in rows
            ]
            index.add_vectors(
                vectors[rows],
                [texts[r] or "" for r in rows],
                metadatas,
                [ids[r] for r in rows],
            )
            added += len(rows)
    return added
