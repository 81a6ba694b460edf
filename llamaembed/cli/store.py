"""``llamaembed index``: an index from text files (ignore rules, --watch) or Parquet."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from ..embedder import Embedder
    from ..store.folder import IndexFolder
    from ..store.ingest import IngestReport
    from ..store.selection import FileRules


from ..hub.spec import open_recorded
from ._common import (
    DEFAULT_DB,
    dimensions_option,
    errors,
    model_options,
    open_model,
    selection_options,
)
from ._folder_run import RunSettings, index_folder


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
@selection_options
@click.option(
    "--watch",
    is_flag=True,
    help="Keep the index in step with PATHS: re-index changed files as they are saved "
    "(one line on stderr per update; Ctrl-C stops).",
)
@click.option(
    "--debounce",
    type=click.IntRange(min=10, max=60_000),
    default=400,
    show_default=True,
    help="With --watch: milliseconds without a change that end a burst of saves.",
)
@click.option(
    "--fast",
    is_flag=True,
    help="Index with the static model distilled from --model (the default model's: "
    "all-MiniLM-L6-v2-static, built on first use): seconds instead of minutes, lower quality.",
)
@click.option(
    "--fast-tier/--no-fast-tier",
    default=True,
    show_default=True,
    help="When a run has many new files, index them first with the static model (seconds) "
    "so a search answers from it while the full model works; removed when the full index "
    "is whole.",
)
@click.option(
    "--commit-every",
    type=click.FloatRange(min=0.1),
    default=60.0,
    show_default=True,
    help="Seconds between commits of a long run (what a stopped run keeps).",
)
@click.option(
    "--progress-interval",
    type=click.FloatRange(min=0.01),
    default=60.0,
    hidden=True,
    help="Seconds between progress lines when stderr is not a terminal.",
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
    rules: FileRules,
    watch: bool,
    debounce: int,
    fast: bool,
    fast_tier: bool,
    commit_every: float,
    progress_interval: float,
) -> None:
    """Index text files under PATHS (unchanged files are skipped later), or --from-parquet.

    Folders are walked as ripgrep does: files .gitignore, .git/info/exclude and
    .llamaembedignore exclude are left out, and hidden ones (--no-ignore, --hidden,
    --include and --exclude change that); a file named is always read. Passages of files
    the rules now leave out are removed. One writer at a time per --db folder: another run
    waits for it (--wait), then adds to what it wrote.

    A long run commits what it has done every --commit-every seconds, so a search
    answers meanwhile (saying how much of the tree it covers), and Ctrl-C or SIGTERM ends
    it at its next group of passages with a last commit (exit 0): the next run goes on from
    there, as it does after a crash. Progress goes to stderr: a bar on a terminal, a line
    a minute otherwise.
    """
    from ..store.folder import IndexFolder

    if watch and (store is not None or from_parquet is not None):
        raise click.UsageError("--watch keeps a --db folder in step with text files")
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
            store,
            paths,
            from_parquet,
            model,
            quant,
            n_gpu_layers,
            dimensions,
            max_tokens,
            overlap,
            rules,
        )
        return
    if from_parquet is not None:
        _index_parquet(from_parquet, model, quant, db, n_gpu_layers, shards, only_shard, wait)
        return
    if shards is not None or only_shard is not None:
        raise click.UsageError("--shards and --shard go with --from-parquet")
    folder = Path(db)
    options: dict[str, Any] = {"max_tokens": max_tokens, "overlap": overlap}
    if fast:
        from ..hub.registry import fast_companion

        model, quant = fast_companion(model), None
    with open_model(model, quant, n_gpu_layers=n_gpu_layers) as llama:
        target = IndexFolder(folder, llama, wait=wait, dimensions=dimensions)
        settings = RunSettings(rules, options, wait, fast_tier, commit_every, progress_interval)
        report = index_folder(target, llama, model, paths, settings)
        index = target.current()
        click.echo(_summary(report, len(index), str(folder)))
        if not report.complete:
            assert index.progress is not None
            click.echo(
                f"stopped: {index.progress.files_done} of {report.files_total} files are "
                "indexed and committed; run the same command again to index the rest",
                err=True,
            )
            return
        if watch:
            _watch(target, str(folder), paths, rules, options, debounce)


def _watch(
    target: IndexFolder,
    where: str,
    paths: tuple[str, ...],
    rules: FileRules,
    options: dict[str, Any],
    debounce: int,
) -> None:
    """``index --watch``: one stderr line per update until Ctrl-C or SIGTERM."""
    import signal
    import threading

    from ..store.watch import IndexWatcher, WatchUpdate

    watcher = IndexWatcher(target, paths, rules, ingest_options=options)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def report(update: WatchUpdate) -> None:
        line = _summary(update.report, update.passages, where)
        click.echo(f"{update.changed_paths} paths changed: {line}", err=True)

    def ready() -> None:
        click.echo(f"watching {', '.join(paths)} (Ctrl-C stops)", err=True)

    # Ctrl-C between two updates or during one: each commit is whole, so just stop
    with contextlib.suppress(KeyboardInterrupt):
        watcher.run(report, quiet_ms=debounce, stop=stop, on_ready=ready)
    click.echo("stopped watching", err=True)


def _summary(report: IngestReport, total: int, where: str) -> str:
    excluded = f"{report.excluded_files} now excluded, " if report.excluded_files else ""
    return (
        f"indexed {report.indexed_files} files ({report.chunks} chunks), "
        f"{report.unchanged_files} unchanged, {report.removed_files} removed, {excluded}"
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
    rules: FileRules,
) -> None:
    """``index --store``: text files or embedded Parquet into a Milvus collection."""
    from ..store.ingest import ingest_files
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
    with (
        open_model(model, quant, n_gpu_layers=n_gpu_layers) as embedder,
        MilvusStore(embedder, uri=uri, collection=collection, dimensions=dimensions) as milvus,
    ):
        report = ingest_files(
            milvus,
            embedder,
            paths,
            rules=rules,
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
