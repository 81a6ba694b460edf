"""Long ``index`` runs: commits as they go, resume after a kill or a stop, say how far they
got to a search (CLI and MCP), and show progress on a terminal and on a pipe."""

from __future__ import annotations

import fcntl
import io
import json
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from llamaembed import Index, Llama
from llamaembed.cli import main
from llamaembed.store.folder import IndexFolder
from llamaembed.store.ingest import ingest_files
from llamaembed.store.progress import BuildProgress, ProgressDisplay, RunCounts

WAIT = 120.0  # seconds a subprocess may take to reach a state (it takes a few)

NOUNS = ("harbor", "glacier", "orchard", "lantern", "quarry", "meadow", "violin", "canyon")


def make_tree(root: Path, files: int, functions: int = 3) -> Path:
    """Write ``files`` small Python modules, each with distinct functions and docstrings."""
    root.mkdir(parents=True, exist_ok=True)
    for n in range(files):
        noun = NOUNS[n % len(NOUNS)]
        body = [f'"""Tools for the {noun} number {n}."""\n']
        for f in range(functions):
            body.append(
                f"def measure_{noun}_{n}_{f}(depth, width):\n"
                f'    """Return how much water the {noun} {n} holds at level {f}."""\n'
                f"    total = depth * width + {n * 7 + f}\n"
                f"    for step in range({f + 2}):\n"
                f"        total += step * {n + 1}\n"
                f"    return total\n"
            )
        (root / f"{noun}_{n:03d}.py").write_text("\n\n".join(body))
    return root


def contents(index: Index) -> dict[str, tuple[str, str, np.ndarray]]:
    """Return id -> (text, metadata as stored, vector) of every passage."""
    labels = index.table.labels()
    rows = index.table.rows(list(labels))
    vectors = index.graph.vectors(list(labels))
    return {
        rows[int(label)][0]: (rows[int(label)][1], rows[int(label)][2], vector)
        for label, vector in zip(labels, vectors, strict=True)
    }


def assert_same_index(ours: Index, clean: Index) -> None:
    mine, theirs = contents(ours), contents(clean)
    assert sorted(mine) == sorted(theirs)
    for doc_id, (text, meta, vector) in theirs.items():
        assert mine[doc_id][0] == text and mine[doc_id][1] == meta
        np.testing.assert_allclose(mine[doc_id][2], vector, atol=1e-6)


class Counting(Llama):
    """The real model, counting the passages it is asked to embed."""

    embedded = 0

    def embed_documents(self, texts: Any, **options: Any) -> Any:
        self.embedded += len(texts)
        return super().embed_documents(texts, **options)


def folder_run(
    llama: Llama, db: Path, tree: Path, **options: Any
) -> tuple[Any, Index]:
    """Index ``tree`` into ``db`` as `llamaembed index` does: commit at each checkpoint."""
    target = IndexFolder(db, llama)
    with target.writing():
        index = target.current()

        def commit(progress: BuildProgress) -> None:
            index.progress = progress
            target.commit()

        report = ingest_files(index, llama, [tree], checkpoint=commit, **options)
    return report, index


SLOW_RUN = textwrap.dedent(
    """
    import sys, time
    from llamaembed import Llama
    from llamaembed.store.folder import IndexFolder
    from llamaembed.store.ingest import ingest_files

    class Slow(Llama):  # the real model, slowed so the run can be killed in its middle
        def embed_documents(self, texts, **options):
            time.sleep(0.2)
            return super().embed_documents(texts, **options)

    llama = Slow(sys.argv[1])
    target = IndexFolder(sys.argv[2], llama)
    with target.writing():
        index = target.current()
        def commit(progress):
            index.progress = progress
            target.commit()
        ingest_files(index, llama, [sys.argv[3]], checkpoint=commit, checkpoint_every=0.0,
                     group_passages=8)
    """
)


def manifest(db: Path) -> dict[str, Any]:
    try:
        return dict(json.loads((db / "manifest.json").read_text()))
    except (OSError, ValueError):
        return {}


