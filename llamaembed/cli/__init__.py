"""The ``llamaembed`` command line: a thin click layer over the library.

``main`` is the group; each module here holds one set of commands and ``_common`` what
they share. This module imports them and registers them on ``main``; they never import
this module, so the CLI has no import cycle.
"""

from __future__ import annotations

import click

from .. import __version__
from .agents import mcp_command
from .catalogue import models
from .convert import convert, distill, quantize
from .dataset import embed_dataset
from .embed import embed, info, rerank
from .search import related, search
from .serve import serve
from .store import index_command

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="llamaembed")
def main() -> None:
    """Private, small and fast embeddings, search and reranking with GGUF models."""


for command in (
    convert,
    quantize,
    distill,
    embed,
    rerank,
    info,
    models,
    index_command,
    search,
    related,
    embed_dataset,
    serve,
    mcp_command,
):
    main.add_command(command)
