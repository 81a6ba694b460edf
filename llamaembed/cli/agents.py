"""``llamaembed mcp``: an MCP server over an index, for coding agents."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from ..store.selection import FileRules

from ._common import DEFAULT_DB, errors, gpu_layers_option, open_model, selection_options


@click.command("mcp")
@click.option(
    "--db",
    default=DEFAULT_DB,
    show_default=True,
    type=click.Path(file_okay=False),
    help="The index folder to serve.",
)
@click.option(
    "--store",
    default=None,
    help="Serve a Milvus collection instead: a .db file or milvus://HOST:PORT/NAME.",
)
@click.option(
    "--root",
    "roots",
    multiple=True,
    type=click.Path(exists=True, file_okay=False),
    help="A folder the index tool may re-index (repeatable; none: the tool refuses).",
)
@click.option(
    "--rerank",
    "rerank_model",
    default=None,
    help="A cross-encoder for the search tool's rerank argument.",
)
@click.option(
    "--http",
    "port",
    type=click.IntRange(1, 65535),
    default=None,
    help="Serve streamable HTTP on 127.0.0.1:PORT/mcp instead of stdio.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address for --http.")
@click.option(
    "--wait",
    default=600.0,
    show_default=True,
    help="Seconds the index tool waits for another writer's lock.",
)
@gpu_layers_option
@selection_options
@errors
def mcp_command(
    db: str,
    store: str | None,
    roots: tuple[str, ...],
    rerank_model: str | None,
    port: int | None,
    host: str,
    wait: float,
    n_gpu_layers: int,
    rules: FileRules,
) -> None:
    """Serve an index to agents over the Model Context Protocol (stdio, or --http PORT).

    Tools: search (query, k, filter, hybrid, rerank) and index (paths under --root).
    Resources: each indexed file's passages.
    """
    try:
        import mcp  # noqa: F401
    except ImportError as exc:
        raise click.ClickException("the MCP server needs pip install 'llamaembed[mcp]'") from exc
    from ..agents.mcp import build_server
    from ..agents.service import SearchService

    reranker = open_model(rerank_model, None, n_gpu_layers=n_gpu_layers) if rerank_model else None
    service = SearchService(
        db=None if store else db,
        store=store,
        roots=roots,
        reranker=reranker,
        n_gpu_layers=n_gpu_layers,
        wait=wait,
        rules=rules,
    )
    try:
        server = build_server(service)
        if port is None:
            server.run("stdio")
        else:
            click.echo(f"MCP over streamable HTTP at http://{host}:{port}/mcp", err=True)
            server.run("streamable-http", host=host, port=port)
    finally:
        service.close()
