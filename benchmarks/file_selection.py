"""Indexing a repository with and without a large ignored folder, and `--watch` at rest.

    python benchmarks/file_selection.py [--files 10000] [--idle 30] [--write]

1. A git repository with ``src/`` (50 Python files, the default model embeds them) is
   indexed by ``llamaembed index`` as a fresh process, with no other folder and then with
   a ``datasets/`` folder of ``--files`` small CSV files that ``.gitignore`` lists (three
   runs each into a new ``--db``; the median wall time). For contrast, the same with
   ``--no-ignore`` (every file embedded), and the walk alone both ways (``select_files``).
2. ``llamaembed index src --watch`` on the same repository: once it says it is watching,
   its resident memory and the CPU time it uses over ``--idle`` seconds with nothing
   changing (psutil), then the same after one saved file was re-indexed.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

CODE = '''"""Module {i}: helpers for part {i} of the project."""


def compute_{i}(values):
    """Return the sum of the values of part {i}, each doubled."""
    return sum(2 * v for v in values)


class Part{i}:
    """State of part {i}."""

    def __init__(self):
        self.items = []
'''


def make_repo(root: Path, ignored_files: int) -> Path:
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    (root / "src").mkdir()
    for i in range(50):
        (root / "src" / f"part{i}.py").write_text(CODE.format(i=i))
    (root / ".gitignore").write_text("datasets/\n")
    for n in range(ignored_files):
        folder = root / "datasets" / f"shard-{n // 100:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"rows-{n}.csv").write_text(f"{n},value {n},{n * 7 % 13}\n")
    return root


def index_seconds(repo: Path, runs: int = 3, *options: str) -> float:
    times = []
    for run in range(runs):
        db = repo.parent / f"db-{repo.name}-{run}{''.join(options)}"
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "llamaembed", "index", str(repo), "--db", str(db),
                        *options], check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def idle_footprint(repo: Path, idle: float) -> list[tuple[str, float, float]]:
    import psutil

    watch = subprocess.Popen(
        [sys.executable, "-m", "llamaembed", "index", str(repo / "src"), "--db",
         str(repo.parent / "db-watch"), "--watch"],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
    )
    assert watch.stderr is not None
    for line in watch.stderr:
        if line.startswith("watching"):
            break
    process = psutil.Process(watch.pid)
    rows = []
    try:
        for label in ("idle after start", "idle after one update"):
            if label != "idle after start":
                (repo / "src" / "part0.py").write_text(CODE.format(i=0) + "\n# edited\n")
                for line in watch.stderr:
                    if "paths changed" in line:
                        break
            before = process.cpu_times()
            time.sleep(idle)
            after = process.cpu_times()
            cpu = (after.user + after.system) - (before.user + before.system)
            rows.append((label, process.memory_info().rss / 2**20, 100 * cpu / idle))
    finally:
        watch.terminate()
        watch.wait(timeout=30)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--idle", type=float, default=30.0)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    from run import machine_header, write_results

    from llamaembed.store.selection import FileRules, select_files

    with tempfile.TemporaryDirectory() as tmp:
        plain = make_repo(Path(tmp) / "plain", 0)
        big = make_repo(Path(tmp) / "with-datasets", args.files)
        # the first run loads the model files into the page cache for both
        index_seconds(plain, runs=1)
        without, with_ignored = index_seconds(plain), index_seconds(big)
        everything = index_seconds(big, 1, "--no-ignore")
        start = time.perf_counter()
        listed = len(select_files([big], FileRules(ignore_files=False)))
        walk_all = time.perf_counter() - start
        start = time.perf_counter()
        chosen = len(select_files([big]))
        walk_rules = time.perf_counter() - start
        footprint = idle_footprint(plain, args.idle)
    lines = [
        "",
        "| repository | files chosen | `llamaembed index` (s, median of 3) |",
        "|---|---|---|",
        f"| src/ only (50 files) | {chosen} | {without:.2f} |",
        f"| src/ + {args.files:,} ignored files in datasets/ | {chosen} | {with_ignored:.2f} |",
        f"| the same with `--no-ignore` (one run) | {listed:,} | {everything:.1f} |",
        "",
        f"Ratio: {with_ignored / without:.2f}x. The walk alone: {walk_rules * 1000:.1f} ms with "
        f"the rules, {walk_all * 1000:.0f} ms listing all {listed:,} files (`--no-ignore`).",
        "",
        f"`llamaembed index src --watch`, {args.idle:.0f} s with nothing changing:",
        "",
        "| state | resident memory (MiB) | CPU (% of one core) |",
        "|---|---|---|",
        *(f"| {label} | {rss:.0f} | {cpu:.2f} |" for label, rss, cpu in footprint),
    ]
    report = "\n".join(lines)
    print("\n".join(machine_header(2)) + report)
    if args.write:
        write_results("\n".join([*machine_header(2), report]),
                      "python benchmarks/file_selection.py --write", "file-selection",
                      heading="## Ignored folders and --watch")


if __name__ == "__main__":
    main()
