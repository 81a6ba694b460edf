"""One writer at a time per index folder: an OS lock that a dead process leaves free.

``FolderLock(root, wait)`` holds ``fcntl.flock`` on ``root/.lock`` for a ``with`` block.
Another process waits for it up to ``wait`` seconds, then gets ``IndexLockedError`` naming
the holder (its pid, host and since when, which the holder writes into the lock file).
The OS drops the lock when its process ends, however it ends, so a lock left by a killed
writer is taken over at once. Within one process the lock is re-entrant for the thread
that holds it (the CLI holds it across a whole run, and ``Index.save`` takes it again);
other threads of the process wait as other processes do.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import json
import os
import socket
import threading
import time
from pathlib import Path
from types import TracebackType

from ..errors import IndexLockedError

__all__ = ["LOCK_FILE", "FolderLock"]

LOCK_FILE = ".lock"

_GUARD = threading.Lock()
_THREAD_LOCKS: dict[str, threading.RLock] = {}
_HELD: dict[str, tuple[int, int]] = {}  # folder -> (file descriptor, depth) in this process


class FolderLock:
    """The writer's lock of an index folder (created if missing), held for a ``with`` block."""

    def __init__(self, root: str | os.PathLike[str], wait: float = 60.0) -> None:
        if wait < 0:
            raise ValueError(f"wait must be >= 0 seconds, got {wait}")
        self.root = Path(root)
        self.wait = wait

    def __enter__(self) -> FolderLock:
        self.root.mkdir(parents=True, exist_ok=True)
        key = str(self.root.resolve())
        deadline = time.monotonic() + self.wait
        with _GUARD:
            thread_lock = _THREAD_LOCKS.setdefault(key, threading.RLock())
        if not thread_lock.acquire(timeout=self.wait if self.wait > 0 else 0.001):
            raise self._locked("another thread of this process")
        try:
            with _GUARD:
                held = _HELD.get(key)
                if held is not None:
                    _HELD[key] = (held[0], held[1] + 1)
                    return self
            fd = os.open(self.root / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                while True:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except OSError as exc:
                        if exc.errno not in (errno.EAGAIN, errno.EACCES):
                            raise
                    if time.monotonic() >= deadline:
                        raise self._locked(_holder(fd))
                    time.sleep(0.05)
                os.ftruncate(fd, 0)
                os.pwrite(fd, json.dumps(_me()).encode(), 0)
            except BaseException:
                os.close(fd)
                raise
            with _GUARD:
                _HELD[key] = (fd, 1)
            return self
        except BaseException:
            thread_lock.release()
            raise

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        key = str(self.root.resolve())
        with _GUARD:
            fd, depth = _HELD[key]
            if depth > 1:
                _HELD[key] = (fd, depth - 1)
            else:
                del _HELD[key]
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, 0)
                os.close(fd)  # closing the descriptor releases the flock
            thread_lock = _THREAD_LOCKS[key]
        thread_lock.release()

    def _locked(self, holder: str) -> IndexLockedError:
        return IndexLockedError(
            f"{self.root} is being written by {holder}; waited {self.wait:g} s. Wait longer "
            "(--wait SECONDS, or save(..., wait=)) or stop that writer"
        )


def _me() -> dict[str, object]:
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    return {"pid": os.getpid(), "host": socket.gethostname(), "since": now}


def _holder(fd: int) -> str:
    """Return who holds the lock, as the holder wrote it into the lock file."""
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return f"pid {info['pid']} on {info['host']} since {info['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"
