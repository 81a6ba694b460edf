"""Static catalogue models: the Model2Vec folder an entry of kind ``static`` stands for.

Two sources. A repository entry (the potion-* models) is a Hugging Face snapshot: looked
for in the hub cache with no network first, downloaded only where allowed. A distilled
entry (``source = "distill:NAME"``) is built here on first use from its teacher's GGUF
with ``llamaembed.static.distill`` and kept in llamaembed's cache under the distiller's
version, so a changed recipe builds a new folder instead of reusing a stale one.

The registry decides what is allowed and hands over the teacher; this module only finds,
fetches and builds folders.
"""

from __future__ import annotations

import importlib
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from .._files import cache_root, fsync_dir
from ..errors import ModelNotCachedError, RegistryError
from ..static.folder import is_static_folder
from .entry import ModelEntry

__all__ = [
    "build_distilled",
    "cached_snapshot",
    "distilled_folder",
    "download_snapshot",
    "not_cached_error",
]

# The distiller is named, not imported: it runs the engine, whose models describe
# themselves with hub.spec, which resolves catalogue names through here; an import would
# close that loop (hub.spec names the classes that open models for the same reason).
_DISTILLER = "llamaembed.static.distill"
# What a snapshot needs of a repository: Model2Vec's files (config, tensors, tokenizer, in
# either layout), not the ONNX exports and READMEs beside them.
_SNAPSHOT_PATTERNS = ["*.json", "*.safetensors"]


def _distiller() -> Any:
    return importlib.import_module(_DISTILLER)


def distilled_folder(entry: ModelEntry) -> Path:
    """Return where a distilled entry's folder lives (built or not), keyed by the recipe."""
    version = _distiller().DISTILLER_VERSION
    return cache_root() / "built" / f"{entry.name}-distiller-v{version}"


def build_distilled(entry: ModelEntry, teacher: Callable[[], AbstractContextManager[Path]]) -> Path:
    """Return the entry's distilled folder, distilling it first if it is not built yet.

    ``teacher()`` gives the teacher GGUF for the time of the distillation. The folder is
    written beside its final place and renamed into it, so a reader never sees half a
    model; when two processes build at once, the first rename wins and the other's copy
    is dropped.
    """
    folder = distilled_folder(entry)
    if is_static_folder(folder):
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    print(
        f"llamaembed: building {entry.name} (static, {entry.dimension} dimensions) by "
        f"distilling {entry.distilled_from} into {folder} (first use only)…",
        file=sys.stderr,
    )
    work = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        with teacher() as gguf:
            _distiller().distill(
                gguf, work, dims=entry.dimension, show_progress=sys.stderr.isatty()
            )
        umask = os.umask(0)
        os.umask(umask)
        work.chmod(0o777 & ~umask)  # mkdtemp makes 0700; give the usual permissions
        if folder.exists() and not is_static_folder(folder):
            shutil.rmtree(folder)  # a broken leftover: only a finished rename writes here
        try:
            os.rename(work, folder)
        except OSError:
            if not is_static_folder(folder):  # not another process's finished copy
                raise
        fsync_dir(folder.parent)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return folder


def cached_snapshot(entry: ModelEntry, hub_cache: Path | None) -> Path | None:
    """Return the entry's snapshot folder in the hub cache, or None; no network."""
    from huggingface_hub import snapshot_download

    try:
        path = snapshot_download(
            entry.repo,
            revision=entry.revision,
            cache_dir=hub_cache,
            allow_patterns=_SNAPSHOT_PATTERNS,
            local_files_only=True,
        )
    except (OSError, ValueError):  # not cached, or cached incompletely
        return None
    return Path(path) if is_static_folder(path) else None


def download_snapshot(entry: ModelEntry, hub_cache: Path | None) -> Path:
    """Download the entry's Model2Vec files into the hub cache; return the snapshot folder."""
    from huggingface_hub import snapshot_download

    try:
        path = Path(
            snapshot_download(
                entry.repo,
                revision=entry.revision,
                cache_dir=hub_cache,
                allow_patterns=_SNAPSHOT_PATTERNS,
            )
        )
    except Exception as exc:  # huggingface_hub's HTTP, offline and not-found errors
        raise RegistryError(f"cannot download {entry.repo}: {exc}") from exc
    if not is_static_folder(path):
        raise RegistryError(
            f"{entry.repo} holds no Model2Vec model (config.json, model.safetensors and "
            "tokenizer.json); check the catalogue entry's repo"
        )
    return path


def not_cached_error(entry: ModelEntry) -> ModelNotCachedError:
    """Return the error for a repository entry that is not cached while downloads are off."""
    return ModelNotCachedError(
        f"{entry.name} ({entry.repo}) is not cached and downloads are off; run "
        f"`llamaembed models pull {entry.name}` with network access"
    )
