"""Keep a folder index in step with the files it was built from (``llamaembed index --watch``).

:class:`IndexWatcher` waits for file-system events (``watchfiles``, uvicorn's own watcher:
inotify, FSEvents or ReadDirectoryChangesW underneath, so an idle watch costs no CPU),
groups each burst of saves into one update, and applies it under the folder's writer
lock: changed files the rules choose are re-embedded, deleted ones removed, and a change
to an ignore file re-checks every file (passages of files now left out are removed).
Each update reloads the index first if another writer committed since, and commits a new
generation, so a concurrent ``search`` sees either the old index or the new one.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..embedder import Embedder
from . import manifest as disk
from .index import Index
from .ingest import IngestReport, ingest_files
from .lock import FolderLock
from .selection import FileRules, FileSelector, is_rules_file

__all__ = ["IndexWatcher", "WatchUpdate"]

# How long the watcher sleeps in the OS's notification call when nothing happens (its
# first wake-up also says it is listening): one cheap wake-up a few seconds idle.
_WAKE_MS = 2_000


@dataclass(frozen=True)
class WatchUpdate:
    """One update: the paths the burst touched and what the ingest did."""

    changed_paths: int
    report: IngestReport
    passages: int


class IndexWatcher:
    """An index folder kept in step with files and folders (``paths``) under ``rules``."""

    def __init__(
        self,
        folder: str | os.PathLike[str],
        embedder: Embedder,
        paths: Sequence[str | os.PathLike[str]],
        rules: FileRules | None = None,
        *,
        wait: float = 600.0,
        ingest_options: dict[str, Any] | None = None,
    ) -> None:
        self.folder = Path(folder).resolve()
        self.embedder = embedder
        self.paths = [Path(p).resolve() for p in paths]
        self.rules = rules or FileRules()
        self.wait = wait
        self.options = dict(ingest_options or {})
        self._selectors = self._make_selectors()
        self.index: Index | None = None
        self._generation = -1

    def _make_selectors(self) -> list[FileSelector]:
        return [FileSelector(p, self.rules, skip=[self.folder]) for p in self.paths if p.is_dir()]

    def _chosen(self, path: Path) -> bool:
        return path in self.paths or any(s.admits(path) for s in self._selectors)

    def _ingest(self, paths: Sequence[Path]) -> tuple[IngestReport, int]:
        """Run one ingest under the writer lock; commit only when something changed."""
        with FolderLock(self.folder, self.wait):
            now = disk.generation_number(self.folder)
            if self.index is None or now != self._generation:
                self.index = Index.load_or_create(self.folder, self.embedder)
            report = ingest_files(
                self.index,
                self.embedder,
                paths,
                rules=self.rules,
                skip=[self.folder],
                **self.options,
            )
            if report.indexed_files or report.removed_files or report.excluded_files or now == 0:
                self.index.save(self.folder, wait=self.wait)
            self._generation = disk.generation_number(self.folder)
            return report, len(self.index)

    def sync(self) -> WatchUpdate:
        """Bring the index in step with every chosen file (the first pass of a watch)."""
        report, total = self._ingest(self.paths)
        return WatchUpdate(len(self.paths), report, total)

    def apply(self, changed: Iterable[str | os.PathLike[str]]) -> WatchUpdate | None:
        """Apply one burst of changed paths; None when none of them concerns the index."""
        paths = {Path(os.path.abspath(p)) for p in changed}
        paths = {p for p in paths if not p.is_relative_to(self.folder)}
        if any(is_rules_file(p) for p in paths):
            self._selectors = self._make_selectors()  # the rules changed: check every file
            return self.sync()
        present = sorted(p for p in paths if p.is_file() and self._chosen(p))
        # a folder moved in is one event: its files are walked (with the rules)
        folders = sorted(
            p for p in paths if p.is_dir() and any(s.walks_into(p) for s in self._selectors)
        )
        gone = [p for p in paths if not p.exists()]
        if not present and not folders and not gone:
            return None
        report, total = self._ingest([*present, *folders])  # prunes files no longer there
        if not (report.indexed_files or report.removed_files or report.excluded_files):
            return None
        return WatchUpdate(len(paths), report, total)

    def run(
        self,
        on_update: Callable[[WatchUpdate], None],
        *,
        quiet_ms: int = 400,
        stop: threading.Event | None = None,
        on_ready: Callable[[], None] | None = None,
    ) -> None:
        """Watch until ``stop`` is set or Ctrl-C; one ``apply`` per burst of changes.

        A burst ends when no event came for ``quiet_ms`` (or after ten times that, for
        files that never stop changing). Once the watcher is listening, one ``sync``
        catches what changed while it started; then ``on_ready`` is called.
        """
        from watchfiles import Change, watch

        watched = [p if p.is_dir() else p.parent for p in self.paths]

        def wanted(_change: Any, path: str) -> bool:
            # the index's own writes, and git's internals but its exclude file
            where = Path(path)
            if where.is_relative_to(self.folder):
                return False
            return ".git" not in where.parts or is_rules_file(where)

        ready = False
        for changes in watch(
            *sorted(set(watched)),
            watch_filter=wanted,
            debounce=max(1600, 10 * quiet_ms),
            step=quiet_ms,
            stop_event=stop,
            raise_interrupt=False,
            rust_timeout=_WAKE_MS,
            yield_on_timeout=True,  # the first yield says the watcher is listening
        ):
            if not ready:
                ready = True
                caught_up = self.sync()
                if caught_up.report.indexed_files or caught_up.report.removed_files:
                    on_update(caught_up)
                if on_ready is not None:
                    on_ready()
            # a folder "modified" is its listing changing: its files' own events say more
            paths = [p for c, p in changes if c != Change.modified or not os.path.isdir(p)]
            update = self.apply(paths) if paths else None
            if update is not None:
                on_update(update)
