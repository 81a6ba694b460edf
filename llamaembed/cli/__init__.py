"""The ``llamaembed`` command line: a thin click layer over the library.

The shared options and most commands live here; ``index``/``search`` (``cli/store.py``),
``embed-dataset`` (``cli/dataset.py``) and ``serve`` (``cli/serve.py``) register themselves
on ``main`` when this package is imported.
"""

from __future__ import annotations

import functools
import io
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from .. import __version__
from ..errors import LlamaEmbedError

if TYPE_CHECKING:
    from ..embedder import Embedder

F = TypeVar("F", bound=Callable[..., Any])
DEFAULT_DB = ".llamaembed"


def _errors(func: F) -> F:
    """Turn our errors (and file errors) into one line on stderr and exit code 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (LlamaEmbedError, FileNotFoundError, PermissionError, ValueError) as exc:
            raise click.ClickException(str(exc)) from exc

    return wrapper  # type: ignore[return-value]


def _open_model(spec: str | None, quant: str | None, **options: Any) -> Embedder:
    """Open a static-model folder, a GGUF path or a catalogue name."""
    from ..hub.spec import resolve_model

    return resolve_model(spec, quant=quant, **options).open()


_gpu_layers_option = click.option(
    "--gpu-layers",
    "n_gpu_layers",
    type=click.IntRange(min=-1),
    default=0,
    show_default=True,
    help="Layers to offload to the GPU (-1 = all; needs a GPU build of llama-cpp-python).",
)


def _model_options(func: F) -> F:
    func = _gpu_layers_option(func)
    func = click.option(
        "--quant",
        default=None,
        help="Type of a catalogue model: auto (the CPU's best full-quality type), f16, q8_0, …",
    )(func)
    return click.option(
        "--model",
        "-m",
        default=None,
        help="GGUF path, catalogue name or static-model folder "
        "(default: all-MiniLM-L6-v2, built offline).",
    )(func)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="llamaembed")
def main() -> None:
    """Private, small and fast embeddings, search and reranking with GGUF models."""


# ----------------------------------------------------------------------------- models
@main.command()
@click.argument("source")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="GGUF file.")
@click.option(
    "--outtype", type=click.Choice(["f32", "f16", "q8_0"]), default="f16", show_default=True
)
@click.option(
    "--pooling",
    type=click.Choice(["mean", "cls", "last"]),
    default=None,
    help="Override the pooling read from the sentence-transformers config.",
)
@click.option("--name", default=None, help="general.name to record in the file.")
@_errors
def convert(source: str, output: str, outtype: str, pooling: str | None, name: str | None) -> None:
    """Convert a Hugging Face BERT or XLM-RoBERTa folder or hub id to GGUF, without torch."""
    from ..convert import convert as run

    path = run(source, output, outtype=outtype, pooling=pooling, name=name)
    click.echo(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")


@main.command()
@click.argument("source", type=click.Path(dir_okay=False))
@click.argument("output", type=click.Path(dir_okay=False))
@click.argument("qtype")
@click.option("--threads", default=0, show_default=True, help="0 = all cores.")
@_errors
def quantize(source: str, output: str, qtype: str, threads: int) -> None:
    """Quantise a GGUF model: QTYPE is f16, q8_0, q6_k, q5_k_m, q4_k_m, q4_0, …."""
    from ..convert.quantize import quantize as run

    path = run(source, output, qtype, n_threads=threads)
    click.echo(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")


@main.command()
@click.argument("teacher")
@click.option(
    "-o", "--output", required=True, type=click.Path(file_okay=False), help="Folder to write."
)
@click.option(
    "--dims",
    type=click.IntRange(min=1),
    default=256,
    show_default=True,
    help="PCA width of the vectors.",
)
@click.option("--no-pca", is_flag=True, help="Keep the teacher's width (no PCA).")
@click.option(
    "--sif",
    "sif_coefficient",
    type=float,
    default=1e-4,
    show_default=True,
    help="SIF coefficient a of the weights a / (a + p).",
)
@click.option(
    "--corpus",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Text file whose token counts give p (instead of Zipf's law).",
)
@click.option("--quant", default=None, help="Type of a catalogue teacher (default: auto).")
@_errors
def distill(
    teacher: str,
    output: str,
    dims: int,
    no_pca: bool,
    sif_coefficient: float,
    corpus: str | None,
    quant: str | None,
) -> None:
    """Distil a static (Model2Vec-format) model from TEACHER, a GGUF path or catalogue name."""
    import time

    from ..hub.registry import resolve_params
    from ..static.distill import distill as run

    params = resolve_params(teacher, quant=quant)
    started = time.perf_counter()
    folder = run(
        params,
        output,
        dims=None if no_pca else dims,
        sif_coefficient=sif_coefficient,
        corpus=corpus,
        show_progress=sys.stderr.isatty(),
    )
    click.echo(f"wrote {folder} in {time.perf_counter() - started:.1f} s")


# ----------------------------------------------------------------------------- embed / rerank
@main.command()
@click.argument("texts", nargs=-1)
@_model_options
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
@_errors
def embed(
    texts: tuple[str, ...],
    model: str | None,
    quant: str | None,
    fmt: str,
    output: str | None,
    no_normalize: bool,
    n_gpu_layers: int,
) -> None:
    """Embed TEXTS (or one text per line of standard input with '-' or no TEXTS)."""
    import numpy as np

    items = list(texts)
    if not items or items == ["-"]:
        items = [line.rstrip("\n") for line in sys.stdin if line.strip()]
    if not items:
        raise click.UsageError("no text to embed")
    with _open_model(model, quant, n_gpu_layers=n_gpu_layers) as llama:
        vectors = llama.embed_texts(items, normalize=not no_normalize)
    if fmt == "npy":
        buffer = io.BytesIO()
        np.save(buffer, np.asarray(vectors, dtype=np.float32))
        data = buffer.getvalue()
        if output:
            Path(output).write_bytes(data)
        else:
            sys.stdout.buffer.write(data)
        return
    text = json.dumps([[round(float(x), 7) for x in row] for row in vectors])
    if output:
        Path(output).write_text(text + "\n")
    else:
        click.echo(text)


@main.command()
@click.argument("query")
@click.argument("documents", nargs=-1, required=True)
@click.option("--model", "-m", required=True, help="Cross-encoder GGUF path or catalogue name.")
@click.option("--quant", default=None)
@click.option("--top-n", type=int, default=None, help="Only the N best.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@_gpu_layers_option
@_errors
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
    with _open_model(model, quant, n_gpu_layers=n_gpu_layers) as llama:
        results = llama.rerank(query, list(documents), top_n=top_n or len(documents))
    if as_json:
        click.echo(
            json.dumps([{"index": r.index, "score": r.score, "text": r.text} for r in results])
        )
        return
    for r in results:
        click.echo(f"{r.score:9.4f}  [{r.index}] {r.text}")


# ----------------------------------------------------------------------------- info
@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@_errors
def info(as_json: bool) -> None:
    """Show llama.cpp's version and backends, CPU features, GPUs and the auto weight type."""
    from ..engine.hardware import system_info

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


