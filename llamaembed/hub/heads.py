"""bge-m3's heads for a catalogue GGUF: fetched from the model's own repository.

Published bge-m3 GGUFs hold the encoder only (llama.cpp's converter drops the heads), so
a catalogue entry's ``heads`` table names where ``sparse_linear.pt`` and
``colbert_linear.pt`` come from (BAAI/bge-m3). They are read without torch
(``conversion.torch_state``) and written beside the GGUF as ``llamaembed.heads`` says.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from ..errors import ConversionError, LlamaEmbedError, ModelLoadError
from ..heads import COLBERT, SPARSE, heads_path, save_heads

__all__ = ["HEAD_KEYS", "ensure_heads"]

logger = logging.getLogger(__name__)

HEAD_KEYS = {"repo", "revision", SPARSE, COLBERT}


def ensure_heads(
    name: str,
    heads: Mapping[str, str],
    model_path: Path,
    hub_cache: Path | None,
    *,
    download: bool,
) -> bool:
    """Write a catalogue entry's heads beside its GGUF unless there; return True when they are.

    ``name`` is the entry's name, ``heads`` its ``heads`` table (repo, revision, files).

    With downloads off, only files already in the Hugging Face cache are used; missing
    heads leave the model dense-only, with a warning naming the pull command.
    """
    if not heads or heads_path(model_path).is_file():
        return bool(heads)
    from huggingface_hub import hf_hub_download

    from ..conversion.torch_state import load_state_dict

    local: dict[str, str] = {}
    try:
        for name in (SPARSE, COLBERT):
            filename = heads.get(name)
            if filename:
                local[name] = hf_hub_download(
                    heads["repo"],
                    filename,
                    revision=heads.get("revision"),
                    cache_dir=hub_cache,
                    local_files_only=not download,
                )
    except Exception as exc:  # huggingface_hub: not cached offline, or a failed download
        logger.warning(
            "%s: the sparse and ColBERT heads are not available (%s); dense vectors work. "
            "Run `llamaembed models pull %s` with network access to fetch them",
            name,
            type(exc).__name__,
            name,
        )
        return False
    try:
        states = {name: load_state_dict(path) for name, path in local.items()}
        width = next(iter(states.values()))["weight"].shape[1]
        save_heads(
            model_path,
            int(width),
            sparse=states.get(SPARSE),
            colbert=states.get(COLBERT),
            source=f"hf://{heads['repo']}",
        )
    except (ConversionError, ModelLoadError, OSError, KeyError, StopIteration) as exc:
        raise LlamaEmbedError(f"{name}: its heads in {heads['repo']}: {exc}") from exc
    return True
