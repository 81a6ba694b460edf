"""``llamaembed embed``, ``rerank`` and ``info``: use a model from the command line."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

import click

from ._common import dimensions_option, errors, gpu_layers_option, model_options, open_model

__all__ = ["embed", "info", "rerank"]


@click.command()
@click.argument("texts", nargs=-1)
@model_options
@click.option(
    "--format", "fmt", type=click.Choice(["json", "npy"]), default="json", show_default=True
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write here instead of standard output.",
)
@click.option("--no-normalize", is_flag=True, help="Raw vectors instead of unit length.")
@dimensions_option
@click.option(
    "--prompt",
    "prompt_name",
    type=click.Choice(["query", "document"]),
    default=None,
    help="Put the model's query or document prompt before each text.",
)
@click.option(
    "--sparse", is_flag=True, help="bge-m3's lexical weights: per text, {token id: weight}."
)
@click.option(
    "--colbert", is_flag=True, help="bge-m3's ColBERT vectors: per text, one row a token."
)
@errors
def embed(
    texts: tuple[str, ...],
    model: str | None,
    quant: str | None,
    fmt: str,
    output: str | None,
    no_normalize: bool,
    dimensions: int | None,
    prompt_name: str | None,
    sparse: bool,
    colbert: bool,
    n_gpu_layers: int,
) -> None:
    """Embed TEXTS (or one text per line of standard input with '-' or no TEXTS)."""
    import numpy as np

    if sparse and colbert:
        raise click.UsageError("--sparse and --colbert are separate outputs; ask for one")
    if (sparse or colbert) and (fmt == "npy" or no_normalize):
        raise click.UsageError("--sparse and --colbert write JSON of unit-scale outputs only")
    items = list(texts)
    if not items or items == ["-"]:
        items = [line.rstrip("\n") for line in sys.stdin if line.strip()]
    if not items:
        raise click.UsageError("no text to embed")
    with open_model(model, quant, n_gpu_layers=n_gpu_layers) as llama:
        if sparse or colbert:
            out = llama.encode_m3(
                items, return_dense=False, return_sparse=sparse, return_colbert_vecs=colbert
            )
            rows = out["lexical_weights"] if sparse else out["colbert_vecs"]
            _write_json(_m3_json(rows, sparse), output)
            return
        vectors = llama.encode(
            items, prompt_name=prompt_name, dimensions=dimensions, normalize=not no_normalize
        )
    if fmt == "npy":
        buffer = io.BytesIO()
        np.save(buffer, np.asarray(vectors, dtype=np.float32))
        data = buffer.getvalue()
        if output:
            Path(output).write_bytes(data)
        else:
            sys.stdout.buffer.write(data)
        return
    _write_json(json.dumps([[round(float(x), 7) for x in row] for row in vectors]), output)


def _m3_json(rows: list[Any], sparse: bool) -> str:
    if sparse:
        return json.dumps([{k: round(v, 7) for k, v in r.items()} for r in rows])
    return json.dumps([[[round(float(x), 7) for x in vec] for vec in matrix] for matrix in rows])


def _write_json(text: str, output: str | None) -> None:
    if output:
        Path(output).write_text(text + "\n")
    else:
        click.echo(text)


@click.command()
@click.argument("query")
@click.argument("documents", nargs=-1, required=True)
@click.option("--model", "-m", required=True, help="Cross-encoder GGUF path or catalogue name.")
@click.option("--quant", default=None)
@click.option("--top-n", type=int, default=None, help="Only the N best.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@gpu_layers_option
@errors
def rerank(
    query: str,
    documents: tuple[str, ...],
    model: str,
    quant: str | None,
    top_n: int | None,
    as_json: bool,
    n_gpu_layers: int,
) -> None:
    """Score DOCUMENTS against QUERY with a cross-encoder, best first."""
    with open_model(model, quant, n_gpu_layers=n_gpu_layers) as llama:
        results = llama.rerank(query, list(documents), top_n=top_n or len(documents))
    if as_json:
        click.echo(
            json.dumps([{"index": r.index, "score": r.score, "text": r.text} for r in results])
        )
        return
    for r in results:
        click.echo(f"{r.score:9.4f}  [{r.index}] {r.text}")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@errors
def info(as_json: bool) -> None:
    """Show llama.cpp's version and backends, CPU features, GPUs and the auto weight type."""
    from ..engine.system import system_info

    facts = system_info()
    if as_json:
        click.echo(json.dumps(facts, indent=2))
        return
    click.echo(f"llama-cpp-python  {facts['llama_cpp_python']}")
    click.echo(f"ggml              {facts['ggml']}")
    click.echo(f"backends          {', '.join(facts['backends'])}")
    click.echo(f"llama.cpp CPU     {' '.join(facts['cpu_features'])}")
    click.echo(f"CPU flags         {' '.join(facts['cpu_flags_relevant']) or '(unknown)'}")
    gpu = "yes" if facts["gpu_offload"] else "no (CPU-only build)"
    click.echo(f"GPU offload       {gpu}")
    for device in facts["devices"]:
        memory = device["memory_total"] / 2**30
        click.echo(
            f"device            {device['name']} ({device['type']}): "
            f"{device['description']}, {memory:.1f} GiB"
        )
    click.echo(f"auto weight type  {facts['auto_type']}: {facts['auto_reason']}")
    extra = "on" if facts["extra_cpu_buffers"] else "off"
    click.echo(f"extra CPU buffers {extra}: {facts['extra_cpu_buffers_reason']}")
    if facts["amx_in_use"]:
        amx = "in use"
    elif facts["amx_kernels_compiled"]:
        amx = "built in, not used (see extra CPU buffers)"
    else:
        amx = "not in this build"
    click.echo(f"AMX kernels       {amx}")
    from ..engine.contexts import split_threads

    threads = facts["threads_default"]
    split = " + ".join(str(n) for n in split_threads(threads, facts["contexts_default"]))
    click.echo(f"batches           {split} threads (a context each); a single query: {threads}")
