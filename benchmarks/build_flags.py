"""Do llama.cpp build flags cost speed? Two builds of llama-cpp-python, the same types.

Each build is a folder holding an installed ``llama_cpp`` package (``pip install --target
DIR --no-deps WHEEL``); ``installed`` is the one in this environment. Every round runs
``benchmarks/worker.py`` once per build and weight type, in turn, and the ratio of each
type's rate (flagged build over the first build) is taken within a round, then the
median over rounds: this machine's speed drifts within minutes.

    python benchmarks/build_flags.py --build plain=installed --build safe=/tmp/site-safe \\
        [--types f32,f16,bf16,q8_0] [--rounds 3] [--write]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.run import cpu_class, machine_header, write_results

HERE = Path(__file__).resolve().parent
THREADS = os.cpu_count() or 2


def run_worker(system: str, site: str) -> dict:
    env = dict(os.environ)
    if site != "installed":
        env["PYTHONPATH"] = os.pathsep.join([str(Path(site).resolve()), str(HERE.parent)])
    out = subprocess.run(
        [sys.executable, str(HERE / "worker.py"), system, "--threads", str(THREADS)],
        capture_output=True, text=True, check=True, env=env,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--build", action="append", required=True, help="NAME=DIR or NAME=installed"
    )
    parser.add_argument("--types", default="f32,f16,bf16,q8_0")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--write", action="store_true", help="update benchmarks/README.md")
    args = parser.parse_args()
    builds = dict(item.split("=", 1) for item in args.build)
    names = list(builds)
    types = args.types.split(",")
    rounds: list[dict[tuple[str, str], dict]] = []
    for index in range(args.rounds):
        record = {}
        order = names if index % 2 == 0 else names[::-1]  # alternate who goes first
        for kind in types:
            for name in order:
                record[(name, kind)] = run_worker(f"llamaembed-{kind}", builds[name])
        rounds.append(record)
        print(f"round {index + 1} done", file=sys.stderr)
    base = names[0]
    lines = [*machine_header(THREADS), ""]
    lines.append(
        f"Builds: {', '.join(f'`{n}`' for n in names)}; {args.rounds} interleaved rounds, "
        f"all-MiniLM-L6-v2, 1,000 short and 300 long texts; ratios × `{base}` per round, "
        "then the median."
    )
    lines.append("")
    lines.append("| type | build | short texts/s | long texts/s | short × base | long × base |")
    lines.append("|---|---|---|---|---|---|")
    for kind in types:
        for name in names:
            runs = [r[(name, kind)] for r in rounds]
            bases = [r[(base, kind)] for r in rounds]
            cells = []
            for label in ("short", "long"):
                key = f"{label}_texts_per_s"
                ratio = statistics.median(x[key] / y[key] for x, y in zip(runs, bases, strict=True))
                cells.append((statistics.median(x[key] for x in runs), ratio))
            lines.append(
                f"| {kind} | {name} | {cells[0][0]:.0f} | {cells[1][0]:.1f} | "
                f"{cells[0][1]:.3f} | {cells[1][1]:.3f} |"
            )
    report = "\n".join(lines)
    print(report)
    if args.write:
        write_results(
            report,
            "python benchmarks/build_flags.py " + " ".join(sys.argv[1:]),
            f"build-flags-{cpu_class()}",
            heading=f"### CPU class `{cpu_class()}` (build flags)",
        )


if __name__ == "__main__":
    main()
