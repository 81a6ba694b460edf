"""Text normalisation that llama.cpp's WordPiece tokenizer gets subtly wrong."""

from __future__ import annotations

import unicodedata

__all__ = ["strip_accents"]


def strip_accents(text: str) -> str:
    """Return text in NFD with non-spacing marks (category Mn) removed, as HF's BertNormalizer.

    llama.cpp's own accent stripping also drops spacing vowel signs (Devanagari, Thai…)
    and decomposed Hangul vowels, losing letters; doing it here keeps them.
    """
    if text.isascii():
        return text
    return "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")
