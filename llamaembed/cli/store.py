"""``llamaembed index`` and ``search``: build an index (text files or embedded Parquet)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from ..embedder import Embedder
    from ..store.ingest import IngestReport

from ..hub.spec import open_recorded
from ._common import (
    DEFAULT_DB,
    dimensions_option,
    errors,
    gpu_layers_option,
    model_options,
    open_model,
)


@click.command("index")
@click.argument("paths", nargs=-1, type=click.Path(exists=True))
@model_options
@click.option(
    "--db",
    default=DEFAULT_DB,
    show_default=True,
    type=click.Path(file_okay=False),
    help="Index folder.",
)
@click.option(
    "--max-tokens",
    type=int,
    default=None,
    help="Tokens per chunk (default: 128 in prose, 256 in code; less for a short context).",
)
@click.option(
    "--overlap",
    type=int,
    default=None,
    help="Tokens shared by consecutive pieces of a paragraph or definition too long for one "
    "chunk (default: min(32, max-tokens/4)).",
)
@dimensions_option
@click.option(
    "--store",
    default=None,
    metavar="milvus://HOST:PORT/COLLECTION | FILE.db",
    help="Keep the index in Milvus (a server, or Milvus Lite in a local .db file) instead of --db.",
)
@click.option(
    "--from-parquet",
    "from_parquet",
    type=click.Path(exists=True),
    default=None,
    help="Index embedded Parquet (from embed-dataset) instead of text files.",
)
@click.option(
    "--shards",
    type=click.IntRange(min=1),
    default=None,
    help="With --from-parquet: split the index into S shards by id hash.",
)
@click.option(
    "--shard",
    "only_shard",
    type=click.IntRange(min=0),
    default=None,
    help="With --shards: build only this shard (one machine per shard).",
)
@click.option(
    "--wait",
    type=click.FloatRange(min=0),
    default=600.0,
    show_default=True,
    help="Seconds to wait for another writer of the same --db folder before giving up.",
)
@errors
def index_command(
    paths: tuple[str, ...],
    model: str | None,
    quant: str | None,
    db: str,
    max_tokens: int | None,
    overlap: int,
    n_gpu_layers: int,
    dimensions: int | None,
    store: str | None,
    from_parquet: str | None,
    shards: int | None,
    only_shard: int | None,
    wait: float,
) -> None:
    """Index text files under PATHS (unchanged files are skipped later), or --from-parquet.

    One writer at a time per --db folder: another run waits for it (--wait), then adds to
    what it wrote.
    """
    from ..store.index import Index
    from ..store.ingest import collect_files, ingest_files
    from ..store.lock import FolderLock

    if from_parquet is not None:
        if paths:
            raise click.UsageError("give PATHS or --from-parquet, not both")
        if dimensions is not None:
            raise click.UsageError("--from-parquet takes the vectors' width from the files")
    elif not paths:
        raise click.UsageError("give PATHS to index, or --from-parquet")
    if store is not None:
        if shards is not None or only_shard is not None:
            raise click.UsageError("--shards and --shard go with --db, not --store")
        _index_milvus(
            store, paths, from_parquet, model, quant, n_gpu_layers, dimensions, max_tokens, overlap
        )
        return
    if from_parquet is not None:
        _index_parquet(from_parquet, model, quant, db, n_gpu_layers, shards, only_shard, wait)
        return
    if shards is not None or only_shard is not None:
        raise click.UsageError("--shards and --shard go with --from-parquet")
    folder = Path(db)
    files = collect_files(paths, exclude=folder)
    with (
        open_model(model, quant, n_gpu_layers=n_gpu_layers) as llama,
        FolderLock(folder, wait),  # read, add and commit as one writer
    ):
        index = Index.load_or_create(folder, llama, dimensions=dimensions)
        if dimensions is not None and index.dimensions != dimensions:
            raise click.ClickException(
                f"{folder} holds {index.dim}-d vectors; --dimensions {dimensions} needs a new --db"
            )
        report = ingest_files(
            index,
            llama,
            files,
            max_tokens=max_tokens,
            overlap=overlap,
            show_progress=sys.stderr.isatty(),
        )
        index.save(folder)
    click.echo(_summary(report, len(index), str(folder)))


def _summary(report: IngestReport, total: int, where: str) -> str:
    return (
        f"indexed {report.indexed_files} files ({report.chunks} chunks), "
        f"{report.unchanged_files} unchanged, {report.removed_files} removed, "
        f"{len(report.skipped_files)} binary skipped; {total} chunks in {where}"
    )


def _index_milvus(
    store: str,
    paths: tuple[str, ...],
    from_parquet: str | None,
    model: str | None,
    quant: str | None,
    n_gpu_layers: int,
    dimensions: int | None,
    max_tokens: int | None,
    overlap: int | None,
) -> None:
    """``index --store``: text files or embedded Parquet into a Milvus collection."""
    from ..store.ingest import collect_files, ingest_files
    from ..store.milvus import MilvusStore
    from ..store.milvus_schema import parse_store

    uri, collection = parse_store(store)
    if from_parquet is not None:
        files, embedder, width = _parquet_model(from_parquet, model, quant, n_gpu_layers)
        with (
            embedder,
            MilvusStore(embedder, uri=uri, collection=collection, dimensions=width) as milvus,
        ):
            added = milvus.add_parquet(files)
            click.echo(_parquet_summary(added, files, len(milvus), store))
        return
    sources = collect_files(paths)
    with (
        open_model(model, quant, n_gpu_layers=n_gpu_layers) as embedder,
        MilvusStore(embedder, uri=uri, collection=collection, dimensions=dimensions) as milvus,
    ):
        report = ingest_files(
            milvus,
            embedder,
            sources,
            max_tokens=max_tokens,
            overlap=overlap,
            show_progress=sys.stderr.isatty(),
        )
        total = len(milvus)
    click.echo(_summary(report, total, store))


def _index_parquet(
    source: str,
    model: str | None,
    quant: str | None,
    db: str,
    n_gpu_layers: int,
    shards: int | None,
    only_shard: int | None,
    wait: float,
) -> None:
    from ..store.index import Index
    from ..store.lock import FolderLock
    from ..store.sharded import ShardedIndex

    if only_shard is not None and shards is None:
        raise click.UsageError("--shard needs --shards")
    files, embedder, dimensions = _parquet_model(source, model, quant, n_gpu_layers)
    folder = Path(db)
    with embedder:
        if shards is not None:
            wanted = None if only_shard is None else [only_shard]
            added = ShardedIndex.build_from_parquet(
                files, embedder, folder, shards, shards=wanted, dimensions=dimensions
            )
            built = ", ".join(f"shard {i}: {n}" for i, n in added.items())
            click.echo(
                f"indexed {sum(added.values())} rows into {shards} shards ({built}) in {folder}"
            )
            return
        if ShardedIndex.is_sharded(folder):
            raise click.ClickException(f"{folder} holds a sharded index; pass --shards")
        with FolderLock(folder, wait):
            index = Index.load_or_create(folder, embedder, dimensions=dimensions)
            added_rows = index.add_parquet(files)
            index.save(folder)
    click.echo(_parquet_summary(added_rows, files, len(index), str(folder)))


def _parquet_model(
    source: str, model: str | None, quant: str | None, n_gpu_layers: int
) -> tuple[list[Path], Embedder, int | None]:
    """Return embedded Parquet's files, its model and its Matryoshka width.

    The model is ``--model``, else the one the files record; the width is None when the
    vectors are the model's full width.
    """
    from ..distributed.parquet import parquet_files, read_info

    files = parquet_files(source)
    info = read_info(files[0])
    if model is not None:
        embedder = open_model(model, quant, n_gpu_layers=n_gpu_layers)
    else:
        embedder = open_recorded(info.model_record, n_gpu_layers)
    return files, embedder, info.dim if info.dim < embedder.n_embd else None


def _parquet_summary(added: int, files: list[Path], total: int, where: str) -> str:
    return f"indexed {added} rows from {len(files)} Parquet files; {total} in {where}"


@click.command()
@click.argument("query")
@click.option("--db", default=DEFAULT_DB, show_default=True, type=click.Path(file_okay=False))
@click.option(
    "--store",
    default=None,
    metavar="milvus://HOST:PORT/COLLECTION | FILE.db",
    help="Search a Milvus collection (built by `index --store`) instead of --db.",
)
@click.option("-k", "k", default=10, show_default=True, help="Number of results.")
@click.option(
    "--rerank",
    "rerank_model",
    default=None,
    help="Cross-encoder to rerank with, or 'colbert' (the index model's ColBERT vectors).",
)
@click.option(
    "--hybrid/--no-hybrid",
    default=True,
    show_default=True,
    help="Fuse keyword (BM25, or a bge-m3 model's lexical weights) and vector results.",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output: every field.")
@click.option("--model", "-m", default=None, help="Embedding model (default: the index's).")
@gpu_layers_option
@errors
def search(
    query: str,
    db: str,
    store: str | None,
    k: int,
    rerank_model: str | None,
    hybrid: bool,
    as_json: bool,
    model: str | None,
    n_gpu_layers: int,
) -> None:
    """Search an index built by `llamaembed index`: hits grouped by file, with line ranges.

    The order is the search's (fused rank, or the reranker's); the score shown is the
    dense cosine, and the reranker's probability after --rerank.
    """
    from ._render import hit_record, render_hits

    if k < 1:
        raise click.UsageError("-k must be at least 1")
    opened = _open_index(db, store, model, n_gpu_layers)
    embedder, index = opened
    reranker = None
    try:
        if rerank_model is not None and rerank_model != "colbert":
            reranker = open_model(rerank_model, None, n_gpu_layers=n_gpu_layers)
        ranker = reranker or rerank_model
        hits = index.search(query, k, hybrid=hybrid, rerank_with=ranker)
        scorer = _window_scorer(embedder, query)
        if as_json:
            records = [hit_record(n, h, query, ranker, scorer) for n, h in enumerate(hits, 1)]
            click.echo(json.dumps(records, ensure_ascii=False))
        else:
            color = sys.stdout.isatty() and "NO_COLOR" not in os.environ
            click.echo(render_hits(hits, query, reranker=ranker, color=color, scorer=scorer))
    finally:
        if reranker is not None:
            reranker.close()
        if store is not None:
            index.close()
        embedder.close()


def _window_scorer(embedder: Embedder, query: str) -> Any:
    """Return a scorer of snippet windows: their dense cosine to the query.

    The query is embedded on the first call: most snippets are chosen by their words alone.
    """
    vectors: list[Any] = []

    def score(texts: list[str]) -> list[float]:
        if not vectors:
            vectors.append(embedder.embed_query(query))
        return [float(x) for x in embedder.embed_documents(texts) @ vectors[0]]

    return score


def _open_index(db: str, store: str | None, model: str | None, n_gpu_layers: int) -> Any:
    """Return (model, index) for ``search``: a saved index, its shards, or a Milvus store."""
    from ..store.index import Index
    from ..store.manifest import MANIFEST
    from ..store.sharded import ShardedIndex

    if store is not None:
        from ..store.milvus import MilvusStore
        from ..store.milvus_schema import parse_store

        uri, collection = parse_store(store)
        if model is not None:
            embedder = open_model(model, None, n_gpu_layers=n_gpu_layers)
        else:
            record = MilvusStore.recorded_model(uri, collection)
            if record is None:
                raise click.ClickException(
                    f"no collection {collection} at {uri}; build one with `llamaembed index "
                    "--store`"
                )
            embedder = open_recorded(record, n_gpu_layers)
        try:
            return embedder, MilvusStore(embedder, uri=uri, collection=collection)
        except BaseException:
            embedder.close()
            raise
    folder = Path(db)
    sharded = ShardedIndex.is_sharded(folder)
    manifest_file = folder / MANIFEST
    if sharded:
        manifest_file = min(folder.glob(f"shard-*/{MANIFEST}"), default=manifest_file)
    if not manifest_file.exists():
        raise click.ClickException(f"no index at {folder}; build one with `llamaembed index`")
    record = json.loads(manifest_file.read_text()).get("model", {})
    if model is not None:
        embedder = open_model(model, None, n_gpu_layers=n_gpu_layers)
    else:
        embedder = open_recorded(record, n_gpu_layers)
    try:
        index = ShardedIndex.load(folder, embedder) if sharded else Index.load(folder, embedder)
    except BaseException:
        embedder.close()
        raise
    return embedder, index
