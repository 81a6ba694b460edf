"""The static-model folder format (Model2Vec's), read and written in this one module.

A folder holds ``config.json``, ``model.safetensors`` (an ``embeddings`` table, one row per
token, with optional ``weights`` and ``mapping`` for vocabulary-quantised models) and
``tokenizer.json``; sentence-transformers' two layouts of the same files are read too.
``write_folder`` writes Model2Vec's layout plus ``modules.json``, so Model2Vec and
sentence-transformers load what ``distill`` makes.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .._files import atomic_path
from .._types import FloatArray
from ..errors import ModelLoadError

__all__ = [
    "StaticFolder",
    "find_layout",
    "is_static_folder",
    "read_folder",
    "unknown_id",
    "write_folder",
]

# (config, tensors, tokenizer, name of the vector table): Model2Vec's own layout, then
# the two sentence-transformers writes (Model2Vec's loader accepts the same three).
_LAYOUTS = (
    ("config.json", "model.safetensors", "tokenizer.json", "embeddings"),
    (
        "config_sentence_transformers.json",
        "model.safetensors",
        "tokenizer.json",
        "embedding.weight",
    ),
    (
        "config_sentence_transformers.json",
        "0_StaticEmbedding/model.safetensors",
        "0_StaticEmbedding/tokenizer.json",
        "embedding.weight",
    ),
)
_ST = "sentence_transformers.models"  # modules.json names, as Model2Vec writes them


@dataclass(frozen=True)
class StaticFolder:
    """What a static-model folder holds, read and checked."""

    config: dict[str, Any]
    table: FloatArray  # (rows, dim) float32
    weights: npt.NDArray[Any] | None  # per-token scale
    mapping: npt.NDArray[Any] | None  # token id -> row
    tokenizer: Any  # a tokenizers.Tokenizer, padding and truncation off
    tensors_path: Path
    tokenizer_path: Path


def find_layout(folder: Path) -> tuple[Path, Path, Path, str] | None:
    """Return (config, tensors, tokenizer, table name) of a static-model folder, or None."""
    for config, tensors, tokenizer, table in _LAYOUTS:
        paths = (folder / config, folder / tensors, folder / tokenizer)
        if all(p.is_file() for p in paths):
            return paths[0], paths[1], paths[2], table
    return None


def is_static_folder(path: str | os.PathLike[str]) -> bool:
    """Return True when ``path`` is a folder holding a Model2Vec-style static model."""
    folder = Path(path)
    return folder.is_dir() and find_layout(folder) is not None


def read_folder(folder: Path) -> StaticFolder:
    """Return the checked contents of a static-model folder; raise ModelLoadError if unusable."""
    if not folder.is_dir():
        raise ModelLoadError(f"{folder} is not a folder; a static model is a folder")
    layout = find_layout(folder)
    if layout is None:
        raise ModelLoadError(
            f"{folder} is not a static model folder: it needs config.json, "
            "model.safetensors and tokenizer.json (Model2Vec's layout); make one with "
            "`llamaembed distill`"
        )
    config_path, tensors_path, tokenizer_path, table_name = layout
    config = _read_json(config_path)
    tensors = _read_tensors(tensors_path)
    if table_name not in tensors:
        raise ModelLoadError(f"{tensors_path} has no {table_name!r} tensor")
    table = tensors[table_name]
    if table.ndim != 2 or table.shape[0] == 0 or not np.issubdtype(table.dtype, np.number):
        raise ModelLoadError(f"{tensors_path}: {table_name} is not a (tokens, dim) table")
    tokenizer = _read_tokenizer(tokenizer_path)
    n_vocab = tokenizer.get_vocab_size()
    weights, mapping = tensors.get("weights"), tensors.get("mapping")
    if mapping is None and table.shape[0] != n_vocab:
        raise ModelLoadError(f"{folder}: {table.shape[0]} vectors for {n_vocab} tokenizer tokens")
    if mapping is not None and (
        mapping.ndim != 1
        or not np.issubdtype(mapping.dtype, np.integer)
        or len(mapping) != n_vocab
        or int(mapping.max(initial=0)) >= table.shape[0]
        or int(mapping.min(initial=0)) < 0
    ):
        raise ModelLoadError(f"{folder}: the token mapping does not fit the vectors")
    if weights is not None and (weights.ndim != 1 or len(weights) != n_vocab):
        raise ModelLoadError(f"{folder}: {len(weights)} token weights for {n_vocab} tokens")
    return StaticFolder(
        config=config,
        table=np.ascontiguousarray(table, dtype=np.float32),  # float16/int8 files too
        weights=weights,
        mapping=mapping,
        tokenizer=tokenizer,
        tensors_path=tensors_path,
        tokenizer_path=tokenizer_path,
    )


def write_folder(folder: Path, vectors: FloatArray, tokenizer: Any, config: dict[str, Any]) -> Path:
    """Write a static model (Model2Vec's layout, plus modules.json) into ``folder``."""
    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / "tokenizer.json") as tmp:
        tokenizer.save(str(tmp), pretty=False)
    with atomic_path(folder / "model.safetensors") as tmp:
        save_file({"embeddings": np.ascontiguousarray(vectors, dtype=np.float32)}, str(tmp))
    _write_json(folder / "config.json", config)
    modules = [
        {"idx": 0, "name": "0", "path": ".", "type": f"{_ST}.StaticEmbedding"},
        {"idx": 1, "name": "1", "path": "1_Normalize", "type": f"{_ST}.Normalize"},
    ]
    _write_json(folder / "modules.json", modules)
    return folder


def unknown_id(tokenizer: Any) -> int | None:
    """Return the unknown token's id (WordPiece, BPE and WordLevel name it; Unigram numbers it)."""
    token = getattr(tokenizer.model, "unk_token", None)
    if token is not None:
        found = tokenizer.token_to_id(token)
        return None if found is None else int(found)
    unk_id = json.loads(tokenizer.to_str()).get("model", {}).get("unk_id")
    return None if unk_id is None else int(unk_id)


def _write_json(path: Path, data: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"{path} is not readable JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ModelLoadError(f"{path} does not hold a JSON object")
    return data


def _read_tensors(path: Path) -> dict[str, npt.NDArray[Any]]:
    from safetensors.numpy import load_file

    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises its own SafetensorError, OSError, ...
        raise ModelLoadError(f"{path} is not a readable safetensors file: {exc}") from exc


def _read_tokenizer(path: Path) -> Any:
    from tokenizers import Tokenizer

    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as exc:  # tokenizers raises a bare Exception on a bad file
        raise ModelLoadError(f"{path} is not a Hugging Face tokenizer file: {exc}") from exc
    tokenizer.no_padding()
    tokenizer.no_truncation()  # the model truncates per call (``max_length`` or none)
    return tokenizer
