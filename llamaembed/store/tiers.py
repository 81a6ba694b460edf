"""An index folder's fast tier: the same tree indexed by a static model, for first answers.

The full model embeds a few dozen passages a second on a laptop's cores, so a large tree
takes minutes; a static model distilled from it (``static/``) embeds the same tree in
seconds, at lower quality. ``llamaembed index`` builds such an index first, in the
folder's ``fast/`` subfolder, when a run has many new files; a search answers from it
while the main index is incomplete, and from the main index once it is whole, when the
fast tier is removed. :func:`answering_folder` is that choice, made from the manifests.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from . import manifest as disk
from .progress import BuildProgress

__all__ = ["FAST_TIER_FILES", "answering_folder", "drop_fast_tier", "fast_folder"]

# New files in one run from which the fast tier is built first: below this the full model
# answers within a few seconds anyway (about 20-45 code passages a second on 2 cores).
FAST_TIER_FILES = 100


def fast_folder(db: Path) -> Path:
    """Return the folder of ``db``'s fast tier."""
    return Path(db) / "fast"


def answering_folder(db: Path, *, use_fast: bool = True) -> tuple[Path, str]:
    """Return the index folder that should answer a search of ``db``, and what to tell.

    The main index when it is complete (or no fast tier exists, or ``use_fast`` is off):
    with a note when it is partial. The fast tier while the main index is missing or
    incomplete and the fast tier is whole, with a note that says so and how far the full
    model has got.
    """
    db = Path(db)
    main = BuildProgress.from_dict(disk.recorded_progress(db))
    fast = fast_folder(db)
    fast_progress = BuildProgress.from_dict(disk.recorded_progress(fast))
    has_main = (db / disk.MANIFEST).exists()
    fast_ready = fast_progress is not None and fast_progress.complete
    if use_fast and fast_ready and (not has_main or (main is not None and not main.complete)):
        done = f"{main.files_done:,} of {main.files_total:,} files" if main else "no files yet"
        return fast, (
            "answering from the fast tier (a static model) while the full model indexes "
            f"the tree ({done} so far)"
        )
    return db, main.describe() if main is not None else ""


def drop_fast_tier(db: Path) -> None:
    """Remove ``db``'s fast tier (the main index is whole)."""
    shutil.rmtree(fast_folder(db), ignore_errors=True)
