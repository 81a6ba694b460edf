"""``llamaembed index --watch`` as a real process: new, edited, deleted and newly ignored
files reach ``llamaembed search`` within a bounded wait; a burst of saves is one or a few
updates; a search running meanwhile never fails; Ctrl-C and SIGTERM end it cleanly."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from llamaembed import Index, Llama

WAIT = 60.0  # seconds a change may take to reach the index (it takes well under one)


class Watch:
    """A running ``index --watch`` and the lines it wrote to stderr."""

    def __init__(self, folder: Path, db: Path, model: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "llamaembed", "index", str(folder), "--db", str(db),
             "--model", str(model), "--watch", "--debounce", "300"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        self.wait_for(lambda line: line.startswith("watching"))

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, wanted) -> str:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                assert self.process.poll() is None, f"the watch ended: {self.seen}"
                continue
            self.seen.append(line)
            if wanted(line):
                return line
        raise AssertionError(f"no such line within {WAIT} s: {self.seen}")

    def updates(self) -> list[str]:
        return [line for line in self.seen if "paths changed" in line]

    def drain(self, quiet: float = 1.5) -> None:
        """Read lines until none came for ``quiet`` seconds."""
        while True:
            try:
                self.seen.append(self.lines.get(timeout=quiet))
            except queue.Empty:
                return

    def stop(self, sig: int) -> int:
        self.process.send_signal(sig)
        code = self.process.wait(timeout=30)
        self.drain(0.5)
        return code


@pytest.fixture
def watched(tmp_path: Path, tiny_encoder_path: Path) -> Iterator[tuple[Watch, Path, Path]]:
    folder = tmp_path / "notes"
    folder.mkdir()
    subprocess.run(["git", "init", "-q", str(folder)], check=True)
    (folder / "first.md").write_text("# First\n\nalpha bravo charlie\n")
    (folder / ".gitignore").write_text("*.log\n")
    db = tmp_path / "db"
    watch = Watch(folder, db, tiny_encoder_path)
    yield watch, folder, db
    if watch.process.poll() is None:
        watch.process.kill()
        watch.process.wait()


def sources(db: Path, model: Llama) -> set[str]:
    return {Path(m["source"]).name for _, m in Index.load(db, model).iter_metadata()}


def search_files(db: Path, model: Path, query: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-m", "llamaembed", "search", query, "--db", str(db),
         "--model", str(model), "-l", "--json", "-k", "20"],
        capture_output=True, text=True, check=True,
    )
    return [Path(p).name for p in json.loads(done.stdout)]


def wait_until(check) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + WAIT
    while not check():
        assert time.monotonic() < deadline, "the index did not follow the files"
        time.sleep(0.2)


def test_watch_follows_new_edited_deleted_and_ignored_files(
    watched: tuple[Watch, Path, Path], tiny_encoder: Llama, tiny_encoder_path: Path
) -> None:
    watch, folder, db = watched
    assert sources(db, tiny_encoder) == {"first.md"}
    (folder / "second.md").write_text("# Second\n\ndelta echo foxtrot\n")
    (folder / "debug.log").write_text("ignored by .gitignore\n")
    wait_until(lambda: "second.md" in sources(db, tiny_encoder))
    assert "second.md" in search_files(db, tiny_encoder_path, "delta echo")
    assert "debug.log" not in sources(db, tiny_encoder)

    (folder / "second.md").write_text("# Second\n\ngolf hotel india juliett\n")
    wait_until(lambda: any("juliett" in h.text for h in Index.load(db, tiny_encoder)
                           .search("golf hotel", 5, hybrid=False)))
    texts = [h.text for h in Index.load(db, tiny_encoder).search("anything", 10)]
    assert not any("delta echo" in t for t in texts)  # the old passage is gone

    # a folder moved in is one event: its files are read all the same
    moved = folder.parent / "elsewhere"
    (moved / "deep").mkdir(parents=True)
    (moved / "deep" / "third.md").write_text("kilo lima mike\n")
    (moved / "fourth.md").write_text("november oscar papa\n")
    moved.rename(folder / "moved")
    wait_until(lambda: {"third.md", "fourth.md"} <= sources(db, tiny_encoder))

    (folder / "first.md").unlink()
    wait_until(lambda: "first.md" not in sources(db, tiny_encoder))
    assert "first.md" not in search_files(db, tiny_encoder_path, "alpha bravo")

    # a rule change: the newly ignored file's passages go, the summary says so
    (folder / ".gitignore").write_text("*.log\nsecond.md\nmoved/deep/\n")
    wait_until(lambda: "second.md" not in sources(db, tiny_encoder))
    assert "third.md" not in sources(db, tiny_encoder)
    watch.wait_for(lambda line: "2 now excluded" in line)

    assert watch.stop(signal.SIGINT) == 0  # Ctrl-C
    assert watch.seen[-1] == "stopped watching"


def test_a_burst_of_saves_is_a_few_updates_and_searches_meanwhile_never_fail(
    watched: tuple[Watch, Path, Path], tiny_encoder: Llama
) -> None:
    watch, folder, db = watched
    failures: list[BaseException] = []
    searched = 0
    stop = threading.Event()

    def search_in_a_loop() -> None:
        nonlocal searched
        while not stop.is_set():
            try:
                hits = Index.load(db, tiny_encoder).search("note", 5)
                assert hits and all(h.metadata["source"] for h in hits)
                searched += 1
            except BaseException as exc:  # any failure is the finding
                failures.append(exc)
                return

    reader = threading.Thread(target=search_in_a_loop)
    reader.start()
    burst = folder / "burst.md"
    for n in range(50):
        burst.write_text(f"# Burst\n\nnote number {n}\n")
        time.sleep(0.02)
    wait_until(lambda: any("number 49" in h.text for h in Index.load(db, tiny_encoder)
                           .search("note number 49", 5, hybrid=False)))
    watch.drain()
    stop.set()
    reader.join()
    assert not failures, failures
    assert searched > 0
    assert 1 <= len(watch.updates()) <= 4, watch.updates()
    assert watch.stop(signal.SIGTERM) == 0
    assert watch.seen[-1] == "stopped watching"


def test_watch_is_refused_with_a_store(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "llamaembed", "index", str(tmp_path), "--watch", "--store",
         str(tmp_path / "m.db")],
        capture_output=True, text=True, env={**os.environ, "NO_COLOR": "1"},
    )
    assert done.returncode == 2 and "--watch keeps a --db folder" in done.stderr
