"""``auto`` as an output type: the type this CPU runs fastest at full quality."""

from __future__ import annotations

from ..engine.hardware import WeightChoice

__all__ = ["choose_outtype"]


def choose_outtype(outtype: str) -> WeightChoice:
    """Return the type ``outtype`` names; for ``auto``, this CPU's fastest full-quality type.

    ``auto`` follows the same rule as the catalogue (``engine.hardware.choose_weight_type``):
    BF16 with AVX512_BF16, Q8_0 where llama.cpp's AMX kernels work, F32 on an AMX CPU
    where they do not, F16 otherwise.
    """
    key = str(outtype).strip().lower()
    if key != "auto":
        return WeightChoice(key, "asked for")
    from ..engine.system import auto_weight_type

    return auto_weight_type()
