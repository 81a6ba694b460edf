"""An index folder's manifest: what it holds, which generation is current, checksums.

``save`` writes a new generation folder, fsyncs it, then replaces ``manifest.json``
atomically; only then are generations before the previous one removed (a reader still
loading the previous one finishes; one that finds its files gone reads the manifest
again). ``read_manifest`` checks the format version and every file's checksum before
anything is trusted.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from .._files import atomic_path, fsync_dir, sha256_file
from ..errors import IndexModelMismatchError, SearchIndexError

__all__ = [
    "FORMAT_VERSION",
    "MANIFEST",
    "check_model",
    "commit_generation",
    "generation_number",
    "new_generation",
    "read_manifest",
    "recorded_model",
    "recorded_progress",
]

FORMAT_VERSION = 1
MANIFEST = "manifest.json"


def generation_number(root: Path) -> int:
    """Return the generation the folder's manifest names (0 when there is none)."""
    try:
        name = json.loads((root / MANIFEST).read_text())["generation"]
        return int(name.split("-")[1])
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return 0


def new_generation(root: Path, generation: int) -> Path:
    """Return an empty folder for a generation's files (an unfinished one is replaced)."""
    data = root / f"gen-{generation:06d}"
    if data.exists():
        shutil.rmtree(data)
    data.mkdir()
    return data


def commit_generation(root: Path, data: Path, manifest: dict[str, Any]) -> None:
    """Fsync a generation's files, point the manifest at them, remove older generations.

    The generation the manifest named until now is kept (a reader that read the old
    manifest a moment ago is still loading it); the ones before it are removed.
    """
    previous = generation_number(root)
    for file in data.iterdir():
        with file.open("rb+") as handle:
            os.fsync(handle.fileno())
    fsync_dir(data)
    manifest = {
        "format_version": FORMAT_VERSION,
        "generation": data.name,
        **manifest,
        "checksums": {f.name: sha256_file(f) for f in sorted(data.iterdir())},
    }
    with atomic_path(root / MANIFEST) as tmp:
        tmp.write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    keep = {data.name, f"gen-{previous:06d}"}
    for old in root.glob("gen-*"):
        if old.name not in keep and old.is_dir():
            shutil.rmtree(old, ignore_errors=True)


def read_manifest(root: Path) -> tuple[dict[str, Any], Path]:
    """Return the manifest and its generation folder, after checking version and checksums."""
    manifest_file = root / MANIFEST
    if not manifest_file.exists():
        raise SearchIndexError(f"no index at {root} (missing {MANIFEST})")
    try:
        manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
        version = manifest["format_version"]
        data = root / manifest["generation"]
        manifest["hnsw"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SearchIndexError(f"{manifest_file} is unreadable or incomplete: {exc}") from exc
    if version != FORMAT_VERSION:
        raise SearchIndexError(
            f"index format {version} is not supported (expected {FORMAT_VERSION})"
        )
    for name, expected in manifest.get("checksums", {}).items():
        file = data / name
        if not file.exists() or sha256_file(file) != expected:
            raise SearchIndexError(
                f"{file} is missing, truncated or modified (checksum mismatch); "
                "restore the folder from a backup or rebuild the index"
            )
    return manifest, data


def recorded_model(root: Path) -> dict[str, Any] | None:
    """Return the model record an index folder's manifest keeps, or None if it has none.

    Read without the checksums (only the model is wanted, to open the index with it);
    an index without a model record gives ``{}``.
    """
    manifest_file = root / MANIFEST
    if not manifest_file.exists():
        return None
    try:
        manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SearchIndexError(f"{manifest_file} is unreadable: {exc}") from exc
    return dict(manifest.get("model") or {})


def recorded_progress(root: Path) -> dict[str, Any] | None:
    """Return the run progress an index folder's manifest records (None: no index or none).

    Read without the checksums, like ``recorded_model``: a reader choosing which index
    to open needs only this.
    """
    try:
        manifest = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    progress = manifest.get("progress") if isinstance(manifest, dict) else None
    return progress if isinstance(progress, dict) else None


def check_model(manifest: dict[str, Any], fingerprint: str | None, root: Path) -> None:
    """Raise IndexModelMismatchError when the index was built by another model."""
    recorded = manifest.get("model", {}).get("fingerprint")
    if fingerprint is not None and recorded and fingerprint != recorded:
        raise IndexModelMismatchError(
            f"the index at {root} was built with another model "
            f"({manifest['model'].get('path', recorded)}); open it with that model or "
            "rebuild the index"
        )
