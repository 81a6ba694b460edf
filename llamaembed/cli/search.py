"""``llamaembed search``: hits grouped by file, grep's context flags, a path filter, --json."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from ..embedder import Embedder

from ..hub.spec import open_recorded
from ._common import DEFAULT_DB, errors, gpu_layers_option, open_model


def _index_options(func: Any) -> Any:
    """Add ``--db`` and ``--store``: the index that ``search`` and ``related`` read."""
    func = click.option(
        "--store",
        default=None,
        metavar="milvus://HOST:PORT/COLLECTION | FILE.db",
        help="Search a Milvus collection (built by `index --store`) instead of --db.",
    )(func)
    return click.option(
        "--db", default=DEFAULT_DB, show_default=True, type=click.Path(file_okay=False)
    )(func)


@click.command()
@click.argument("query")
@_index_options
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
@click.option(
    "--glob",
    "globs",
    multiple=True,
    metavar="GLOB",
    help="Search only passages of files matching GLOB (gitignore syntax, relative to the "
    "working folder). Repeatable.",
)
@click.option(
    "-A",
    "--after-context",
    "after",
    type=click.IntRange(min=0),
    default=None,
    metavar="N",
    help="Show N lines of the file after each hit's snippet.",
)
@click.option(
    "-B",
    "--before-context",
    "before",
    type=click.IntRange(min=0),
    default=None,
    metavar="N",
    help="Show N lines of the file before each hit's snippet.",
)
@click.option(
    "-C",
    "--context",
    "around",
    type=click.IntRange(min=0),
    default=None,
    metavar="N",
    help="Show N lines before and after each hit's snippet (-A and -B override it).",
)
@click.option(
    "-l",
    "--files-with-matches",
    "files_only",
    is_flag=True,
    help="Print only the files of the hits, best first.",
)
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
    globs: tuple[str, ...],
    after: int | None,
    before: int | None,
    around: int | None,
    files_only: bool,
    n_gpu_layers: int,
) -> None:
    """Search an index built by `llamaembed index`: hits grouped by file, with line ranges.

    The order is the search's (fused rank, or the reranker's); the score shown is the
    dense cosine, and the reranker's probability after --rerank.
    """
    from ._render import FileLines, display_path, files_of, hit_record, render_hits

    if k < 1:
        raise click.UsageError("-k must be at least 1")
    if any(not g.strip() for g in globs):
        raise click.UsageError("--glob needs a pattern")
    wants_context = any(n is not None for n in (after, before, around))
    context = (
        FileLines(
            before if before is not None else around or 0,
            after if after is not None else around or 0,
        )
        if wants_context
        else None
    )
    note = ""
    if store is None:
        from ..store.tiers import answering_folder

        # the fast tier has a model of its own: a --model given searches the main index
        chosen, note = answering_folder(Path(db), use_fast=model is None)
        db = str(chosen)
    opened = _open_index(db, store, model, n_gpu_layers)
    embedder, index = opened
    if note:
        click.echo(f"note: {note}", err=True)
    reranker = None
    try:
        if rerank_model is not None and rerank_model != "colbert":
            reranker = open_model(rerank_model, None, n_gpu_layers=n_gpu_layers)
        ranker = reranker or rerank_model
        hits = []
        where = _glob_filter(index, globs) if globs else None
        if where is None or where["source"]:
            hits = index.search(query, k, filter=where, hybrid=hybrid, rerank_with=ranker)
        scorer = _window_scorer(embedder, query)
        if files_only:
            files = files_of(hits)
            shown = "\n".join(map(display_path, files)) or "no results"
            click.echo(json.dumps(files) if as_json else shown)
        elif as_json:
            records = [
                hit_record(n, h, query, ranker, scorer, context) for n, h in enumerate(hits, 1)
            ]
            click.echo(json.dumps(records, ensure_ascii=False))
        else:
            color = sys.stdout.isatty() and "NO_COLOR" not in os.environ
            click.echo(
                render_hits(
                    hits, query, reranker=ranker, color=color, scorer=scorer, context=context
                )
            )
    finally:
        if reranker is not None:
            reranker.close()
        if store is not None:
            index.close()
        embedder.close()


def _glob_filter(index: Any, globs: tuple[str, ...]) -> dict[str, list[str]]:
    """Return a metadata filter for the passages whose source file matches a glob."""
    from ..store.ingest import indexed_files
    from ..store.selection import match_sources

    return {"source": match_sources(indexed_files(index), globs)}


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
    from ..store.manifest import MANIFEST, recorded_model
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
    recorded = folder
    if sharded:  # every shard records the same model
        recorded = min((m.parent for m in folder.glob(f"shard-*/{MANIFEST}")), default=folder)
    record = recorded_model(recorded)
    if record is None:
        raise click.ClickException(f"no index at {folder}; build one with `llamaembed index`")
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


@click.command()
@click.argument("place", metavar="FILE[:LINE]")
@_index_options
@click.option("-k", "k", default=10, show_default=True, help="Number of results.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output: every field.")
@gpu_layers_option
@errors
def related(
    place: str, db: str, store: str | None, k: int, as_json: bool, n_gpu_layers: int
) -> None:
    """Show the passages most like the definition at FILE[:LINE], other files first.

    Finds other implementations of an interface, the tests of a function, the code that
    does the same thing elsewhere. Without LINE, the file's first definition.
    """
    from ..store.related import related as find_related
    from ._render import display_path, related_record, render_hits

    if k < 1:
        raise click.UsageError("-k must be at least 1")
    file, line = _place(place)
    embedder, index = _open_index(db, store, None, n_gpu_layers)
    try:
        found = find_related(index, file, line, k)
        record = related_record(found, display_path)
        if as_json:
            click.echo(json.dumps(record, ensure_ascii=False))
        else:
            symbol = f" ({record['symbol']})" if record["symbol"] else ""
            click.echo(f"like {record['anchor']}{symbol}:\n")
            color = sys.stdout.isatty() and "NO_COLOR" not in os.environ
            click.echo(render_hits(found.hits, found.anchor.text, reranker=None, color=color))
    finally:
        if store is not None:
            index.close()
        embedder.close()


def _place(place: str) -> tuple[str, int | None]:
    """Return (absolute file path, line or None) of a FILE[:LINE] argument."""
    file, _, tail = place.rpartition(":")
    line: int | None = None
    if file and tail.isdigit():
        line = int(tail)
        if line < 1:
            raise click.UsageError("LINE counts from 1")
    else:
        file = place
    path = Path(file)
    if not path.is_file():
        raise click.UsageError(f"no file {file}")
    return str(path.resolve()), line
