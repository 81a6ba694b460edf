"""Hugging Face → GGUF conversion (torch-free) and GGUF quantisation.

One module per architecture family (``bert``), plus ``quantize``. Modules here may import
``llamaembed.errors``, ``llamaembed.params``, ``llamaembed._files`` and, for quantising,
``llamaembed.engine._native``.
"""

from __future__ import annotations

from .bert import CONVERTER_VERSION, OUTTYPES, SUPPORTED_ARCHITECTURES, convert

__all__ = ["CONVERTER_VERSION", "OUTTYPES", "SUPPORTED_ARCHITECTURES", "convert"]
