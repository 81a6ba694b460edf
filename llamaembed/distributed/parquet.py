"""The Parquet handoff: embedded rows as plain Arrow, with the model recorded in the file.

An embedded file holds the input's columns plus ``embedding``, a ``FixedSizeList<float32>``
as wide as the model's vectors. The file's key-value metadata names the model (its
fingerprint, name, width and how to reopen it) and the columns that hold ids and texts.
Any Parquet reader (pyarrow, DuckDB, Spark, the bulk loaders of Milvus or LanceDB) reads
the file; ``Index.from_parquet`` checks the fingerprint before it trusts the vectors.

Needs pyarrow only, not Ray.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import DatasetError

__all__ = [
    "EMBEDDING_COLUMN",
    "FORMAT_VERSION",
    "HandoffInfo",
    "content_ids",
    "embedding_array",
    "embedding_matrix",
    "find_files",
    "handoff_metadata",
    "parquet_files",
    "read_info",
    "require_pyarrow",
]

FORMAT_VERSION = "1"
EMBEDDING_COLUMN = "embedding"
_PREFIX = "llamaembed."
_INSTALL = "pip install 'llamaembed[ray]' (or pyarrow alone to read and index Parquet)"


def require_pyarrow() -> Any:
    """Return the pyarrow module, or raise our error saying how to install it."""
    try:
        import pyarrow
    except ImportError as exc:  # pragma: no cover - pyarrow ships with the [ray] extra
        raise DatasetError(f"Parquet needs pyarrow: {_INSTALL}") from exc
    return pyarrow


@dataclass(frozen=True)
class HandoffInfo:
    """What an embedded Parquet file says about itself."""

    path: Path
    rows: int
    fingerprint: str
    model_name: str
    dim: int
    id_column: str
    text_column: str
    model_record: dict[str, Any]


def content_ids(texts: Sequence[str]) -> list[str]:
    """Return a stable id per text (16 hex digits of BLAKE2b): equal texts get equal ids."""
    return [hashlib.blake2b(t.encode("utf-8"), digest_size=8).hexdigest() for t in texts]


def embedding_array(vectors: npt.ArrayLike) -> Any:
    """Return a (n, dim) matrix as an Arrow ``FixedSizeList<float32>[dim]`` array."""
    pa = require_pyarrow()
    matrix = np.ascontiguousarray(vectors, dtype=np.float32)
    if matrix.ndim != 2:
        raise ValueError(f"expected a 2-D matrix of vectors, got shape {matrix.shape}")
    return pa.FixedSizeListArray.from_arrays(pa.array(matrix.reshape(-1)), matrix.shape[1])


def embedding_matrix(column: Any, dim: int) -> npt.NDArray[np.float32]:
    """Return an Arrow column of vectors (FixedSizeList or List of floats) as (n, dim)."""
    pa = require_pyarrow()
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if array.null_count:
        raise DatasetError(f"the {EMBEDDING_COLUMN} column has {array.null_count} empty rows")
    if len(array) == 0:
        return np.empty((0, dim), np.float32)
    if not (pa.types.is_fixed_size_list(array.type) or pa.types.is_list(array.type)):
        raise DatasetError(f"the {EMBEDDING_COLUMN} column is {array.type}, not a list of floats")
    flat = array.flatten()  # honours slicing, unlike .values
    if not pa.types.is_floating(flat.type):
        raise DatasetError(f"the {EMBEDDING_COLUMN} column holds {flat.type}, not floats")
    values = np.asarray(flat.to_numpy(zero_copy_only=False), dtype=np.float32)
    if values.size != len(array) * dim:
        raise DatasetError(f"the {EMBEDDING_COLUMN} column's vectors are not all {dim} wide")
    return values.reshape(len(array), dim)


def handoff_metadata(
    *,
    fingerprint: str,
    model_name: str,
    dim: int,
    id_column: str,
    text_column: str,
    model_record: dict[str, Any],
) -> dict[bytes, bytes]:
    """Return the key-value metadata an embedded file carries."""
    values = {
        "format": FORMAT_VERSION,
        "fingerprint": fingerprint,
        "model": model_name,
        "dim": str(dim),
        "id_column": id_column,
        "text_column": text_column,
        "model_record": json.dumps(model_record, sort_keys=True),
    }
    return {(_PREFIX + k).encode(): v.encode("utf-8") for k, v in values.items()}


def read_info(path: str | os.PathLike[str]) -> HandoffInfo:
    """Return what an embedded Parquet file records, or raise DatasetError if it is not one."""
    pa = require_pyarrow()
    import pyarrow.parquet as pq

    file = Path(path)
    try:
        meta = pq.read_metadata(file)
    except (OSError, pa.ArrowException) as exc:
        raise DatasetError(f"{file} is not a readable Parquet file: {exc}") from exc
    raw = meta.metadata or {}
    values = {
        k.decode()[len(_PREFIX) :]: v.decode("utf-8")
        for k, v in raw.items()
        if k.startswith(_PREFIX.encode())
    }
    if "fingerprint" not in values:
        raise DatasetError(
            f"{file} was not written by llamaembed (no model in its metadata); embed it with "
            "`llamaembed embed-dataset` or llamaembed.distributed.embed_dataset"
        )
    if values.get("format") != FORMAT_VERSION:
        raise DatasetError(
            f"{file} has handoff format {values.get('format')!r}, expected {FORMAT_VERSION}"
        )
    schema = meta.schema.to_arrow_schema()
    info = HandoffInfo(
        path=file,
        rows=meta.num_rows,
        fingerprint=values["fingerprint"],
        model_name=values.get("model", ""),
        dim=int(values["dim"]),
        id_column=values["id_column"],
        text_column=values["text_column"],
        model_record=json.loads(values.get("model_record", "{}")),
    )
    for column in (EMBEDDING_COLUMN, info.id_column):
        if column not in schema.names:
            raise DatasetError(f"{file} has no {column!r} column")
    return info


def find_files(
    paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]], pattern: str = "*"
) -> list[Path]:
    """Return the files named by paths: files as given, folders searched for ``pattern``.

    Folder contents are sorted and searched recursively; names starting with ``.`` or
    ``_`` (staging folders, ``_SUCCESS`` markers) are skipped. Raises for a missing path.
    """
    items = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    found: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            found.extend(
                f
                for f in sorted(path.rglob(pattern))
                if f.is_file()
                and not any(part.startswith((".", "_")) for part in f.relative_to(path).parts)
            )
        elif path.is_file():
            found.append(path)
        else:
            raise DatasetError(f"{path} does not exist")
    return list(dict.fromkeys(found))


def parquet_files(paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Return the Parquet files named by files and folders (searched recursively), sorted."""
    found = find_files(paths, "*.parquet")
    if not found:
        raise DatasetError(f"no Parquet files in {paths}")
    return found
