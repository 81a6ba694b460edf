"""A Hugging Face model folder as the converters read it: where it is, its JSON, its weights."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import numpy.typing as npt

from ..errors import ConversionError
from ..heads import HEADS_SUFFIX

__all__ = ["load_tensors", "read_json", "resolve_source"]


def resolve_source(source: str | os.PathLike[str], cache_dir: Path | None = None) -> Path:
    """Return a model's local folder: the path given, or a hub id's (cached or fetched)."""
    path = Path(source).expanduser()
    if path.is_dir():
        return path
    text = os.fspath(source)
    if path.exists():
        raise ConversionError(f"{path} is a file; give the model's folder (with config.json)")
    if re.fullmatch(r"[\w.-]+/[\w.-]+", text) and not text.startswith((".", "/")):
        try:
            from huggingface_hub import snapshot_download

            patterns = ["*.json", "*.safetensors", "vocab.txt", "*.model", "1_Pooling/*"]
            try:
                return Path(
                    snapshot_download(
                        text, allow_patterns=patterns, cache_dir=cache_dir, local_files_only=True
                    )
                )
            except Exception:
                return Path(snapshot_download(text, allow_patterns=patterns, cache_dir=cache_dir))
        except Exception as exc:
            raise ConversionError(
                f"model folder {text!r} not found locally and could not be downloaded from "
                f"the Hugging Face hub: {exc}"
            ) from exc
    raise ConversionError(f"model folder not found: {path}")


def read_json(path: Path) -> dict[str, Any]:
    """Return a JSON object read from a file, or raise ConversionError."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConversionError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConversionError(f"{path} does not hold a JSON object")
    return data


def load_tensors(folder: Path) -> dict[str, npt.NDArray[Any]]:
    """Return every tensor of the folder's safetensors files (PyTorch pickles are refused).

    A heads file we wrote beside a GGUF converted into the folder is not weights.
    """
    files = sorted(f for f in folder.glob("*.safetensors") if not f.name.endswith(HEADS_SUFFIX))
    if not files:
        if any(folder.glob("*.bin")) or any(folder.glob("*.pt")):
            raise ConversionError(
                f"{folder} has only PyTorch pickle weights; llamaembed reads safetensors "
                "only (no torch). Save the model with safe_serialization=True."
            )
        raise ConversionError(f"no model weights (*.safetensors) in {folder}")
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    tensors: dict[str, npt.NDArray[Any]] = {}
    for file in files:
        try:
            tensors.update(load_file(file))
        except (SafetensorError, OSError, ValueError, TypeError) as exc:
            raise ConversionError(f"cannot read weights from {file}: {exc}") from exc
    return tensors