# ----------------------------------------------------------------------------- catalogue
@main.group()
def models() -> None:
    """List, download and inspect catalogue models."""


@models.command("list")
@_errors
def models_list() -> None:
    """List catalogue models, what is on this machine and what auto picks (builds nothing)."""
    from ..hub.registry import buildable, catalogue, choose_quant, local_files

    entries, default = catalogue()
    for name, entry in sorted(entries.items()):
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
        mark = "*" if name == default else " "
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
@_errors
def models_pull(name: str, quant: str, set_default: bool) -> None:
    """Download a catalogue model (with a progress bar) and verify it."""
    from ..hub.registry import pull
    from ..hub.registry import set_default as make_default

    path = pull(name, quant)
    if set_default:
        make_default(name, quant)
    click.echo(f"{name} ({quant}): {path}")


@models.command("show")
@click.argument("name")
@_errors
def models_show(name: str) -> None:
    """Show a catalogue entry."""
    from ..hub.registry import lookup

    entry = lookup(name)
    for key, value in vars(entry).items():
        click.echo(f"{key:16s} {getattr(value, 'value', value)}")


@models.command("paths")
def models_paths() -> None:
    """Show where models, settings and the user's models.toml live."""
    from ..hub.registry import cache_dir, user_catalogue_path

    click.echo(f"cache        {cache_dir()}")
    click.echo(f"user catalog {user_catalogue_path()}")


if __name__ == "__main__":  # pragma: no cover
    main()


from . import dataset as _dataset  # noqa: E402, F401  (registers `llamaembed embed-dataset`)
from . import serve as _serve  # noqa: E402, F401  (registers `llamaembed serve`)
from . import store as _store  # noqa: E402, F401  (registers `llamaembed index` and `search`)
