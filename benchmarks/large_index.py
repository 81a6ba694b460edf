"""`llamaembed index` on a large real tree: first answer, where the time goes, memory.

The tree is the first ``--files`` Python files (sorted by path) of CPython's standard
library as Debian installs it (/usr/lib/python3.11, from libpython3.11-minimal and
-stdlib), copied into a scratch folder. Three measurements, one after the other:

1. **First answer**: ``llamaembed index TREE`` (default model, fast tier on) as a process;
   the seconds until a search answers (the fast tier's commit, then a real ``llamaembed
   search`` process), and the seconds until the main index's first commit. The run is
   then stopped with SIGTERM (its exit code and the seconds it took to stop are printed).
2. **Where the time goes**: the main index run in this process for ``--seconds``
   (default model, commits every 60 s, stopped by the same event SIGTERM sets), timing
   the model's calls (``encoder.documents``) and the commits against the wall clock; then
   ``embed_texts`` alone on exactly the passages the run embedded, for passages a second.
3. **Memory**: peak RSS of the run of (2), and of a run of the fast tier alone.

    python benchmarks/large_index.py [--files 1000] [--seconds 150]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.run import machine_header

STDLIB = Path("/usr/lib/python3.11")


def make_tree(target: Path, files: int) -> tuple[int, int]:
    """Copy the first ``files`` stdlib .py files into ``target``; return (files, bytes)."""
    chosen = sorted(STDLIB.rglob("*.py"))[:files]
    total = 0
    for path in chosen:
        copy = target / path.relative_to(STDLIB)
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, copy)
        total += path.stat().st_size
    return len(chosen), total


def manifest(db: Path) -> dict[str, Any]:
    try:
        return dict(json.loads((db / "manifest.json").read_text()))
    except (OSError, ValueError):
        return {}


def first_answer(tree: Path, work: Path) -> dict[str, float]:
    """Run `llamaembed index` as a user does; time the first answers; stop it."""
    db = work / "db-first"
    start = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "llamaembed", "index", str(tree), "--db", str(db)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    result: dict[str, float] = {}
    while process.poll() is None and "fast_commit_s" not in result:
        if (db / "fast" / "manifest.json").exists():
            result["fast_commit_s"] = time.monotonic() - start
        time.sleep(0.05)
    answered = subprocess.run(
        [sys.executable, "-m", "llamaembed", "search", "parse a date string", "--db", str(db)],
        capture_output=True,
        text=True,
    )
    result["first_answer_s"] = time.monotonic() - start
    result["first_answer_from_fast_tier"] = float("fast tier" in answered.stderr)
    while process.poll() is None and "progress" not in manifest(db):
        time.sleep(0.05)
    result["main_first_commit_s"] = time.monotonic() - start
    time.sleep(5)
    stopping = time.monotonic()
    process.send_signal(signal.SIGTERM)
    process.communicate()
    result["stop_s"] = time.monotonic() - stopping
    result["exit_code"] = float(process.returncode)
    progress = manifest(db).get("progress", {})
    result["files_committed_at_stop"] = float(progress.get("files_done", 0))
    return result


def where_the_time_goes(tree: Path, work: Path, seconds: float) -> dict[str, float]:
    """Index in this process for ``seconds``; time the model's calls and the commits."""
    from llamaembed.hub.spec import resolve_model
    from llamaembed.store.folder import IndexFolder
    from llamaembed.store.ingest import ingest_files

    llama: Any = resolve_model(None).open()
    target = IndexFolder(work / "db-profile", llama)
    model_s = commit_s = 0.0
    commits = 0
    embedded: list[str] = []
    stop = threading.Event()
    with target.writing():
        index = target.current()
        documents = index.encoder.documents

        def timed_documents(texts: Any, **options: Any) -> Any:
            nonlocal model_s
            embedded.extend(texts)
            began = time.perf_counter()
            try:
                return documents(texts, **options)
            finally:
                model_s += time.perf_counter() - began

        index.encoder.documents = timed_documents  # type: ignore[method-assign]

        def commit(progress: Any) -> None:
            nonlocal commit_s, commits
            began = time.perf_counter()
            index.progress = progress
            target.commit()
            commit_s += time.perf_counter() - began
            commits += 1

        timer = threading.Timer(seconds, stop.set)
        timer.start()
        began = time.perf_counter()
        report = ingest_files(
            index, llama, [tree], skip=[work / "db-profile"], checkpoint=commit, stop=stop
        )
        wall = time.perf_counter() - began
        timer.cancel()
    rss_run = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    began = time.perf_counter()
    llama.embed_documents(embedded)
    alone = time.perf_counter() - began
    llama.close()
    return {
        "wall_s": wall,
        "model_s": model_s,
        "commit_s": commit_s,
        "commits": float(commits),
        "files": float(report.indexed_files),
        "passages": float(len(embedded)),
        "passages_per_s_index": len(embedded) / wall,
        "passages_per_s_embed_texts": len(embedded) / alone,
        "peak_rss_mb": rss_run,
        "index_passages": float(len(index)),
    }


def fast_tier_alone(tree: Path, work: Path) -> dict[str, float]:
    """Index the tree with the static companion alone (``index --fast``); time and RSS."""
    began = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "llamaembed", "index", str(tree), "--fast", "--db",
         str(work / "db-fast")],
        capture_output=True,
        text=True,
    )
    wall = time.monotonic() - began
    if done.returncode != 0:
        raise SystemExit(done.stderr)
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"wall_s": wall, "peak_rss_mb_any_child": rss, "summary": done.stdout.strip()}  # type: ignore[dict-item]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=150.0)
    args = parser.parse_args()
    print("\n".join(machine_header(os.cpu_count() or 1)))
    with tempfile.TemporaryDirectory(prefix="llamaembed-large-") as scratch:
        work = Path(scratch)
        tree = work / "stdlib"
        files, size = make_tree(tree, args.files)
        print(f"tree: {files} files, {size / 1e6:.1f} MB of CPython 3.11's standard library")
        # the static companion is built once per machine (the first use): out of the timing
        subprocess.run(
            [sys.executable, "-c", "from llamaembed.hub.spec import resolve_model;"
             "resolve_model('all-MiniLM-L6-v2-static').open().close()"],
            check=True,
        )
        fast = fast_tier_alone(tree, work)
        print("fast tier alone (index --fast):", json.dumps(fast))
        first = first_answer(tree, work)
        print("first answer:", json.dumps({k: round(v, 2) for k, v in first.items()}))
        profile = where_the_time_goes(tree, work, args.seconds)
        shown = {k: round(v, 2) for k, v in profile.items()}
        print("main run:", json.dumps(shown))
        share = profile["model_s"] / profile["wall_s"]
        ratio = profile["passages_per_s_index"] / profile["passages_per_s_embed_texts"]
        print(
            f"model share of the run {share:.1%}; commits {profile['commit_s']:.1f} s "
            f"({profile['commits']:.0f}); passages/s index / embed_texts {ratio:.3f}"
        )
    print(f"pid {os.getpid()} done")


if __name__ == "__main__":
    main()
