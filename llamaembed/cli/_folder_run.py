"""``llamaembed index`` of text files into a --db folder: the long run, done safely.

``index_folder`` runs the ingest with a commit every ``commit_every`` seconds (each with
how far it got), a fast tier first when many files are new (``store.tiers``), progress on
stderr, and SIGTERM / Ctrl-C turned into a stop at the next group of passages followed
by a last commit; a complete run removes the fast tier.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ._common import open_model

if TYPE_CHECKING:
    from ..embedder import Embedder
    from ..store.folder import IndexFolder
    from ..store.ingest import IngestReport
    from ..store.progress import BuildProgress
    from ..store.selection import FileRules

__all__ = ["RunSettings", "index_folder", "stop_on_signals"]


@dataclass(frozen=True)
class RunSettings:
    """How a run reads the tree and how often it commits and reports."""

    rules: FileRules
    options: dict[str, Any]  # max_tokens, overlap
    wait: float
    fast_tier: bool = True
    commit_every: float = 60.0
    progress_interval: float = 60.0


def index_folder(
    target: IndexFolder,
    llama: Embedder,
    model: str | None,
    paths: tuple[str, ...],
    settings: RunSettings,
) -> IngestReport:
    """Index ``paths`` into the folder as one writer; return what the run did.

    ``model`` is the name the user gave (None: the default), to find its static companion.
    """
    from ..store.ingest import ingest_files
    from ..store.tiers import drop_fast_tier

    folder = target.folder
    dimensions = target.dimensions
    with target.writing():  # read, add and commit as one writer
        index = target.current()
        if dimensions is not None and index.dimensions != dimensions:
            raise click.ClickException(
                f"{folder} holds {index.dim}-d vectors; --dimensions {dimensions} needs a new --db"
            )
        with stop_on_signals() as stop:
            if settings.fast_tier and llama.spec.kind != "static":
                fast_tier_first(folder, index, target.commit, model, paths, settings, stop)
            report = ingest_files(
                index,
                llama,
                paths,
                rules=settings.rules,
                skip=[folder],
                show_progress=True,
                checkpoint=target.commit,
                checkpoint_every=settings.commit_every,
                stop=stop,
                progress_interval=settings.progress_interval,
                **settings.options,
            )
    if report.complete:
        drop_fast_tier(folder)  # the full index answers from now on
    return report


def fast_tier_first(
    folder: Path,
    index: Any,
    commit_main: Callable[[BuildProgress], None],
    model: str | None,
    paths: tuple[str, ...],
    settings: RunSettings,
    stop: threading.Event,
) -> None:
    """Index the tree with the model's static companion first, when many files are new.

    A catalogue model with no static companion (or a model given by path) has no fast
    tier; nor has a run with few new files (``store.tiers.FAST_TIER_FILES``). A main
    index not yet in the folder is committed empty (0 files done), so the folder records
    its model and readers see the run has begun.
    """
    from ..errors import RegistryError
    from ..hub.registry import fast_companion
    from ..store.folder import IndexFolder
    from ..store.ingest import indexed_files, ingest_files
    from ..store.manifest import MANIFEST
    from ..store.progress import BuildProgress
    from ..store.selection import select_files
    from ..store.tiers import FAST_TIER_FILES, fast_folder

    chosen = {str(f) for f in select_files(paths, settings.rules, [folder])}
    if len(chosen - set(indexed_files(index))) < FAST_TIER_FILES:
        return
    try:
        name = fast_companion(model)
    except RegistryError:
        return
    with open_model(name, None) as static:
        target = IndexFolder(fast_folder(folder), static, wait=settings.wait)
        with target.writing():
            report = ingest_files(
                target.current(),
                static,
                paths,
                rules=settings.rules,
                skip=[folder],
                checkpoint=target.commit,
                checkpoint_every=float("inf"),
                stop=stop,
                **settings.options,
            )
    if not (folder / MANIFEST).exists():
        commit_main(BuildProgress(0, len(chosen)))
    if report.complete:
        click.echo(
            f"fast tier ({name}): {report.files_total} files searchable now; "
            "the full model follows",
            err=True,
        )


@contextlib.contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """Yield an event that SIGTERM and a first Ctrl-C set (a second Ctrl-C interrupts).

    The run ends at its next group of passages and commits what it has done.
    """
    import signal

    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop  # signals reach the main thread only
        return

    def on_signal(number: int, frame: object) -> None:
        if number == signal.SIGINT and stop.is_set():
            raise KeyboardInterrupt
        if not stop.is_set():
            click.echo("stopping at the next commit point…", err=True)
        stop.set()

    before = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for number, handler in before.items():
            signal.signal(number, handler)
