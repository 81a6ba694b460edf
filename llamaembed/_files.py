"""Atomic file output: write beside the target, fsync, rename; never a half-written file."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "atomic_path",
    "cache_root",
    "fsync_dir",
    "output_problem",
    "sample_file",
    "sha256_file",
]


def cache_root() -> Path:
    """Return llamaembed's own cache folder ($LLAMAEMBED_CACHE or the user cache folder)."""
    env = os.environ.get("LLAMAEMBED_CACHE")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("llamaembed"))


def fsync_dir(folder: Path) -> None:
    """Flush a folder's entries (a rename) to disk where the platform allows it."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def output_problem(target: Path) -> str | None:
    """Return why ``target`` cannot be an output file (a folder, no parent), or None."""
    if target.is_dir():
        return f"output {target} is a folder; give a file name"
    if not target.parent.is_dir():
        return f"output folder {target.parent} does not exist"
    return None


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success it replaces ``target``.

    On any exception the temporary file is removed and ``target`` is left as it was.
    Raises OSError when the folder cannot be written.
    """
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with tmp.open("rb+") as handle:
            os.fsync(handle.fileno())
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o666 & ~umask)  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, target)
        fsync_dir(target.parent)
    finally:
        tmp.unlink(missing_ok=True)


def sha256_file(path: Path) -> str:
    """Return the hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sample_file(digest: Any, path: Path) -> None:
    """Feed a file's size and 16 evenly spread 64 KiB samples to ``digest``.

    Cheap on multi-gigabyte files; a model fingerprint, not an integrity check.
    """
    import numpy as np

    size = path.stat().st_size
    digest.update(str(size).encode())
    chunk = 1 << 16
    with path.open("rb") as handle:
        for position in np.linspace(0, max(size - chunk, 0), num=16, dtype=np.int64):
            handle.seek(int(position))
            digest.update(handle.read(chunk))
