"""Several processes at one index folder: real processes, real files, no lost writes.

Two ``llamaembed index`` runs into one ``--db`` at once leave what running them one after
the other leaves; two library processes that loaded the same folder both keep their
documents after saving; a reader loading in a loop while a writer commits always gets a
complete generation; a lock left by a killed writer is taken over at once, and a live one
is named when the wait runs out.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from llamaembed import Index, IndexLockedError, Llama
from llamaembed.store.lock import FolderLock

QUERIES = ["cat mat seven", "blue river bridge", "number 42 report"]
WORDS = "cat mat dog river blue bridge green report seven house tree light".split()


def write_files(folder: Path, tag: str, n: int) -> Path:
    folder.mkdir(parents=True)
    step = 3 if tag == "a" else 5  # the two sets differ in every file: no near-ties
    for i in range(n):
        words = [WORDS[(i * 7 + j * step + i * j) % len(WORDS)] for j in range(12)]
        (folder / f"{tag}-{i}.txt").write_text(f"{tag} file {i}: " + " ".join(words) + f" {i}\n")
    return folder


def index_command(files: Path, db: Path, model: Path) -> list[str]:
    return [sys.executable, "-m", "llamaembed", "index", str(files), "--db", str(db),
            "--model", str(model), "--wait", "120"]


def snapshot(db: Path, model: Llama) -> tuple[int, list[list[str]]]:
    index = Index.load(db, model)
    return len(index), [[h.id.split("/")[-1] for h in index.search(q, 5)] for q in QUERIES]


def test_two_index_runs_at_once_equal_two_in_turn(
    tmp_path: Path, tiny_encoder: Llama, tiny_encoder_path: Path
) -> None:
    first = write_files(tmp_path / "a", "a", 40)
    second = write_files(tmp_path / "b", "b", 40)
    # Both orders in turn: keyword scores tie often and ties follow insertion order, so the
    # folder written at once must equal the one written in the order its commits took.
    in_turn = {}
    for order in ((first, second), (second, first)):
        db = tmp_path / f"in-turn-{order[0].name}"
        for files in order:
            subprocess.run(index_command(files, db, tiny_encoder_path), check=True,
                           capture_output=True)
        in_turn[order[0].name] = snapshot(db, tiny_encoder)
    assert in_turn["a"][0] == in_turn["b"][0] == 80
    for offset in (0.0, 0.4, 1.2):  # the second run starts this long after the first
        db = tmp_path / f"at-once-{offset}"
        one = subprocess.Popen(index_command(first, db, tiny_encoder_path),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        time.sleep(offset)
        two = subprocess.Popen(index_command(second, db, tiny_encoder_path),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        outputs = [p.communicate(timeout=300)[0] for p in (one, two)]
        assert [one.returncode, two.returncode] == [0, 0], outputs
        # the run that committed first found an empty folder: "40 chunks in" its summary
        went_first = "a" if "; 40 chunks in" in outputs[0] else "b"
        assert "; 80 chunks in" in outputs[1 if went_first == "a" else 0], outputs
        assert snapshot(db, tiny_encoder) == in_turn[went_first], (offset, outputs)


SAVER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from llamaembed import Index, Llama

    folder, model, tag, gate = sys.argv[1:5]
    with Llama(model) as llama:
        index = Index.load(folder, llama)
        index.add([f"{tag} note {i}" for i in range(10)], ids=[f"{tag}{i}" for i in range(10)])
        index.delete(["base0"])
        while not Path(gate).exists():  # both have loaded the same generation
            time.sleep(0.01)
        index.save(folder)
        print(len(index))
    """
)


def test_two_library_saves_of_one_folder_keep_both(
    tmp_path: Path, tiny_encoder: Llama, tiny_encoder_path: Path
) -> None:
    folder = tmp_path / "shared"
    base = Index(tiny_encoder)
    base.add([f"base note {i}" for i in range(5)], ids=[f"base{i}" for i in range(5)])
    base.save(folder)
    gate = tmp_path / "go"
    savers = [
        subprocess.Popen([sys.executable, "-c", SAVER, str(folder), str(tiny_encoder_path), tag,
                          str(gate)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for tag in ("x", "y")
    ]
    time.sleep(1.0)
    gate.write_text("go")
    results = [p.communicate(timeout=120) for p in savers]
    assert [p.returncode for p in savers] == [0, 0], results
    merged = Index.load(folder, tiny_encoder)
    ids = {doc_id for doc_id, _ in merged.iter_metadata()}
    assert ids == {f"base{i}" for i in range(1, 5)} | {f"{t}{i}" for t in "xy" for i in range(10)}
    # the one that saved second saw the other's commit and now holds both
    assert sorted(int(out) for out, _ in results) == [14, 24]


WRITER = textwrap.dedent(
    """
    import sys
    from llamaembed import Index, Llama

    folder, model, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with Llama(model) as llama:
        for n in range(rounds):
            index = Index.load_or_create(folder, llama)
            texts = [f"round {n} passage {i}" for i in range(8)]
            index.add(texts, [{"round": n}] * 8, [f"r{n}-{i}" for i in range(8)])
            index.save(folder)
    """
)


def test_readers_see_only_complete_generations_while_a_writer_commits(
    tmp_path: Path, tiny_encoder: Llama, tiny_encoder_path: Path
) -> None:
    folder = tmp_path / "busy"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(folder), str(tiny_encoder_path),
                               "25"], stderr=subprocess.PIPE, text=True)
    loads = 0
    seen = set()
    try:
        while writer.poll() is None or loads == 0:
            if not Index.exists(folder):
                time.sleep(0.01)
                continue
            index = Index.load(folder, tiny_encoder)  # never an I/O error mid-commit
            rounds = {meta["round"] for _, meta in index.iter_metadata()}
            assert len(index) == 8 * len(rounds) and rounds == set(range(len(rounds)))
            assert len(index.search("round passage", 3)) == 3
            seen.add(len(rounds))
            loads += 1
    finally:
        _, errors = writer.communicate(timeout=120)
    assert writer.returncode == 0, errors
    assert loads >= 5 and len(seen) >= 3  # the reader really overlapped the commits


HOLDER = textwrap.dedent(
    """
    import sys, time
    from llamaembed.store.lock import FolderLock

    with FolderLock(sys.argv[1]):
        print("held", flush=True)
        time.sleep(60)
    """
)


def test_a_killed_writers_lock_is_taken_over_and_a_live_one_is_named(tmp_path: Path) -> None:
    folder = tmp_path / "locked"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(IndexLockedError, match=f"pid {holder.pid} on "):
            with FolderLock(folder, wait=0.3):
                pass
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    # wait=0: taken without waiting at all, or IndexLockedError; the OS freed it
    with FolderLock(folder, wait=0):
        with FolderLock(folder, wait=0):  # re-entrant in the holding thread
            pass
