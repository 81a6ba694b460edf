"""The Ray path against in-process embedding, on this machine (one node).

    python benchmarks/distributed.py [--rows 4000] [--rounds 3] [--write]

In one run, on a local Ray cluster of all this machine's CPUs:
- in-process ``Llama.embed_texts`` on all threads and on 1 thread, and
  ``StaticModel.embed_texts``: no Ray;
- ``embed_dataset(...).materialize()`` with 1 actor holding every CPU, and with one actor
  per CPU (1 thread each), end to end: actors started, model opened in each, rows
  embedded; and the same with ``write_embeddings`` (Parquet files) instead;
- the same for a static model distilled from the same teacher, where Ray's own cost is
  most of the time;
- each Ray job again on 16 rows: its start-up cost. Overhead per row is what remains of a
  Ray time after start-up and after the in-process time of the same work on the same
  threads (1 actor × N CPUs against N threads; N actors × 1 CPU against 1 thread / N).
Rounds are interleaved; the table holds medians.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from benchmarks.prepare import CACHE, text_sets  # noqa: E402
from benchmarks.run import cpu_class, machine_header, write_results  # noqa: E402


def static_folder(teacher: str) -> Path:
    from llamaembed import distill

    folder = CACHE / "static" / "zipf"
    if not (folder / "model.safetensors").exists():
        distill(teacher, folder)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--write", action="store_true", help="update benchmarks/README.md")
    args = parser.parse_args()

    import pyarrow as pa
    import ray

    from llamaembed import Llama, StaticModel
    from llamaembed.distributed.ray import embed_dataset, write_embeddings
    from llamaembed.hub.registry import resolve_params

    cpus = os.cpu_count() or 1
    short = text_sets()["short"]
    texts = (short * (args.rows // len(short) + 1))[: args.rows]
    params = resolve_params(None)  # the built-in default (all-MiniLM-L6-v2), auto type
    folder = static_folder(params.model_path)
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    ray.data.DataContext.get_current().enable_progress_bars = False
    table = pa.table({"id": [f"r{i}" for i in range(len(texts))], "text": texts})
    # 16 blocks: each block goes to one actor, so one block would idle all but one actor.
    step = -(-len(texts) // 16)
    blocks = [table.slice(i, step) for i in range(0, len(texts), step)]

    def in_process_gguf(threads: int) -> float:
        with Llama.load(params.with_n_threads(threads)) as model:
            model.embed_texts(texts[:50])  # first-call set-up out of the timing
            start = time.perf_counter()
            model.embed_texts(texts)
            return time.perf_counter() - start

    def in_process_static() -> float:
        model = StaticModel(folder)
        model.embed_texts(texts[:100])
        start = time.perf_counter()
        model.embed_texts(texts)
        return time.perf_counter() - start

    def on_ray(model: object, actors: int, cpus_per_actor: int, rows: int) -> float:
        ds = ray.data.from_arrow(blocks if rows == len(texts) else [table.slice(0, rows)])
        start = time.perf_counter()
        out = embed_dataset(ds, model, actors=actors, cpus_per_actor=cpus_per_actor)
        count = out.materialize().count()
        elapsed = time.perf_counter() - start
        assert count == rows, count
        return elapsed

    def to_parquet() -> float:
        with tempfile.TemporaryDirectory() as tmp:
            ds = ray.data.from_arrow(blocks)
            start = time.perf_counter()
            write_embeddings(embed_dataset(ds, params, actors=cpus, cpus_per_actor=1), tmp)
            return time.perf_counter() - start

    n = len(texts)
    # name -> (run, the ideal time from in-process rates, the run's start-up probe)
    runs: dict[str, Callable[[], float]] = {
        f"in-process Llama.embed_texts, {cpus} threads": lambda: in_process_gguf(cpus),
        "in-process Llama.embed_texts, 1 thread": lambda: in_process_gguf(1),
        f"Ray, 1 actor × {cpus} CPUs": lambda: on_ray(params, 1, cpus, n),
        f"Ray, {cpus} actors × 1 CPU": lambda: on_ray(params, cpus, 1, n),
        f"Ray, {cpus} actors × 1 CPU, + Parquet files": to_parquet,
        "in-process StaticModel.embed_texts": in_process_static,
        f"Ray static, {cpus} actors × 1 CPU": lambda: on_ray(str(folder), cpus, 1, n),
        # 16 rows: what a job costs before its first row (actor start, model load)
        f"start-up: Ray, 1 actor × {cpus} CPUs": lambda: on_ray(params, 1, cpus, 16),
        f"start-up: Ray, {cpus} actors × 1 CPU": lambda: on_ray(params, cpus, 1, 16),
        "start-up: Ray static": lambda: on_ray(str(folder), cpus, 1, 16),
    }
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    for round_ in range(args.rounds):
        print(f"round {round_ + 1}/{args.rounds}", file=sys.stderr, flush=True)
        for name, run in runs.items():
            seconds[name].append(run())
    ray.shutdown()
    t = {name: statistics.median(values) for name, values in seconds.items()}
    one_thread = t["in-process Llama.embed_texts, 1 thread"]
    ideal = {  # the in-process time of the same work, run by the same threads
        f"Ray, 1 actor × {cpus} CPUs": t[f"in-process Llama.embed_texts, {cpus} threads"],
        f"Ray, {cpus} actors × 1 CPU": one_thread / cpus,
        f"Ray, {cpus} actors × 1 CPU, + Parquet files": one_thread / cpus,
        f"Ray static, {cpus} actors × 1 CPU": t["in-process StaticModel.embed_texts"] / cpus,
    }
    startup = {
        f"Ray, 1 actor × {cpus} CPUs": t[f"start-up: Ray, 1 actor × {cpus} CPUs"],
        f"Ray, {cpus} actors × 1 CPU": t[f"start-up: Ray, {cpus} actors × 1 CPU"],
        f"Ray, {cpus} actors × 1 CPU, + Parquet files": t[f"start-up: Ray, {cpus} actors × 1 CPU"],
        f"Ray static, {cpus} actors × 1 CPU": t["start-up: Ray static"],
    }
    fastest = t[f"in-process Llama.embed_texts, {cpus} threads"]
    lines = [*machine_header(cpus), "",
             f"Model: all-MiniLM-L6-v2, {Path(params.model_path).name} (the auto type); "
             f"static: distilled from it (PCA 256). {n:,} short texts (10-20 tokens) in 16 "
             f"blocks; local Ray cluster of {cpus} CPUs; medians of {args.rounds} interleaved "
             "rounds. Ray times are end to end. Start-up is the same job on 16 rows (actors "
             "started, model opened in each); overhead per row is what remains beyond "
             "start-up and the in-process time of the same work on the same threads.", "",
             "| run | seconds | rows/s | × in-process (all threads) | start-up s | "
             "overhead per row |", "|---|---|---|---|---|---|"]
    for name in runs:
        if name.startswith("start-up"):
            continue
        base = t["in-process StaticModel.embed_texts"] if "tatic" in name else fastest
        cells = ["", ""]
        if name in ideal:
            per_row = (t[name] - startup[name] - ideal[name]) / n * 1e6
            cells = [f"{startup[name]:.2f}", f"{per_row:,.0f} µs"]
        lines.append(f"| {name} | {t[name]:.2f} | {n / t[name]:,.0f} | {base / t[name]:.2f} | "
                     f"{cells[0]} | {cells[1]} |")
    report = "\n".join(lines)
    print(report)
    if args.write:
        write_results(
            report,
            "python benchmarks/distributed.py " + " ".join(sys.argv[1:]),
            f"distributed-{cpu_class()}",
            heading=f"### CPU class `{cpu_class()}` (Ray path, one node)",
        )


if __name__ == "__main__":
    main()
