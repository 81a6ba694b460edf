"""Embedding a Ray Dataset: one model per actor, ids carried through, Parquet out.

``embed_dataset`` appends an ``embedding`` column with ``map_batches`` over an actor pool.
Each actor opens the model once from a picklable ``ModelSpec`` (an open model holds native
handles and cannot travel) and runs it on the CPUs Ray assigned to that actor, not on all
of the host's cores: several actors on one node would otherwise oversubscribe it. Ray does
not keep row order, so every output row carries an id. ``write_embeddings`` writes the
result as Parquet that records the model (``distributed.parquet``).

``EmbedBatch``, the actor's class, works without Ray, so its logic is tested where Ray is
absent; Ray itself is imported only by the functions that need it.
"""

from __future__ import annotations

import os
import shutil
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..embedder import Embedder
from ..engine.pooling import check_dimensions
from ..errors import DatasetError, LlamaEmbedError, PoolingError
from ..hub.spec import ModelSpec, as_model_spec, model_record
from .parquet import (
    EMBEDDING_COLUMN,
    content_ids,
    embedding_array,
    find_files,
    handoff_metadata,
    require_pyarrow,
)

if TYPE_CHECKING:
    import ray.data

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "EmbedBatch",
    "connect",
    "embed_dataset",
    "our_error",
    "read_dataset",
    "write_embeddings",
]

# Rows per call into an actor: enough to fill llama.cpp's micro-batches and amortise
# Ray's per-batch cost; a static model pools thousands of rows in one matrix product.
DEFAULT_BATCH_SIZE = {"gguf": 256, "static": 8192}
_INSTALL = "pip install 'llamaembed[ray]'"


def _require_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise DatasetError(f"the Ray path needs Ray Data: {_INSTALL}") from exc
    return ray


def _assigned_cpus() -> int | None:
    """Return the CPUs Ray assigned to this worker, or None outside a Ray worker."""
    ray = sys.modules.get("ray")  # inside a Ray worker it is imported already
    if ray is None or not ray.is_initialized():
        return None
    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU")
    return max(1, int(cpus)) if cpus else None


def _check_embedder(model: Embedder, name: str) -> None:
    can = model.capabilities
    if can.rerank:
        raise PoolingError(f"{name} is a cross-encoder: it scores pairs and makes no embeddings")
    if not can.dense:
        raise PoolingError(f"{name} is opened with pooling 'none': one vector per token")


class EmbedBatch:
    """Ray Data's callable class: appends embeddings (and ids, if missing) to a batch.

    ``id_column=None`` uses a column named ``id`` when the batch has one, and otherwise
    adds ``id`` holding a hash of each text (equal texts share an id).
    """

    def __init__(
        self,
        spec: ModelSpec,
        *,
        text_column: str = "text",
        id_column: str | None = None,
        n_threads: int | None = None,
        dimensions: int | None = None,
    ) -> None:
        threads = n_threads or _assigned_cpus()
        if threads:
            spec = spec.with_n_threads(threads)
            # The static tier tokenises on Rust's rayon pool, sized when first used.
            os.environ.setdefault("RAYON_NUM_THREADS", str(threads))
        self.spec = spec
        self.n_threads = threads
        self.text_column = text_column
        self.id_column = id_column
        self.model = spec.open()
        _check_embedder(self.model, spec.name)
        self.dimensions = check_dimensions(dimensions, self.model.n_embd)

    def __call__(self, batch: Any) -> Any:
        """Return the batch (an Arrow table or a dict of columns) with ``embedding`` added."""
        pa = require_pyarrow()
        table = batch if isinstance(batch, pa.Table) else pa.table(batch)
        if self.text_column not in table.column_names:
            raise DatasetError(
                f"the dataset has no {self.text_column!r} column (it has "
                f"{', '.join(table.column_names)}); pass text_column="
            )
        if EMBEDDING_COLUMN in table.column_names:
            raise DatasetError(f"the dataset already has an {EMBEDDING_COLUMN!r} column")
        column = table.column(self.text_column)
        is_text = pa.types.is_string(column.type) or pa.types.is_large_string(column.type)
        if not is_text and column.null_count != len(column):  # all-null batches type as null
            raise DatasetError(f"the {self.text_column!r} column holds {column.type}, not strings")
        texts = column.to_pylist()
        id_column = self.id_column or "id"
        if self.id_column is not None and self.id_column not in table.column_names:
            raise DatasetError(f"the dataset has no {self.id_column!r} id column")
        if id_column not in table.column_names:
            if column.null_count:
                raise DatasetError(self._null_message(texts, None))
            table = table.append_column(id_column, pa.array(content_ids(texts), pa.string()))
        if column.null_count:
            raise DatasetError(self._null_message(texts, table.column(id_column).to_pylist()))
        ids = table.column(id_column)
        if ids.null_count:
            raise DatasetError(f"the id column {id_column!r} has {ids.null_count} empty rows")
        vectors = self.model.embed_documents(texts, dimensions=self.dimensions)
        table = table.append_column(EMBEDDING_COLUMN, embedding_array(vectors))
        metadata = dict(table.schema.metadata or {})
        metadata.update(self._metadata(id_column))
        return table.replace_schema_metadata(metadata)

    def _null_message(self, texts: list[Any], ids: list[Any] | None) -> str:
        row = next(i for i, t in enumerate(texts) if t is None)
        where = f"id {ids[row]!r}" if ids is not None else f"row {row} of a batch"
        return f"the {self.text_column!r} column is empty (null) at {where}; drop or fill it"

    def _metadata(self, id_column: str) -> dict[bytes, bytes]:
        return handoff_metadata(
            fingerprint=self.model.fingerprint,
            model_name=self.spec.name,
            dim=self.dimensions or self.model.n_embd,
            id_column=id_column,
            text_column=self.text_column,
            model_record=model_record(self.model),
        )

    def close(self) -> None:
        """Free the model."""
        self.model.close()


