"""``llamaembed models``: list, download and inspect catalogue models."""

from __future__ import annotations

import click

from ._common import errors

__all__ = ["models"]


@click.group()
def models() -> None:
    """List, download and inspect catalogue models."""


@models.command("list")
@errors
def models_list() -> None:
    """List catalogue models, what is on this machine and what auto picks (builds nothing)."""
    from ..hub.registry import buildable, catalogue, choose_quant, local_files, local_folder

    entries, default = catalogue()
    for name, entry in sorted(entries.items()):
        mark = "*" if name == default else " "
        if entry.is_static:  # a Model2Vec folder: no weight types to choose between
            folder, origin = local_folder(entry)
            if origin == "would build":
                origin = f"would distil from {entry.distilled_from}"
            size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) if folder else 0
            click.echo(
                f"{mark} {name:26s} {entry.kind:9s} {entry.dimension:5d}  folder ({origin})"
                f"{f'; on disk: {size / 1e6:.0f} MB' if folder else ''}"
            )
            continue
        files = local_files(entry)
        auto = choose_quant(entry, "auto", warn=False)
        where = next((f.origin for f in files if f.quant == auto), None)
        if where is None:  # a packaged model builds any type; a hub entry has its files
            where = "would build" if buildable(entry) else "not cached"
        if where == "would build":
            where = f"would build from {(entry.package or '').replace('_', '-')}"
        on_disk = ", ".join(
            f"{f.quant} {f.path.stat().st_size / 1e6:.0f} MB" for f in files if f.path is not None
        )
        click.echo(
            f"{mark} {name:26s} {entry.kind:9s} {entry.dimension:5d}  auto {auto} ({where})"
            f"{'; on disk: ' + on_disk if on_disk else ''}"
        )


@models.command("pull")
@click.argument("name")
@click.option(
    "--quant",
    default="auto",
    show_default=True,
    help="auto = the CPU's best full-quality type the model has (bf16/f16).",
)
@click.option("--set-default", is_flag=True, help="Use this model when none is given.")
@errors
def models_pull(name: str, quant: str, set_default: bool) -> None:
    """Download a catalogue model (with a progress bar) and verify it.

    A static model has no types: its repository's Model2Vec files are downloaded (or, for
    one distilled from another catalogue model, it is built here).
    """
    from ..hub.registry import pull
    from ..hub.registry import set_default as make_default

    path = pull(name, quant)
    if set_default:
        make_default(name, quant)
    click.echo(f"{name} ({quant}): {path}")


@models.command("show")
@click.argument("name")
@errors
def models_show(name: str) -> None:
    """Show a catalogue entry."""
    from ..hub.entry import STATIC_KEYS
    from ..hub.registry import lookup

    entry = lookup(name)
    for key, value in vars(entry).items():
        if entry.is_static and key not in {"name", *STATIC_KEYS}:
            continue  # the GGUF-only fields (files, pooling, context, ...)
        click.echo(f"{key:16s} {getattr(value, 'value', value)}")


@models.command("paths")
def models_paths() -> None:
    """Show where models, settings and the user's models.toml live."""
    from ..hub.registry import cache_dir, user_catalogue_path

    click.echo(f"cache        {cache_dir()}")
    click.echo(f"user catalog {user_catalogue_path()}")
