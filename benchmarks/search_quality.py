"""Does a question the README answers find that README section first, on this repository?

    python benchmarks/search_quality.py [--compare] [--corpus DIR]

Indexes README.md, llamaembed/ and examples/ (the README's main job) with the default
model, asks questions whose answer is a README section, and prints, per question, the rank
of the first hit from that section, then success@1 and the mean reciprocal rank (MRR),
for hybrid and vector-only search. ``--compare`` also builds the index as before issue 26
(passages of words, no context line) for the same questions.
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from llamaembed import Index  # noqa: E402
from llamaembed.hub.spec import resolve_model  # noqa: E402
from llamaembed.store.chunking import chunk_text  # noqa: E402
from llamaembed.store.ingest import collect_files, ingest_files  # noqa: E402

# question -> README sections ("## Title" prefixes) whose text answers it
QUESTIONS = {
    "how do I rerank search results": ("Searching your files", "Tour", "Command line"),
    "how do I install llamaembed and run the tests": ("Set-up",),
    "how do I start an OpenAI-compatible embeddings server": ("Server",),
    "how can I convert a Hugging Face model to GGUF": ("Converting and quantising",),
    "how do I quantise a model to q4_k_m": ("Converting and quantising",),
    "which weight type runs fastest on my CPU": ("Hardware",),
    "how do I run the model on a GPU": ("Hardware",),
    "how do I embed a large dataset on a Ray cluster": ("Past one machine",),
    "what is a static model and how do I distill one": ("Static models",),
    "how do I get sparse lexical weights from bge-m3": ("bge-m3",),
    "how do I use Qwen3-Embedding with its query prompt": ("Decoder-era models",),
    "which models are in the catalogue": ("Models",),
    "how fast is llamaembed compared to sentence-transformers": ("Performance",),
    "how do I use llamaembed with LangChain": ("LangChain and LlamaIndex",),
    "when should I move my index to Milvus": ("Milvus",),
}


def sections(readme: Path) -> list[tuple[str, int, int]]:
    """Return (title, first line, last line) of each '## ' section, 1-based."""
    lines = readme.read_text().splitlines()
    starts = [(i + 1, line[3:].strip()) for i, line in enumerate(lines) if line.startswith("## ")]
    bounds = [s for s, _ in starts[1:]] + [len(lines) + 1]
    return [(title, first, end - 1) for (first, title), end in zip(starts, bounds, strict=True)]


def hit_lines(hit, text_of: dict[str, str]) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    meta = hit.metadata
    if "line_start" in meta:
        return meta["line_start"], meta["line_end"]
    text = text_of[meta["source"]]
    return text.count("\n", 0, meta["start"]) + 1, text.count("\n", 0, meta["end"]) + 1


def build_before(index: Index, files: list[Path], model) -> None:  # type: ignore[no-untyped-def]
    """The ingest of before issue 26: 256-token passages of words, no context line."""
    texts, metas, ids = [], [], []
    for path in files:
        text = path.read_text(errors="replace")
        for n, chunk in enumerate(chunk_text(text, model.count_tokens, 256)):
            texts.append(chunk.text)
            ids.append(f"{path}#{n}")
            metas.append({"source": str(path), "start": chunk.start, "end": chunk.end})
    index.add_vectors(model.embed_documents(texts), texts, metas, ids)


def evaluate(index: Index, readme: Path, text_of: dict[str, str]) -> dict[bool, list[int]]:
    """Return, for hybrid and vector-only search, each question's rank of its section."""
    bounds = sections(readme)
    ranks: dict[bool, list[int]] = {True: [], False: []}
    for question, wanted in QUESTIONS.items():
        spans = [(a, b) for title, a, b in bounds if title.startswith(wanted)]
        for hybrid in (True, False):
            rank = 0
            for n, hit in enumerate(index.search(question, 20, hybrid=hybrid), start=1):
                if Path(hit.metadata["source"]) != readme:
                    continue
                first, last = hit_lines(hit, text_of)
                if any(first <= b and last >= a for a, b in spans):
                    rank = n
                    break
            ranks[hybrid].append(rank)
    return ranks


def report(name: str, ranks: dict[bool, list[int]]) -> None:
    for hybrid in (True, False):
        found = ranks[hybrid]
        top1 = sum(r == 1 for r in found) / len(found)
        mrr = sum(1 / r for r in found if r) / len(found)
        mode = "hybrid" if hybrid else "vector"
        ranks_text = " ".join(str(r or "-") for r in found)
        print(f"| {name} | {mode} | {top1:.2f} | {mrr:.2f} | {ranks_text} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--compare", action="store_true", help="also the ingest of before")
    parser.add_argument(
        "--corpus",
        type=Path,
        default=ROOT,
        help="index this folder's README.md, llamaembed/ and examples/ (an A/B of two "
        "checkouts runs each one's copy of this script over one corpus)",
    )
    args = parser.parse_args()
    corpus = args.corpus.resolve()
    flags = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    cpu = next(
        (ln.split(":", 1)[1].strip() for ln in flags.splitlines() if "Model name" in ln), "?"
    )
    print(f"machine: {platform.machine()} {cpu}")
    readme = corpus / "README.md"
    files = collect_files([corpus / "README.md", corpus / "llamaembed", corpus / "examples"])
    text_of = {str(p): p.read_text(errors="replace") for p in files}
    model = resolve_model(None).open()
    print(f"model: {model.spec.name}, {len(files)} files, {len(QUESTIONS)} questions")
    print("| ingest | search | success@1 | MRR | rank of the answering README section |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory():
        index = Index(model)
        ingest_files(index, model, files)
        report(f"now ({len(index)} passages)", evaluate(index, readme, text_of))
        if args.compare:
            before = Index(model)
            build_before(before, files, model)
            report(f"before ({len(before)} passages)", evaluate(before, readme, text_of))
    model.close()


if __name__ == "__main__":
    main()
