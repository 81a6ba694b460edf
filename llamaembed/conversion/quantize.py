"""Quantise a GGUF model with llama.cpp's ``llama_model_quantize``."""

from __future__ import annotations

import os
from pathlib import Path

from .._files import atomic_path, output_problem
from ..errors import QuantizationError
from ..heads import copy_heads, heads_path
from .outtype import choose_outtype

__all__ = ["QUANT_TYPES", "quantize"]

# Name → llama_ftype (llama.h). These are the types that make sense for embedding models.
QUANT_TYPES: dict[str, int] = {
    "f32": 0,
    "f16": 1,
    "bf16": 32,
    "q8_0": 7,
    "q6_k": 18,
    "q5_k_m": 17,
    "q5_0": 8,
    "q5_1": 9,
    "q4_k_m": 15,
    "q4_0": 2,
    "q4_1": 3,
    "q3_k_m": 12,
    "q2_k": 10,
}


def quantize(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    qtype: str,
    *,
    n_threads: int = 0,
) -> Path:
    """Write a quantised copy of a GGUF model; return the output path.

    ``qtype`` is one of ``QUANT_TYPES`` or ``auto``: the type this CPU runs fastest at full
    quality (``conversion.choose_outtype``).

    The output appears only when complete (written under a temporary name, then renamed).
    A heads file beside the source (bge-m3's sparse and ColBERT heads) is copied beside
    the output.
    """
    choice = choose_outtype(qtype)
    key = choice.type
    if key not in QUANT_TYPES:
        raise QuantizationError(
            f"unknown quantisation type {qtype!r}; valid types: {', '.join(QUANT_TYPES)}, auto"
        )
    from ..engine import _native
    from ..engine.gguf_check import check

    try:
        src = _native.check_gguf_file(source)
        check(src)  # llama_model_quantize would assert on what this refuses
    except Exception as exc:
        raise QuantizationError(str(exc)) from exc
    target = Path(output).expanduser()
    problem = output_problem(target)
    if problem:
        raise QuantizationError(problem)
    if target.resolve() == src.resolve():
        raise QuantizationError("the output must differ from the input")
    try:
        with atomic_path(target) as tmp:
            _native.quantize_file(src, tmp, QUANT_TYPES[key], n_threads)
        # bge-m3's heads stay float32 beside the quantised file (see llamaembed.heads).
        if not copy_heads(src, target):
            heads_path(target).unlink(missing_ok=True)
    except OSError as exc:
        raise QuantizationError(f"cannot write {target}: {exc}") from exc
    return target