def wait_for(condition: Any, process: subprocess.Popen[Any] | None = None) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        assert process is None or process.poll() is None, "the run ended too soon"
        time.sleep(0.05)


def test_a_killed_run_resumes_where_it_stopped_and_ends_equal_to_a_clean_run(
    tmp_path: Path, tiny_encoder_path: Path
) -> None:
    tree = make_tree(tmp_path / "tree", 40)
    db = tmp_path / "db"
    script = tmp_path / "slow_run.py"
    script.write_text(SLOW_RUN)
    process = subprocess.Popen(
        [sys.executable, str(script), str(tiny_encoder_path), str(db), str(tree)]
    )
    try:  # killed with no warning once a few generations are committed
        wait_for(lambda: manifest(db).get("generation", "gen-0") >= "gen-000004", process)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=WAIT)
    with Llama(tiny_encoder_path) as plain:
        committed = Index.load(db, plain)
    assert committed.progress is not None and not committed.progress.complete
    kept = {meta["source"] for _, meta in committed.iter_metadata()}
    assert 0 < len(kept) < 40
    assert committed.progress.files_done == len(kept)
    kept_passages = len(committed)

    with Counting(tiny_encoder_path) as model:
        report, resumed = folder_run(model, db, tree, group_passages=8)
        assert report.complete and report.unchanged_files == len(kept)
        assert report.indexed_files == 40 - len(kept)
        with Counting(tiny_encoder_path) as fresh:
            _, clean = folder_run(fresh, tmp_path / "clean", tree, group_passages=8)
        # the second run embedded only what the first had not committed
        assert model.embedded == len(clean) - kept_passages == report.chunks
        assert_same_index(Index.load(db, model), clean)
    assert resumed.progress == BuildProgress(40, 40, report.chunks, complete=True)


def test_a_stopped_run_keeps_whole_files_and_a_search_says_how_much_it_covers(
    tmp_path: Path, tiny_encoder: Llama, tiny_encoder_path: Path
) -> None:
    tree = make_tree(tmp_path / "tree", 30)
    db = tmp_path / "db"
    stop = threading.Event()
    seen: list[BuildProgress] = []

    target = IndexFolder(db, tiny_encoder)
    with target.writing():
        index = target.current()

        def commit(progress: BuildProgress) -> None:
            seen.append(progress)
            index.progress = progress
            target.commit()
            if len(seen) == 2:
                stop.set()  # as SIGTERM or Ctrl-C does in the CLI

        report = ingest_files(
            index, tiny_encoder, [tree], checkpoint=commit, checkpoint_every=0.0,
            stop=stop, group_passages=8,
        )
    assert not report.complete and report.files_total == 30
    assert seen[-1].complete is False and seen[-1].files_done == report.indexed_files < 30
    saved = Index.load(db, tiny_encoder)
    assert saved.progress == seen[-1]
    # every file in the commit has all its passages: a clean run's count for that file
    clean = Index(tiny_encoder)
    ingest_files(clean, tiny_encoder, [tree])
    per_file: dict[str, int] = {}
    for _, meta in clean.iter_metadata():
        per_file[meta["source"]] = per_file.get(meta["source"], 0) + 1
    kept: dict[str, int] = {}
    for _, meta in saved.iter_metadata():
        kept[meta["source"]] = kept.get(meta["source"], 0) + 1
    assert kept and all(per_file[source] == n for source, n in kept.items())

    # the CLI's search answers from it and says it is partial
    found = CliRunner().invoke(
        main, ["search", "water the harbor holds", "--db", str(db), "-k", "2"]
    )
    assert found.exit_code == 0, found.output
    share = f"{saved.progress.files_done} of 30 files indexed"
    assert share in found.stderr and "incomplete" in found.stderr
    assert any(source in found.stdout for source in kept)  # hits from what is committed

    # so does the MCP server's search tool, to the official client
    mcp = pytest.importorskip("mcp")
    import anyio
    from mcp.client.stdio import StdioServerParameters

    params = StdioServerParameters(
        command=sys.executable, args=["-m", "llamaembed", "mcp", "--db", str(db)],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )

    async def ask() -> dict[str, Any]:
        async with mcp.Client(params) as client:
            result = await client.call_tool("search", {"query": "water the harbor holds"})
            assert not result.is_error, result.content
            assert share in result.content[0].text
            return dict(result.structured_content)

    answer = anyio.run(ask)
    assert answer["indexed_fraction"] == pytest.approx(saved.progress.files_done / 30)
    assert share in answer["note"] and answer["hits"]

    # the next run finishes it, and then nothing is said
    with Llama(tiny_encoder_path) as model:
        finished, _ = folder_run(model, db, tree)
    assert finished.complete and finished.unchanged_files == report.indexed_files
    again = CliRunner().invoke(main, ["search", "water the harbor holds", "--db", str(db)])
    assert again.exit_code == 0 and "incomplete" not in again.stderr


