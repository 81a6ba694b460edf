"""How far an index run has got: recorded at each commit, and shown while it runs.

:class:`BuildProgress` is what a run commits in the index's manifest with every generation
(files done of files chosen, passages added, complete or not), so a search of an index
still being built, or left half-built by a stopped run, can say how much of the tree it
covers. :class:`ProgressDisplay` shows a run's progress on stderr: a bar with rate and ETA
on a terminal (tqdm), one line at an interval (a minute by default) on a pipe or a log.
Nothing here touches the model or the store.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from typing import Any, TextIO

__all__ = ["BuildProgress", "ProgressDisplay", "RunCounts"]


@dataclass(frozen=True)
class BuildProgress:
    """What a commit of an index run covers: ``files_done`` of ``files_total`` chosen files.

    ``passages``: passages the run has added so far; ``complete``: the run finished (every
    chosen file is in the index, removed files are gone).
    """

    files_done: int
    files_total: int
    passages: int = 0
    complete: bool = False

    @property
    def fraction(self) -> float:
        """Return the share of the chosen files the index holds (1.0 when complete)."""
        if self.complete or self.files_total == 0:
            return 1.0
        return min(1.0, self.files_done / self.files_total)

    def describe(self) -> str:
        """Return a sentence for a reader of a partial index (empty when complete)."""
        if self.complete:
            return ""
        return (
            f"the index is incomplete: {self.files_done:,} of {self.files_total:,} files "
            f"indexed ({math.floor(self.fraction * 100)}%); `llamaembed index` finishes it"
        )

    def to_dict(self) -> dict[str, Any]:
        """Return the manifest's record of it."""
        return {
            "files_done": self.files_done,
            "files_total": self.files_total,
            "passages": self.passages,
            "complete": self.complete,
        }

    @classmethod
    def from_dict(cls, record: Any) -> BuildProgress | None:
        """Return the progress a manifest records, or None for none (or one unreadable)."""
        if not isinstance(record, dict):
            return None
        try:
            return cls(
                int(record["files_done"]),
                int(record["files_total"]),
                int(record.get("passages", 0)),
                bool(record["complete"]),
            )
        except (KeyError, TypeError, ValueError):
            return None


@dataclass
class RunCounts:
    """A run's running totals, kept by the ingest loop and read by the display."""

    files_total: int
    bytes_total: int
    files_done: int = 0  # indexed (and added), unchanged or skipped
    bytes_done: int = 0
    bytes_embedded: int = 0  # of files the model read (the rate's base)
    passages: int = 0

    def snapshot(self, complete: bool = False) -> BuildProgress:
        """Return the progress to record with a commit."""
        return BuildProgress(self.files_done, self.files_total, self.passages, complete)


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class ProgressDisplay:
    """Shows a run's :class:`RunCounts` on a stream: a bar on a terminal, else lines.

    On a terminal (``stream.isatty()``, or ``bar=True``) a tqdm bar over the bytes to read
    shows files and passages done, passages a second and the time left; elsewhere one line
    every ``interval`` seconds (and none for a run shorter than that).
    """

    def __init__(
        self,
        counts: RunCounts,
        *,
        stream: TextIO | None = None,
        interval: float = 60.0,
        bar: bool | None = None,
    ) -> None:
        self.counts = counts
        self.stream = stream if stream is not None else sys.stderr
        self.interval = interval
        self.started = time.monotonic()
        self._last_line = self.started
        self._bar: Any = None
        if bar if bar is not None else self.stream.isatty():
            from tqdm.auto import tqdm

            self._bar = tqdm(
                total=max(1, counts.bytes_total),
                file=self.stream,
                desc="indexing",
                bar_format="{desc} {percentage:3.0f}%|{bar}| {postfix} [{elapsed}<{remaining}]",
                dynamic_ncols=True,
                mininterval=0.5,
            )

    def rate(self) -> float:
        """Return passages embedded a second since the run started."""
        elapsed = time.monotonic() - self.started
        return self.counts.passages / elapsed if elapsed > 0 else 0.0

    def remaining(self) -> float | None:
        """Return the seconds left, from the bytes the model read so far (None: unknown)."""
        elapsed = time.monotonic() - self.started
        counts = self.counts
        if counts.bytes_embedded <= 0 or elapsed <= 0:
            return None
        left = max(0, counts.bytes_total - counts.bytes_done)
        return left / (counts.bytes_embedded / elapsed)

    def status(self) -> str:
        """Return the run's progress in one line."""
        counts = self.counts
        share = counts.bytes_done / counts.bytes_total if counts.bytes_total else 1.0
        line = (
            f"indexing: {counts.files_done:,}/{counts.files_total:,} files "
            f"({math.floor(share * 100)}%), {counts.passages:,} passages, "
            f"{self.rate():.1f} passages/s"
        )
        left = self.remaining()
        return line + (f", about {_clock(left)} left" if left is not None else "")

    def update(self) -> None:
        """Show the counts now (a bar moves at once; a line waits for its interval)."""
        counts = self.counts
        if self._bar is not None:
            self._bar.set_postfix_str(
                f"{counts.files_done:,}/{counts.files_total:,} files, "
                f"{counts.passages:,} passages, {self.rate():.1f} passages/s",
                refresh=False,
            )
            self._bar.update(max(0, counts.bytes_done - self._bar.n))
            return
        now = time.monotonic()
        if now - self._last_line >= self.interval:
            self._last_line = now
            print(self.status(), file=self.stream, flush=True)

    def close(self) -> None:
        """End the bar (lines need no ending)."""
        if self._bar is not None:
            self.update()
            self._bar.close()
            self._bar = None
