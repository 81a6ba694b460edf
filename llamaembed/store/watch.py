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
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .folder import IndexFolder
from .index import Index
from .ingest import IngestReport, ingest_files
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
        target: IndexFolder,
        paths: Sequence[str | os.PathLike[str]],
        rules: FileRules | None = None,
        *,
        ingest_options: dict[str, Any] | None = None,
    ) -> None:
        self.target = target
        self.paths = [Path(p).resolve() for p in paths]
        self.rules = rules or FileRules()
        self.options = dict(ingest_options or {})
        self._selectors = self._make_selectors()

    def _make_selectors(self) -> list[FileSelector]:
        skip = [self.target.folder]
        return [FileSelector(p, self.rules, skip=skip) for p in self.paths if p.is_dir()]

    def _chosen(self, path: Path) -> bool:
        return path in self.paths or any(s.admits(path) for s in self._selectors)

    def _ingest(self, paths: Sequence[Path]) -> WatchUpdate:
        """Run one ingest under the writer lock; commit only when something changed."""
        with self.target.writing():
            index = self.target.current()
            report = ingest_files(
                index,
                self.target.embedder,
                paths,
                rules=self.rules,
                skip=[self.target.folder],
                **self.options,
            )
            if report.changed or not Index.exists(self.target.folder):
                self.target.commit()
            return WatchUpdate(len(paths), report, len(index))

    def sync(self) -> WatchUpdate:
        """Bring the index in step with every chosen file (the first pass of a watch)."""
        return self._ingest(self.paths)

    def apply(self, changed: Iterable[str | os.PathLike[str]]) -> WatchUpdate | None:
        """Apply one burst of changed paths; None when none of them concerns the index."""
        paths = {Path(os.path.abspath(p)) for p in changed}
        paths = {p for p in paths if not p.is_relative_to(self.target.folder)}
        if any(is_rules_file(p) for p in paths):
            self._selectors = self._make_selectors()  # the rules changed: check every file
            return replace(self.sync(), changed_paths=len(paths))
        present = sorted(p for p in paths if p.is_file() and self._chosen(p))
        # a folder moved in is one event: its files are walked (with the rules)
        folders = sorted(
            p for p in paths if p.is_dir() and any(s.walks_into(p) for s in self._selectors)
        )
        gone = [p for p in paths if not p.exists()]
        if not present and not folders and not gone:
            return None
        update = self._ingest([*present, *folders])  # prunes files no longer there
        return replace(update, changed_paths=len(paths)) if update.report.changed else None

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
            if where.is_relative_to(self.target.folder):
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
                if caught_up.report.changed:
                    on_update(caught_up)
                if on_ready is not None:
                    on_ready()
            # a folder "modified" is its listing changing: its files' own events say more
            paths = [p for c, p in changes if c != Change.modified or not os.path.isdir(p)]
            update = self.apply(paths) if paths else None
            if update is not None:
                on_update(update)