def our_error(exc: BaseException) -> LlamaEmbedError | None:
    """Return the llamaembed error behind Ray's wrapping of a failed task, if there is one.

    ``embed_dataset`` asks Ray Data to raise the original exception of a failed map
    (``raise_original_map_exception``), and our errors pickle whole, so the driver gets a
    ``RayTaskError`` whose ``cause`` is the actor's error itself.
    """
    current: BaseException | None = exc
    for _ in range(8):
        if current is None:
            break
        cause = getattr(current, "cause", None)  # RayTaskError keeps the task's exception
        if isinstance(cause, LlamaEmbedError):
            return cause
        if isinstance(current, LlamaEmbedError):
            return current
        current = cause or current.__cause__
    return None


def embed_dataset(
    ds: ray.data.Dataset,
    model: Any,
    *,
    text_column: str = "text",
    id_column: str | None = None,
    actors: int | tuple[int, int] = 1,
    cpus_per_actor: float = 1,
    gpus_per_actor: float = 0,
    batch_size: int | None = None,
    dimensions: int | None = None,
) -> ray.data.Dataset:
    """Return ``ds`` with an ``embedding`` column (FixedSizeList<float32>) added, lazily.

    ``model`` is a GGUF path, catalogue name, static-model folder, ``LlamaParams``,
    ``ModelSpec`` or an open model (sent as its description; every node must reach the
    file). ``actors`` is a fixed pool size or an autoscaling ``(min, max)``; each actor
    runs its model on ``cpus_per_actor`` threads. Rows keep (or get) an id column, since
    Ray does not keep row order. ``dimensions`` cuts Matryoshka vectors (re-normalised).
    The model is opened once here first, so a missing file, a cross-encoder or a bad
    ``dimensions`` fails before any cluster work.
    """
    _require_ray()
    from ray.data import ActorPoolStrategy

    spec = as_model_spec(model)
    if isinstance(actors, int):
        if actors < 1:
            raise ValueError("actors must be at least 1")
        strategy = ActorPoolStrategy(size=actors)
    else:
        low, high = actors
        if not 1 <= low <= high:
            raise ValueError(f"actors=(min, max) needs 1 <= min <= max, got {actors}")
        strategy = ActorPoolStrategy(min_size=low, max_size=high)
    if cpus_per_actor <= 0:
        raise ValueError("cpus_per_actor must be positive")
    if batch_size is not None and batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    schema = ds.schema(fetch_if_missing=False)  # only what is known without running
    names = list(getattr(schema, "names", None) or [])
    if names and text_column not in names:
        raise DatasetError(
            f"the dataset has no {text_column!r} column (it has {', '.join(names)}); "
            "pass text_column="
        )
    if names and id_column is not None and id_column not in names:
        raise DatasetError(f"the dataset has no {id_column!r} id column")
    probe = spec.with_n_threads(1).open()
    try:
        _check_embedder(probe, spec.name)
        check_dimensions(dimensions, probe.n_embd)
    finally:
        probe.close()
    kind = "static" if spec.static_folder is not None else "gguf"
    # No n_threads: each actor takes the CPUs Ray assigned it (cpus_per_actor).
    embedded = ds.map_batches(
        EmbedBatch,
        fn_constructor_args=(spec,),
        fn_constructor_kwargs={
            "text_column": text_column,
            "id_column": id_column,
            "dimensions": dimensions,
        },
        batch_format="pyarrow",
        batch_size=batch_size or DEFAULT_BATCH_SIZE[kind],
        compute=strategy,
        num_cpus=cpus_per_actor,
        num_gpus=gpus_per_actor or None,
    )
    # A failed map then raises the actor's own exception (our error, pickled whole) as the
    # cause of Ray's RayTaskError, rather than a UserCodeException holding only its text.
    embedded.context.raise_original_map_exception = True
    return embedded


