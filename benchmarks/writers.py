"""Two `llamaembed index` runs into one folder at once: what each checkout keeps.

Each run adds its own 120 text files to the same `--db`; the second starts a given time
after the first. Written one after the other the runs leave every passage; the table says
how many each checkout keeps when they run at once, and how each run ended. With
`--baseline DIR` the same runs use another checkout (a `git worktree` of an older commit).

    python benchmarks/writers.py [--baseline DIR] [--offsets 0 0.5 1 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.prepare import gguf_paths
from benchmarks.run import machine_header

WORDS = "cat mat dog river blue bridge green report seven house tree light pump valve".split()  # noqa: SIM905


def write_files(folder: Path, tag: str, n: int) -> Path:
    folder.mkdir(parents=True)
    for i in range(n):
        words = [
            WORDS[(i * 7 + j * (3 if tag == "a" else 5) + i * j) % len(WORDS)] for j in range(40)
        ]
        (folder / f"{tag}-{i}.txt").write_text(f"{tag} {i}: " + " ".join(words) + "\n")
    return folder


def run(checkout: Path, files: Path, db: Path, model: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    command = [
        sys.executable,
        "-m",
        "llamaembed",
        "index",
        str(files),
        "--db",
        str(db),
        "--model",
        str(model),
    ]
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=checkout
    )


def passages(db: Path) -> int:
    manifest = json.loads((db / "manifest.json").read_text())
    return int(manifest["count"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, help="another checkout, run alike")
    parser.add_argument("--offsets", type=float, nargs="+", default=[0.0, 0.5, 1.0, 2.0])
    parser.add_argument("--files", type=int, default=120)
    args = parser.parse_args()
    model = gguf_paths()["f16"]
    sides = {"this checkout": Path(__file__).resolve().parent.parent}
    if args.baseline is not None:
        sides["baseline"] = args.baseline.resolve()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        first = write_files(root / "a", "a", args.files)
        second = write_files(root / "b", "b", args.files)
        in_turn = root / "in-turn"
        for files in (first, second):
            run(sides["this checkout"], files, in_turn, model).communicate()
        expected = passages(in_turn)
        rows = []
        for side, checkout in sides.items():
            for offset in args.offsets:
                db = root / f"{side.replace(' ', '-')}-{offset}"
                one = run(checkout, first, db, model)
                time.sleep(offset)
                two = run(checkout, second, db, model)
                outs = [p.communicate()[0] for p in (one, two)]
                ended = [
                    "0"
                    if p.returncode == 0
                    else f"{p.returncode}: {out.strip().splitlines()[-1][:60]}"
                    for p, out in zip((one, two), outs, strict=True)
                ]
                kept = passages(db) if (db / "manifest.json").exists() else 0
                rows.append(f"| {side} | {offset:g} | {kept} of {expected} | {'; '.join(ended)} |")
                print(rows[-1], flush=True)
    print(
        "\n".join(
            [
                *machine_header(2),
                "",
                "| checkout | second run starts after (s) | passages kept | exit codes |",
                "|---|---|---|---|",
                *rows,
            ]
        )
    )


if __name__ == "__main__":
    main()
