"""Hugging Face → GGUF conversion (torch-free) and GGUF quantisation.

``convert`` reads the folder's ``config.json`` and hands it to the module of its
architecture family: ``bert`` (BERT encoders and cross-encoders) or ``xlm_roberta``
(XLM-RoBERTa: bge-m3, bge-reranker-*), whose SentencePiece tokenizer ``sentencepiece``
reads. Every other architecture (Qwen3-Embedding, Qwen3-Reranker, gte-Qwen2,
EmbeddingGemma, …) goes to llama.cpp's own converter (``llama_cpp``, which needs torch);
``quantize`` re-types GGUF files. ``m3`` carries bge-m3's sparse and ColBERT heads
(``sparse_linear.pt``, ``colbert_linear.pt``, read by ``torch_state`` without torch) into
the heads file beside the GGUF (``llamaembed.heads``). Modules here may import
``llamaembed.errors``, ``llamaembed.params``, ``llamaembed._files``, ``llamaembed.heads``
and, for quantising, ``llamaembed.engine._native``.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import ConversionError
from ..params import Pooling
from .bert import (
    BERT_ARCHITECTURES,
    CONVERTER_VERSION,
    OUTTYPES,
    check_outtype,
    convert_bert,
)
from .hf_folder import read_json, resolve_source
from .llama_cpp import convert_with_llama_cpp
from .m3 import read_m3_heads, write_m3_heads
from .outtype import choose_outtype
from .xlm_roberta import XLM_ROBERTA_ARCHITECTURES, convert_xlm_roberta

__all__ = ["CONVERTER_VERSION", "OUTTYPES", "SUPPORTED_ARCHITECTURES", "choose_outtype", "convert"]

SUPPORTED_ARCHITECTURES = BERT_ARCHITECTURES + XLM_ROBERTA_ARCHITECTURES
_DEFAULT_ARCHITECTURE = {"bert": "BertModel", "xlm-roberta": "XLMRobertaModel"}


def convert(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    outtype: str = "auto",
    pooling: Pooling | str | None = None,
    name: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    converter: str = "auto",
    pre_tokenizer: str | None = None,
) -> Path:
    """Convert a Hugging Face model folder (or hub id) to a GGUF file; return its path.

    BERT and XLM-RoBERTa encoders and sequence-classification cross-encoders are
    converted here, without torch; other architectures (``converter="auto"``) or any
    (``converter="llama.cpp"``) by llama.cpp's own converter, where ``pre_tokenizer``
    registers a BPE tokenizer it does not know (see ``conversion.llama_cpp``). A hub id
    is looked up in the Hugging Face cache (``cache_dir``, default the usual one) before
    anything is downloaded. The file appears only when complete: it is written next to
    ``output`` under a temporary name and renamed at the end. ``outtype`` is f32, f16,
    bf16, q8_0 or ``auto`` (``choose_outtype``: the type this CPU runs fastest at full
    quality); our converter makes BF16 by rounding an F32 conversion.
    """
    outtype = choose_outtype(outtype).type
    if converter not in ("auto", "llamaembed", "llama.cpp"):
        raise ConversionError(
            f"converter is 'auto', 'llamaembed' or 'llama.cpp', not {converter!r}"
        )
    folder = resolve_source(source, Path(cache_dir) if cache_dir is not None else None)
    config_file = folder / "config.json"
    if not config_file.exists():
        raise ConversionError(f"no config.json in {folder}; is it a Hugging Face model folder?")
    config = read_json(config_file)
    model_type = str(config.get("model_type"))
    architectures = config.get("architectures") or [
        _DEFAULT_ARCHITECTURE.get(model_type, model_type)
    ]
    arch = architectures[0]
    target = Path(output).expanduser()
    ours = arch in SUPPORTED_ARCHITECTURES
    if converter == "llama.cpp" or (converter == "auto" and not ours):
        if pooling is not None or name is not None:
            raise ConversionError(
                "pooling and name are options of llamaembed's converter; llama.cpp's reads "
                "the pooling from the sentence-transformers files (open the GGUF with "
                "pooling= to override it)"
            )
        return convert_with_llama_cpp(folder, target, outtype=outtype, pre_tokenizer=pre_tokenizer)
    if outtype == "bf16":
        return _bf16_from_f32(folder, target, pooling=pooling, name=name)
    check_outtype(outtype)
    if arch in BERT_ARCHITECTURES:
        writer = convert_bert
    elif arch in XLM_ROBERTA_ARCHITECTURES:
        writer = convert_xlm_roberta
    else:
        raise ConversionError(
            f"llamaembed's converter does not know {arch!r} (it knows "
            f"{', '.join(SUPPORTED_ARCHITECTURES)}); use converter='llama.cpp'"
        )
    width = int(config.get("hidden_size", 0))
    heads = read_m3_heads(folder, width)  # read and checked before anything is written
    written = writer(folder, config, arch, target, outtype=outtype, pooling=pooling, name=name)
    write_m3_heads(written, heads, width, folder)
    return written


def _bf16_from_f32(
    folder: Path, target: Path, *, pooling: Pooling | str | None, name: str | None
) -> Path:
    """Write BF16 as llama.cpp rounds it from an F32 conversion (the F32 file is removed)."""
    from .._files import output_problem
    from .quantize import quantize

    problem = output_problem(target)
    if problem:
        raise ConversionError(problem)
    step = target.with_name(f".{target.name}.f32.gguf")
    try:
        # our converter, as asked: "auto" would hand an architecture we do not know to
        # llama.cpp's (the BF16 path is reached before the architecture is checked)
        convert(folder, step, outtype="f32", pooling=pooling, name=name, converter="llamaembed")
        return quantize(step, target, "bf16")
    finally:
        step.unlink(missing_ok=True)
        from ..heads import heads_path

        heads_path(step).unlink(missing_ok=True)