def write_embeddings(
    ds: ray.data.Dataset,
    path: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    min_rows_per_file: int | None = None,
) -> list[Path]:
    """Write an embedded dataset as Parquet files under a folder; return the files.

    Ray writes into a hidden staging folder inside ``path``; the files move into place
    only when every block is written, so a failed job leaves no partial dataset behind.
    ``path`` is a local or shared (NFS) folder; give Ray's own ``write_parquet`` an
    ``s3://`` address instead. Existing Parquet files in ``path`` are an error unless
    ``overwrite``, which removes them after the new files are complete.
    """
    root = Path(path)
    if "://" in os.fspath(path):
        raise DatasetError(f"{path}: give a local or shared folder (use ds.write_parquet for URLs)")
    root.mkdir(parents=True, exist_ok=True)
    existing = sorted(root.glob("*.parquet"))
    if existing and not overwrite:
        raise DatasetError(
            f"{root} already holds {len(existing)} Parquet files; choose an empty folder or "
            "pass overwrite"
        )
    staging = root / f".staging-{uuid.uuid4().hex[:12]}"
    try:
        try:
            ds.write_parquet(str(staging), min_rows_per_file=min_rows_per_file)
        except Exception as exc:  # Ray wraps an actor's error in its own exception types
            ours = our_error(exc)
            if ours is None:
                raise
            raise ours from exc
        for old in existing:
            old.unlink()
        written = []
        for file in sorted(staging.glob("*.parquet")):
            target = root / file.name
            file.replace(target)
            written.append(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return written


_JSON_SUFFIXES = (".jsonl", ".json", ".ndjson")
_TEXT_BLOCK_ROWS = 1024


def read_dataset(
    paths: str | os.PathLike[str] | list[str | os.PathLike[str]],
    *,
    text_column: str = "text",
) -> ray.data.Dataset:
    """Return a Ray Dataset of Parquet, JSON Lines or plain-text files (one kind at a time).

    Parquet and JSON Lines keep their columns. A text file gives one row per non-blank
    line, with ``id`` ``"<file>:<line>"`` and the line in ``text_column``. Folders are
    searched recursively, skipping names that start with ``.`` or ``_``.
    """
    ray = _require_ray()
    pa = require_pyarrow()
    items = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    files = find_files(items)
    if not files:
        raise DatasetError("no input files")
    kinds = {
        "parquet" if f.suffix == ".parquet" else "json" if f.suffix in _JSON_SUFFIXES else "text"
        for f in files
    }
    if len(kinds) > 1:
        raise DatasetError(
            f"the inputs mix {' and '.join(sorted(kinds))} files; embed one kind at a time"
        )
    kind = kinds.pop()
    names = [str(f) for f in files]
    if kind == "parquet":
        return ray.data.read_parquet(names)
    if kind == "json":
        return ray.data.read_json(names)
    ids: list[str] = []
    texts: list[str] = []
    for file in files:
        try:
            lines = file.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError as exc:
            raise DatasetError(f"{file} is not UTF-8 text: {exc}") from exc
        for number, line in enumerate(lines, start=1):
            if line.strip():
                ids.append(f"{file}:{number}")
                texts.append(line)
    if not texts:
        raise DatasetError("the text inputs hold no non-blank lines")
    table = pa.table({"id": ids, text_column: texts})
    # One block per _TEXT_BLOCK_ROWS rows: each block goes to one actor, so a single block
    # would leave every other actor idle.
    blocks = [table.slice(i, _TEXT_BLOCK_ROWS) for i in range(0, len(table), _TEXT_BLOCK_ROWS)]
    return ray.data.from_arrow(blocks)


def connect(address: str | None = None) -> bool:
    """Connect to (or start) a Ray cluster unless this process is connected already.

    ``address`` is ``auto`` (a cluster started on this machine with ``ray start``), a
    ``ray://host:10001`` client address, or None: ``RAY_ADDRESS`` if set, else a new
    local cluster. Returns True when this call connected (the caller then shuts down).
    """
    ray = _require_ray()
    if ray.is_initialized():
        return False
    options: dict[str, Any] = {"logging_level": "WARNING", "log_to_driver": False}
    if address is None and not os.environ.get("RAY_ADDRESS"):
        options["include_dashboard"] = False
    try:
        ray.init(address=address, **options)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise DatasetError(f"cannot reach the Ray cluster at {address}: {exc}") from exc
    return True
