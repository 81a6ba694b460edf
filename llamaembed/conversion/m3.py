"""bge-m3's heads at conversion: read the ``.pt`` files, write the heads file beside the GGUF."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from ..errors import ConversionError, ModelLoadError
from ..heads import COLBERT, SPARSE, check_heads, heads_path, save_heads
from .torch_state import load_state_dict

__all__ = ["read_m3_heads", "write_m3_heads"]

HEAD_FILES = {SPARSE: "sparse_linear.pt", COLBERT: "colbert_linear.pt"}


def read_m3_heads(folder: Path, n_embd: int) -> dict[str, dict[str, Any]]:
    """Return the heads a model folder ships (``sparse_linear.pt``, ``colbert_linear.pt``).

    They are checked against the model width here, before any file is written.
    """
    found = {}
    for name, file_name in HEAD_FILES.items():
        path = folder / file_name
        if path.is_file():
            found[name] = load_state_dict(path)
    if found:
        try:
            check_heads(n_embd, sparse=found.get(SPARSE), colbert=found.get(COLBERT))
        except ModelLoadError as exc:
            raise ConversionError(f"bge-m3 heads in {folder}: {exc}") from None
    return found


def write_m3_heads(
    model_path: Path, heads: dict[str, dict[str, Any]], n_embd: int, folder: Path
) -> Path | None:
    """Write the heads beside a converted GGUF; without heads, remove a stale heads file."""
    if not heads:
        with contextlib.suppress(FileNotFoundError):
            heads_path(model_path).unlink()
        return None
    try:
        return save_heads(
            model_path,
            n_embd,
            sparse=heads.get(SPARSE),
            colbert=heads.get(COLBERT),
            source=str(folder),
        )
    except OSError as exc:
        raise ConversionError(f"cannot write the heads of {model_path}: {exc}") from None
