"""``llamaembed embed-dataset``: embed Parquet, JSON Lines or text files on a Ray cluster."""

from __future__ import annotations

import sys
from typing import Any

import click

from ._common import dimensions_option, errors, model_options


def _actors(value: str) -> int | tuple[int, int]:
    try:
        if "-" in value:
            low, high = (int(part) for part in value.split("-", 1))
            return (low, high)
        return int(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not N or MIN-MAX", param_hint="--actors") from None


@click.command("embed-dataset")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(exists=True))
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(file_okay=False),
    help="Folder for the embedded Parquet files.",
)
@model_options
@click.option("--text-column", default="text", show_default=True, help="Column to embed.")
@click.option(
    "--id-column",
    default=None,
    help="Column of row ids (default: 'id' if present, else a hash of the text).",
)
@click.option(
    "--address",
    default=None,
    help="Ray cluster: 'auto' (started with `ray start`), ray://HOST:10001; "
    "default: RAY_ADDRESS, else a local cluster.",
)
@click.option("--actors", default="1", show_default=True, help="Actors: N, or MIN-MAX.")
@click.option(
    "--cpus-per-actor",
    type=click.FloatRange(min=0, min_open=True),
    default=1,
    show_default=True,
    help="CPUs (and llama.cpp threads) per actor.",
)
@click.option("--gpus-per-actor", type=click.FloatRange(min=0), default=0, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Rows per call.")
@click.option("--overwrite", is_flag=True, help="Replace Parquet files already in OUTPUT.")
@dimensions_option
@errors
def embed_dataset(
    inputs: tuple[str, ...],
    output: str,
    model: str | None,
    quant: str | None,
    n_gpu_layers: int,
    text_column: str,
    id_column: str | None,
    address: str | None,
    actors: str,
    cpus_per_actor: float,
    gpus_per_actor: float,
    batch_size: int | None,
    overwrite: bool,
    dimensions: int | None,
) -> None:
    """Embed INPUT files (Parquet, JSON Lines or text) with Ray; write Parquet to OUTPUT."""
    from ..distributed import ray as distributed
    from ..distributed.parquet import read_info
    from ..hub.spec import resolve_model

    pool = _actors(actors)
    spec = resolve_model(model, quant=quant, n_gpu_layers=n_gpu_layers)
    started = distributed.connect(address)
    try:
        import ray.data

        context: Any = ray.data.DataContext.get_current()
        context.enable_progress_bars = sys.stderr.isatty()
        ds = distributed.read_dataset(list(inputs), text_column=text_column)
        embedded = distributed.embed_dataset(
            ds,
            spec,
            text_column=text_column,
            id_column=id_column,
            actors=pool,
            cpus_per_actor=cpus_per_actor,
            gpus_per_actor=gpus_per_actor,
            batch_size=batch_size,
            dimensions=dimensions,
        )
        files = distributed.write_embeddings(embedded, output, overwrite=overwrite)
    finally:
        if started:
            ray.shutdown()
    rows = sum(read_info(f).rows for f in files)
    click.echo(f"embedded {rows} rows with {spec.name} into {len(files)} Parquet files in {output}")
