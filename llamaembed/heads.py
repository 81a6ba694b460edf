"""bge-m3's output heads, kept in a sidecar file beside the GGUF.

bge-m3 computes lexical weights (``relu(sparse_linear(h_t))``) and ColBERT vectors
(``colbert_linear(h_t)``) from the encoder's token states. llama.cpp counts a model's
tensors and refuses a file with unexpected ones, so the two small linear layers live in
``<model>.heads.safetensors`` next to ``<model>.gguf`` (float32, a few MB), where
``Llama`` finds them. The converter writes the file, the quantiser copies it, and the
catalogue fetches it for published GGUFs. A leaf module: it imports only the errors.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .errors import ModelLoadError

__all__ = [
    "HEADS_SUFFIX",
    "M3Heads",
    "check_heads",
    "copy_heads",
    "heads_path",
    "load_heads",
    "save_heads",
]

HEADS_SUFFIX = ".heads.safetensors"
_FORMAT = "llamaembed-m3-heads/1"
SPARSE = "sparse_linear"
COLBERT = "colbert_linear"


def heads_path(model_path: str | os.PathLike[str]) -> Path:
    """Return where the heads of a GGUF file live: ``model.gguf`` → ``model.heads.safetensors``."""
    path = Path(model_path)
    return path.with_name(path.stem + HEADS_SUFFIX)


@dataclass(frozen=True)
class M3Heads:
    """The heads found for a model; either may be absent (None)."""

    sparse_weight: npt.NDArray[np.float32] | None  # (n_embd,)
    sparse_bias: float
    colbert_weight: npt.NDArray[np.float32] | None  # (colbert_dim, n_embd)
    colbert_bias: npt.NDArray[np.float32] | None  # (colbert_dim,)
    fingerprint: str  # of the heads file's bytes

    @property
    def colbert_dim(self) -> int:
        """Return the width of ColBERT vectors (0 without the head)."""
        return 0 if self.colbert_weight is None else int(self.colbert_weight.shape[0])


def _check_linear(
    name: str, weight: Any, bias: Any, n_embd: int, rows: int | None
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    w = np.asarray(weight, dtype=np.float32)
    b = np.asarray(bias, dtype=np.float32)
    if w.ndim != 2 or w.shape[1] != n_embd or (rows is not None and w.shape[0] != rows):
        want = f"({rows if rows is not None else 'n'}, {n_embd})"
        raise ModelLoadError(f"{name}.weight has shape {w.shape}, expected {want}")
    if b.shape != (w.shape[0],):
        raise ModelLoadError(f"{name}.bias has shape {b.shape}, expected ({w.shape[0]},)")
    if not (np.isfinite(w).all() and np.isfinite(b).all()):
        raise ModelLoadError(f"{name} holds NaN or infinite values")
    return np.ascontiguousarray(w), np.ascontiguousarray(b)


def check_heads(
    n_embd: int, *, sparse: dict[str, Any] | None, colbert: dict[str, Any] | None
) -> dict[str, npt.NDArray[np.float32]]:
    """Return the heads' tensors as the heads file names them, or raise ModelLoadError.

    Shapes are checked against the model width: sparse (1, n_embd), ColBERT (dim, n_embd).
    """
    tensors: dict[str, npt.NDArray[np.float32]] = {}
    for name, state, rows in ((SPARSE, sparse, 1), (COLBERT, colbert, None)):
        if state is None:
            continue
        missing = {"weight", "bias"} - set(state)
        if missing:
            raise ModelLoadError(f"{name} has no {', '.join(sorted(missing))}")
        w, b = _check_linear(name, state["weight"], state["bias"], n_embd, rows)
        tensors[f"{name}.weight"], tensors[f"{name}.bias"] = w, b
    if not tensors:
        raise ModelLoadError("no heads to save")
    return tensors


def save_heads(
    model_path: str | os.PathLike[str],
    n_embd: int,
    *,
    sparse: dict[str, Any] | None,
    colbert: dict[str, Any] | None,
    source: str,
) -> Path:
    """Write the heads (state dicts with ``weight`` and ``bias``) beside a GGUF; return the path.

    The heads are checked first (``check_heads``). The file appears only when complete.
    """
    from safetensors.numpy import save_file

    from ._files import atomic_path

    tensors = check_heads(n_embd, sparse=sparse, colbert=colbert)
    target = heads_path(model_path)
    with atomic_path(target) as tmp:
        save_file(tensors, str(tmp), metadata={"format": _FORMAT, "source": source})
    return target


def copy_heads(source_model: str | os.PathLike[str], target_model: str | os.PathLike[str]) -> bool:
    """Copy a model's heads file beside another GGUF (a quantised copy); True if there was one."""
    source = heads_path(source_model)
    if not source.is_file():
        return False
    from ._files import atomic_path

    with atomic_path(heads_path(target_model)) as tmp:
        shutil.copyfile(source, tmp)
    return True


def load_heads(model_path: str | os.PathLike[str], n_embd: int) -> M3Heads | None:
    """Return the heads beside a GGUF, or None when there is no heads file.

    Raises ModelLoadError for a heads file that is unreadable or does not fit the model.
    """
    path = heads_path(model_path)
    if not path.is_file():
        return None
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="np") as handle:
            meta = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot read the heads file {path}: {exc}") from None
    if meta.get("format") != _FORMAT:
        raise ModelLoadError(f"{path} is not a llamaembed heads file")
    sparse_w: npt.NDArray[np.float32] | None = None
    sparse_b = 0.0
    colbert_w = colbert_b = None
    prefix = f"{path}: "
    try:
        if f"{SPARSE}.weight" in tensors:
            w, b = _check_linear(
                SPARSE, tensors[f"{SPARSE}.weight"], tensors.get(f"{SPARSE}.bias"), n_embd, 1
            )
            sparse_w, sparse_b = w[0], float(b[0])
        if f"{COLBERT}.weight" in tensors:
            colbert_w, colbert_b = _check_linear(
                COLBERT, tensors[f"{COLBERT}.weight"], tensors.get(f"{COLBERT}.bias"), n_embd, None
            )
    except ModelLoadError as exc:
        raise ModelLoadError(prefix + str(exc)) from None
    return M3Heads(
        sparse_weight=sparse_w,
        sparse_bias=sparse_b,
        colbert_weight=colbert_w,
        colbert_bias=colbert_b,
        fingerprint=digest,
    )
