"""An index folder kept open by a process that searches and writes it more than once.

``IndexFolder`` holds the folder's last commit loaded and reloads it only when another
writer committed since (the manifest's generation moved), so a long-running writer (the
MCP server, ``index --watch``) neither rereads an unchanged index nor adds to a stale one.
Writers hold ``writing()`` (the folder's lock) around ``current()``, their change and
``commit()``.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..embedder import Embedder
from . import manifest as disk
from .index import Index
from .lock import FolderLock
from .progress import BuildProgress

__all__ = ["IndexFolder"]


class IndexFolder:
    """An index folder and its last commit, loaded once and reloaded when it moves on."""

    def __init__(
        self,
        folder: str | os.PathLike[str],
        embedder: Embedder,
        *,
        wait: float = 600.0,
        dimensions: int | None = None,
        create: bool = True,
    ) -> None:
        self.folder = Path(folder).resolve()
        self.embedder = embedder
        self.wait = wait
        self.dimensions = dimensions  # for a folder that holds no index yet
        self.create = create  # False: a folder without an index is an error (Index.load)
        self._index: Index | None = None
        self._generation = -1

    def writing(self) -> FolderLock:
        """Return the folder's writer lock, to hold around read, change and commit."""
        return FolderLock(self.folder, self.wait)

    def current(self) -> Index:
        """Return the index as last committed (a new one when the folder holds none)."""
        now = disk.generation_number(self.folder)
        if self._index is None or now != self._generation:
            if self.create:
                self._index = Index.load_or_create(
                    self.folder, self.embedder, dimensions=self.dimensions
                )
            else:
                self._index = Index.load(self.folder, self.embedder)
            self._generation = now
        return self._index

    def commit(self, progress: BuildProgress | None = None) -> None:
        """Save the index as the folder's next generation (a newer commit is merged in).

        ``progress``: how far the run writing it has got, recorded with the commit (an
        ingest run's ``checkpoint``).
        """
        index = self._index if self._index is not None else self.current()
        if progress is not None:
            index.progress = progress
        index.save(self.folder, wait=self.wait)
        self._generation = disk.generation_number(self.folder)