def test_sigterm_and_ctrl_c_end_a_cli_run_with_a_commit_and_exit_0(
    tmp_path: Path, minilm_f16_path: Path
) -> None:
    tree = make_tree(tmp_path / "tree", 160)
    for number in (signal.SIGTERM, signal.SIGINT):
        db = tmp_path / f"db-{number.name}"
        process = subprocess.Popen(
            [sys.executable, "-m", "llamaembed", "index", str(tree), "--db", str(db),
             "--model", str(minilm_f16_path), "--commit-every", "0.1"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        try:
            # a search while the run goes on answers from what is committed
            wait_for(lambda db=db: "progress" in manifest(db), process)
            during = CliRunner().invoke(main, ["search", "water the glacier holds", "--db",
                                               str(db), "-k", "1"])
            assert during.exit_code == 0, during.output
            assert "incomplete" in during.stderr and "glacier" in during.stdout
            process.send_signal(number)
            _, err = process.communicate(timeout=WAIT)
        finally:
            if process.poll() is None:
                process.kill()
        assert process.returncode == 0, err
        assert "stopped:" in err and "run the same command again" in err
        progress = manifest(db)["progress"]
        assert progress["complete"] is False and 0 < progress["files_done"] < 160
        resumed = subprocess.run(
            [sys.executable, "-m", "llamaembed", "index", str(tree), "--db", str(db),
             "--model", str(minilm_f16_path)],
            capture_output=True, text=True, timeout=WAIT * 2,
        )
        assert resumed.returncode == 0, resumed.stderr
        assert f"{progress['files_done']} unchanged" in resumed.stdout
        assert manifest(db)["progress"]["complete"] is True


def read_all(fd: int, process: subprocess.Popen[Any]) -> str:
    chunks = []
    while True:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                data = os.read(fd, 4096)
            except OSError:  # the other side closed
                break
            if not data:
                break
            chunks.append(data)
        elif process.poll() is not None:
            break
    return b"".join(chunks).decode("utf-8", "replace")


def test_progress_is_a_bar_on_a_terminal_and_lines_on_a_pipe(
    tmp_path: Path, minilm_f16_path: Path
) -> None:
    tree = make_tree(tmp_path / "tree", 150)  # 300 passages: groups of 128, then the rest
    command = [sys.executable, "-m", "llamaembed", "index", str(tree), "--model",
               str(minilm_f16_path)]
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
    process = subprocess.Popen(
        [*command, "--db", str(tmp_path / "tty")], stdout=subprocess.DEVNULL,
        stderr=follower, env={**os.environ, "COLUMNS": "120"},
    )
    os.close(follower)
    shown = read_all(leader, process)
    os.close(leader)
    assert process.wait(timeout=WAIT) == 0
    assert "\r" in shown and "indexing" in shown and "%|" in shown  # a bar redrawn in place
    assert "150/150 files" in shown and "passages/s" in shown

    piped = subprocess.run(
        [*command, "--db", str(tmp_path / "pipe"), "--progress-interval", "0.2"],
        capture_output=True, text=True, timeout=WAIT,
    )
    assert piped.returncode == 0, piped.stderr
    lines = [line for line in piped.stderr.splitlines() if line.startswith("indexing:")]
    assert lines and "\r" not in piped.stderr
    assert all("files" in line and "passages/s" in line for line in lines)
    assert any("left" in line for line in lines)


def test_build_progress_and_the_display_without_a_model() -> None:
    partial = BuildProgress(412, 1000, 9000)
    assert partial.fraction == pytest.approx(0.412)
    assert "412 of 1,000 files indexed (41%)" in partial.describe()
    assert BuildProgress.from_dict(partial.to_dict()) == partial
    assert BuildProgress(3, 3, 10, complete=True).describe() == ""
    assert BuildProgress(0, 0).fraction == 1.0
    for broken in (None, [], {"files_done": "x"}, {"files_total": 3}):
        assert BuildProgress.from_dict(broken) is None

    counts = RunCounts(files_total=10, bytes_total=1000)
    stream = io.StringIO()
    display = ProgressDisplay(counts, stream=stream, interval=0.0, bar=False)
    display.update()
    assert "0/10 files (0%)" in stream.getvalue() and "left" not in stream.getvalue()
    counts.files_done, counts.bytes_done, counts.bytes_embedded, counts.passages = 5, 500, 500, 40
    display.update()
    last = stream.getvalue().splitlines()[-1]
    assert "5/10 files (50%), 40 passages" in last and "left" in last
    quiet = io.StringIO()
    ProgressDisplay(counts, stream=quiet, interval=60.0, bar=False).update()
    assert quiet.getvalue() == ""  # a line a minute: none yet


def test_a_large_first_run_answers_from_the_fast_tier_until_the_full_index_is_whole(
    tmp_path: Path,
) -> None:
    tree = make_tree(tmp_path / "tree", 250)  # 250 new files: above FAST_TIER_FILES
    db = tmp_path / "db"
    command = [sys.executable, "-m", "llamaembed", "index", str(tree), "--db", str(db)]
    process = subprocess.Popen(
        [*command, "--commit-every", "0.1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        wait_for(lambda: (db / "fast" / "manifest.json").exists()
                 and "progress" in manifest(db), process)
        found = CliRunner().invoke(
            main, ["search", "water the glacier 17 holds", "--db", str(db), "-k", "3", "--json"]
        )
        assert found.exit_code == 0, found.output
        assert "answering from the fast tier" in found.stderr
        assert any("glacier" in hit["source"] for hit in json.loads(found.stdout))
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=WAIT)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert "fast tier (all-MiniLM-L6-v2-static): 250 files searchable now" in err
    assert manifest(db / "fast")["model"]["static_folder"]
    assert manifest(db)["progress"]["complete"] is False
    # stopped: the fast tier still answers, the next run finishes and removes it
    still = CliRunner().invoke(main, ["search", "glacier", "--db", str(db)])
    assert "answering from the fast tier" in still.stderr
    finished = subprocess.run(command, capture_output=True, text=True, timeout=WAIT * 2)
    assert finished.returncode == 0, finished.stderr
    assert not (db / "fast").exists()
    whole = CliRunner().invoke(main, ["search", "glacier", "--db", str(db), "--json"])
    assert whole.exit_code == 0 and "note" not in whole.stderr
    assert "static_folder" not in manifest(db)["model"]


def test_index_fast_uses_the_static_companion_end_to_end(
    tmp_path: Path, minilm_f16_path: Path
) -> None:
    tree = make_tree(tmp_path / "tree", 12)
    db = tmp_path / "db"
    made = CliRunner().invoke(main, ["index", str(tree), "--db", str(db), "--fast"])
    assert made.exit_code == 0, made.output
    assert "indexed 12 files" in made.stdout
    record = manifest(db)["model"]
    assert record["name"] == "all-MiniLM-L6-v2-static" and record["static_folder"]
    found = CliRunner().invoke(
        main, ["search", "water the orchard 2 holds", "--db", str(db), "--json", "-k", "1"]
    )
    assert found.exit_code == 0, found.output
    assert json.loads(found.stdout)[0]["source"].endswith("orchard_002.py")
    refused = CliRunner().invoke(
        main, ["index", str(tree), "--db", str(tmp_path / "other"), "--fast", "--model",
               str(minilm_f16_path)],
    )
    assert refused.exit_code == 1 and "Error:" in refused.output
