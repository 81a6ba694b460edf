"""``llamaembed convert``, ``quantize`` and ``distill``: make model files."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ._common import errors

__all__ = ["convert", "distill", "quantize"]


def _resolve(outtype: str) -> tuple[str, str]:
    """Return the type ``outtype`` names, and for auto a line saying which and why."""
    from ..conversion import choose_outtype

    choice = choose_outtype(outtype)
    if outtype.strip().lower() != "auto":
        return choice.type, ""
    return choice.type, f"auto type: {choice.type.upper()} ({choice.reason})"


def _wrote(path: Path, said: str) -> None:
    if said:  # after the work, so a failure's one line stays the Error: line
        click.echo(said, err=True)
    click.echo(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")


@click.command()
@click.argument("source")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="GGUF file.")
@click.option(
    "--outtype",
    type=click.Choice(["auto", "f32", "f16", "bf16", "q8_0"]),
    default="auto",
    show_default=True,
    help="auto: the type this CPU runs fastest at full quality (printed, with the reason).",
)
@click.option(
    "--pooling",
    type=click.Choice(["mean", "cls", "last"]),
    default=None,
    help="Override the pooling read from the sentence-transformers config.",
)
@click.option("--name", default=None, help="general.name to record in the file.")
@click.option(
    "--converter",
    type=click.Choice(["auto", "llamaembed", "llama.cpp"]),
    default="auto",
    show_default=True,
    help="auto: ours for BERT / XLM-RoBERTa, llama.cpp's (needs torch) for the rest.",
)
@click.option(
    "--pre-tokenizer",
    default=None,
    help="llama.cpp's converter: name a BPE tokenizer it does not know (e.g. qwen2).",
)
@errors
def convert(
    source: str,
    output: str,
    outtype: str,
    pooling: str | None,
    name: str | None,
    converter: str,
    pre_tokenizer: str | None,
) -> None:
    """Convert a Hugging Face model folder or hub id to GGUF.

    BERT and XLM-RoBERTa models without torch; Qwen3-Embedding, Qwen3-Reranker,
    gte-Qwen2, EmbeddingGemma and other decoders with llama.cpp's own converter.
    """
    from ..conversion import convert as run

    outtype, said = _resolve(outtype)
    path = run(
        source,
        output,
        outtype=outtype,
        pooling=pooling,
        name=name,
        converter=converter,
        pre_tokenizer=pre_tokenizer,
    )
    _wrote(path, said)


@click.command()
@click.argument("source", type=click.Path(dir_okay=False))
@click.argument("output", type=click.Path(dir_okay=False))
@click.argument("qtype")
@click.option("--threads", default=0, show_default=True, help="0 = all cores.")
@errors
def quantize(source: str, output: str, qtype: str, threads: int) -> None:
    """Quantise a GGUF model: QTYPE is auto, f16, bf16, q8_0, q6_k, q5_k_m, q4_k_m, q4_0, …."""
    from ..conversion.quantize import quantize as run

    qtype, said = _resolve(qtype)
    _wrote(run(source, output, qtype, n_threads=threads), said)


@click.command()
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
@errors
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
