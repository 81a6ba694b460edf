"""Code search on real third-party projects: llamaembed against semble, BM25, ripgrep.

    python benchmarks/code_corpus.py                 # fetch the projects (once)
    python benchmarks/code_search.py [--projects httpx,cobra] [--systems ...] [--write]

The projects are ``code_corpus.PROJECTS`` (pinned versions from PyPI, npm and Debian);
the questions ``benchmarks/code_questions/NAME.jsonl``, written for this benchmark by
reading each project (kinds: behaviour, design, symbol; targets are line spans).

Scoring: NDCG@10 with binary gains, where the first hit overlapping a target counts for
it (later hits on the same target count nothing); success@1; MRR@10. Per system, kind and
language, with the index time and the query p50 beside each.

Systems, all over the same files:

- ``ours``: ``llamaembed index`` + ``search`` as shipped (default model, hybrid, code
  ranking rules), and its ablation rows (each rule off; no rules; dense alone; its BM25
  side alone);
- ``before``: llamaembed at ``--before`` (the commit before syntax passages, identifier
  words and the code rules), run from a git worktree;
- ``static``: ours with the static tier distilled from the same MiniLM;
- ``semble``: semble (PyPI) given a Model2Vec model that model2vec's own ``distill`` makes
  from the same all-MiniLM-L6-v2;
- ``bm25s``: BM25 alone (``bm25s``, its default tokeniser) over our passages;
- ``ripgrep``: ``rg -i`` over the question's words; files ranked by how many distinct
  words they hold, each shown at its line holding the most (±10 lines).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from code_corpus import CORPUS, PROJECTS, Project  # noqa: E402

QUESTIONS = HERE / "code_questions"
BEFORE = "fcff43e"  # main before issue 48
Span = tuple[str, int, int]  # a hit: path relative to the project, first and last line


@dataclass(frozen=True)
class Question:
    """One question and the line spans that answer it."""

    kind: str
    text: str
    targets: tuple[Span, ...]


def load_questions(path: Path) -> list[Question]:
    """Return the questions of one project's JSONL file."""
    questions = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            q = json.loads(line)
            targets = tuple((t["path"], int(t["start"]), int(t["end"])) for t in q["targets"])
            questions.append(Question(q["kind"], q["question"], targets))
    return questions


def score(hits: Sequence[Span], targets: Sequence[Span], k: int = 10) -> tuple[float, float, float]:
    """Return (NDCG@k, success@1, reciprocal rank) of ranked hits against the targets.

    A hit is relevant when it overlaps a target no earlier hit overlapped (binary gain).
    """
    credited: set[int] = set()
    gains = []
    for path, first, last in hits[:k]:
        gain = 0
        for n, (t_path, t_first, t_last) in enumerate(targets):
            if n not in credited and path == t_path and first <= t_last and t_first <= last:
                credited.add(n)
                gain = 1
                break
        gains.append(gain)
    dcg = sum(g / _log2(i + 2) for i, g in enumerate(gains))
    ideal = sum(1 / _log2(i + 2) for i in range(min(len(targets), k)))
    first_hit = next((i for i, g in enumerate(gains) if g), None)
    return (
        dcg / ideal if ideal else 0.0,
        1.0 if gains[:1] == [1] else 0.0,
        1 / (first_hit + 1) if first_hit is not None else 0.0,
    )


def _log2(x: float) -> float:
    import math

    return math.log2(x)


def relative(path: str, folder: Path) -> str:
    """Return a hit's path relative to the project folder, with forward slashes."""
    p = Path(path)
    if p.is_absolute():
        with contextlib.suppress(ValueError):
            p = p.resolve().relative_to(folder.resolve())
    return p.as_posix()


# ----------------------------------------------------------------------------- docstrings
_MARKERS = re.compile(r"^\s*(///?|/\*\*?|\*/?|#+|--|\"\"\"|\'\'\'|r\"\"\")\s?")


def _is_comment(line: str) -> bool:
    """Return True for a comment line (not a Rust attribute or a shebang)."""
    text = line.strip()
    return bool(_MARKERS.match(line)) and not text.startswith(("#[", "#!"))


def _summary(comment: str) -> str:
    """Return a doc comment's first sentence, without comment markers ("" if too short)."""
    lines = []
    for line in comment.splitlines():
        text = _MARKERS.sub("", line).strip().strip("\"'").strip("*/").strip()
        if not text:
            if lines:
                break
            continue
        if text.startswith(("@", ":param", ":return", "Args:", "Returns:", "#")):
            break
        lines.append(text)
    sentence = re.split(r"(?<=[.!?])\s", " ".join(lines))[0].strip()
    words = sentence.split()
    return sentence if 4 <= len(words) <= 40 else ""


def docstring_questions(
    name: str, folder: Path, target: Path, per_project: int = 20
) -> list[Question]:
    """Write a copy of a project with its functions' doc comments blanked; return questions.

    Each function or method with a doc comment (a Python docstring, or comments right
    above it) gives a question, the comment's first sentence; its answer is the function,
    whose comment is blanked (lines kept, so line numbers hold) in the copy at ``target``.
    At most ``per_project``, evenly spaced over the project's files.
    """
    from llamaembed.code.languages import language_for, parser_for
    from llamaembed.code.passages import _leading_comments, _nearest_definitions
    from llamaembed.store.selection import select_files

    found: list[tuple[str, int, int, str, list[tuple[int, int]]]] = []
    copies: dict[str, list[str]] = {}
    for path in select_files([folder]):
        rel = path.relative_to(folder).as_posix()
        language = language_for(path)
        text = path.read_text(encoding="utf-8", errors="replace")
        copies[rel] = text.splitlines(keepends=True)
        if language is None or "test" in rel.lower():
            continue
        parser = parser_for(language)
        if parser is None:
            continue
        tree = parser.parse(text.encode("utf-8"))
        stack = [tree.root_node]
        while stack:
            node = stack.pop()
            for outer, inner in _nearest_definitions(node, language):
                stack.append(inner)
                if "function" not in inner.type and "method" not in inner.type:
                    continue
                first, last = outer.start_point[0], outer.end_point[0]
                lead = _leading_comments(outer)
                blank: list[tuple[int, int]] = []
                comment = ""
                if lead < first:
                    notes = [i for i in range(lead, first) if _is_comment(copies[rel][i])]
                    comment = "".join(copies[rel][i] for i in notes)
                    blank += [(i, i) for i in notes]
                elif language.name == "python":
                    body = inner.child_by_field_name("body")
                    head = body.named_children[0] if body and body.named_children else None
                    if (
                        head is not None
                        and head.type == "expression_statement"
                        and head.named_children
                        and head.named_children[0].type == "string"
                        and len(body.named_children) > 1  # the body stays valid blanked
                    ):
                        comment = head.text.decode("utf-8", "replace")
                        blank.append((head.start_point[0], head.end_point[0]))
                summary = _summary(comment) if comment else ""
                if summary:
                    found.append((rel, lead, last, summary, blank))
    found.sort()
    step = max(1, len(found) // per_project) if found else 1
    chosen = found[::step][:per_project]
    for rel, _, _, _, blank in chosen:
        for a, b in blank:
            for i in range(a, b + 1):
                copies[rel][i] = "\n"
    for rel, lines in copies.items():
        out = target / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("".join(lines), encoding="utf-8")
    return [
        Question("docstring", summary, ((rel, lead + 1, last + 1),))
        for rel, lead, last, summary, _ in chosen
    ]


# ----------------------------------------------------------------------------- systems
@dataclass
class Run:
    """One system's answers on one project: hits per question and per variant."""

    index_seconds: float
    hits: dict[str, list[list[Span]]]  # variant -> hits per question
    query_ms: list[float]


def hits_of(found: Iterable[object], folder: Path) -> list[Span]:
    """Return store hits as spans (path relative to the project)."""
    spans = []
    for hit in found:
        meta = hit.metadata  # type: ignore[attr-defined]
        spans.append(
            (relative(meta["source"], folder), int(meta["line_start"]), int(meta["line_end"]))
        )
    return spans


def run_ours(folder: Path, questions: Sequence[Question], embedder: object, ablate: bool) -> Run:
    """Index a project with llamaembed and answer every question, with the ablation rows."""
    from llamaembed import Index
    from llamaembed.code.ranking import CodeRanking
    from llamaembed.store.ingest import ingest_files
    from llamaembed.store.keywords import every_word

    index = Index(embedder)  # type: ignore[arg-type]
    start = time.perf_counter()
    ingest_files(index, embedder, [folder])  # type: ignore[arg-type]
    seconds = time.perf_counter() - start
    default = CodeRanking()
    variants: dict[str, Callable[[str], list[object]]] = {
        "default": lambda q: index.search(q, 10),
    }
    if ablate:
        variants["hybrid, no code rules"] = lambda q: index.search(q, 10, ranking=None)
        variants["dense alone"] = lambda q: index.search(q, 10, hybrid=False, ranking=None)
        variants["its BM25 side alone"] = lambda q: _bm25_side(index, every_word(q))
        for rule in default.__dataclass_fields__:
            if getattr(default, rule):
                variants[f"without {rule}"] = lambda q, r=rule: index.search(
                    q, 10, ranking=default.without(r)
                )
        decayed = replace(default, file_decay=0.02)  # off by default: measured here
        variants["with file_decay 0.02"] = lambda q: index.search(q, 10, ranking=decayed)
    hits: dict[str, list[list[Span]]] = {name: [] for name in variants}
    times = []
    for question in questions:
        for name, search in variants.items():
            began = time.perf_counter()
            found = search(question.text)
            if name == "default":
                times.append((time.perf_counter() - began) * 1000)
            hits[name].append(hits_of(found, folder))
    return Run(seconds, hits, times)


def run_bm25_alone(folder: Path, questions: Sequence[Question], embedder: object) -> Run:
    """Return BM25-alone answers (bm25s) over our passages of the project."""
    from llamaembed import Index
    from llamaembed.store.ingest import ingest_files

    index = Index(embedder, keywords="none")  # type: ignore[arg-type]
    ingest_files(index, embedder, [folder])  # type: ignore[arg-type]
    start = time.perf_counter()
    passages = [(meta, text) for text, meta in _passages(index)]
    hits, times = run_bm25s(passages, questions, folder)
    return Run(time.perf_counter() - start, {"bm25s": hits}, times)


def _passages(index: object) -> list[tuple[str, dict]]:
    table = index.table  # type: ignore[attr-defined]
    labels = [int(x) for x in table.labels()]
    rows = table.rows(labels)
    from llamaembed.store.search import stored_metadata

    return [(rows[lab][1], stored_metadata(rows[lab][2])) for lab in labels]


def _bm25_side(index: object, words: set[str]) -> list[object]:
    matches = index.table.keyword_search(words, 10, None)  # type: ignore[attr-defined]
    found = index.hits_by_label(matches)  # type: ignore[attr-defined]
    return [found[lab] for lab, _ in matches if lab in found]


def run_bm25s(
    passages: Sequence[tuple[dict, str]], questions: Sequence[Question], folder: Path
) -> tuple[list[list[Span]], list[float]]:
    """Return BM25-alone hits (bm25s, default tokeniser) over the given passages."""
    import bm25s

    corpus = [text for _, text in passages]
    retriever = bm25s.BM25()
    retriever.index(
        bm25s.tokenize(corpus, stopwords="en", show_progress=False), show_progress=False
    )
    out, times = [], []
    for question in questions:
        began = time.perf_counter()
        tokens = bm25s.tokenize([question.text], stopwords="en", show_progress=False)
        k = min(10, len(corpus))
        try:
            docs, _ = retriever.retrieve(tokens, k=k, show_progress=False)
            order = [int(i) for i in docs[0]]
        except (ValueError, IndexError):
            order = []
        times.append((time.perf_counter() - began) * 1000)
        spans = []
        for i in order:
            meta = passages[i][0]
            spans.append(
                (relative(meta["source"], folder), int(meta["line_start"]), int(meta["line_end"]))
            )
        out.append(spans)
    return out, times


def run_ripgrep(folder: Path, questions: Sequence[Question]) -> Run:
    """Return ripgrep's answers in both modes: regex (``rg -i -e w``) and ``-F -w``."""
    regex = _ripgrep(folder, questions, fixed=False)
    fixed = _ripgrep(folder, questions, fixed=True)
    return Run(
        0.0,
        {"ripgrep": regex.hits["ripgrep"], "ripgrep -F -w": fixed.hits["ripgrep"]},
        regex.query_ms,
    )


def _ripgrep(folder: Path, questions: Sequence[Question], fixed: bool) -> Run:
    """Return files ranked by how many distinct question words they hold, at their best line.

    ``fixed``: each word a fixed string matched as a whole word (``-F -w``); else a
    case-insensitive regex per word, matching inside identifiers too.
    """
    from llamaembed.store.keywords import STOPWORDS

    hits, times = [], []
    for question in questions:
        words = sorted({w.lower() for w in re.findall(r"\w+", question.text)} - STOPWORDS)
        words = [w for w in words if len(w) > 2]
        began = time.perf_counter()
        args = ["rg", "-i", "-n", "--no-heading", "--with-filename"]
        args += ["-F", "-w"] if fixed else []
        for w in words:
            args += ["-e", w if fixed else re.escape(w)]
        out = subprocess.run([*args, str(folder)], capture_output=True, text=True).stdout
        times.append((time.perf_counter() - began) * 1000)
        files: dict[str, dict[int, set[str]]] = {}
        for line in out.splitlines():
            parts = line.split(":", 2)
            if len(parts) < 3 or not parts[1].isdigit():
                continue
            found = {w for w in words if w in parts[2].lower()}
            files.setdefault(parts[0], {})[int(parts[1])] = found
        ranked = sorted(
            files.items(),
            key=lambda item: (-len(set().union(*item[1].values())), -len(item[1])),
        )
        spans = []
        for path, lines in ranked[:10]:
            best = max(lines, key=lambda n: len(lines[n]))
            spans.append((relative(path, folder), max(1, best - 10), best + 10))
        hits.append(spans)
    return Run(0.0, {"ripgrep": hits}, times)


def run_semble(folder: Path, questions: Sequence[Question], model: Path) -> Run:
    """Return semble's answers (its index and search, a Model2Vec model of MiniLM)."""
    from semble import SembleIndex

    start = time.perf_counter()
    index = SembleIndex.from_path(folder, model_path=str(model))
    seconds = time.perf_counter() - start
    hits, times = [], []
    for question in questions:
        began = time.perf_counter()
        results = index.search(question.text, top_k=10)
        times.append((time.perf_counter() - began) * 1000)
        hits.append(
            [
                (relative(r.chunk.file_path, folder), r.chunk.start_line, r.chunk.end_line)
                for r in results
            ]
        )
    return Run(seconds, {"semble": hits}, times)


_BEFORE_SCRIPT = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
import llamaembed
assert llamaembed.__file__.startswith(sys.argv[1]), llamaembed.__file__
from llamaembed import Index
from llamaembed.hub.spec import resolve_model
from llamaembed.store.ingest import ingest_files
model = resolve_model(None).open()
out = {}
for folder, questions in json.loads(sys.stdin.read()):
    index = Index(model)
    start = time.perf_counter()
    ingest_files(index, model, [folder])
    seconds = time.perf_counter() - start
    hits, times = [], []
    for q in questions:
        began = time.perf_counter()
        found = index.search(q, 10)
        times.append((time.perf_counter() - began) * 1000)
        hits.append([(h.metadata["source"], h.metadata["line_start"], h.metadata["line_end"])
                     for h in found])
    out[folder] = [seconds, hits, times]
print(json.dumps(out))
"""


def run_before(projects: Sequence[tuple[Path, Sequence[Question]]], commit: str) -> dict[Path, Run]:
    """Return llamaembed's answers at an earlier commit (a git worktree), per project."""
    worktree = ROOT / ".cache" / "bench" / f"before-{commit}"
    if not worktree.exists():
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(worktree), commit],
            check=True,
            capture_output=True,
        )
    payload = json.dumps([(str(f), [q.text for q in qs]) for f, qs in projects])
    out = subprocess.run(
        [sys.executable, "-c", _BEFORE_SCRIPT, str(worktree)],
        input=payload,
        capture_output=True,
        text=True,
        check=True,
        cwd=tempfile.gettempdir(),
    ).stdout
    results = json.loads(out.strip().splitlines()[-1])
    runs = {}
    for folder, _ in projects:
        seconds, hits, times = results[str(folder)]
        spans = [[(relative(p, folder), a, b) for p, a, b in h] for h in hits]
        runs[folder] = Run(seconds, {"before": spans}, times)
    return runs


def semble_model() -> Path:
    """Return a Model2Vec model distilled by model2vec itself from all-MiniLM-L6-v2."""
    from prepare import CACHE, minilm_folder

    folder = CACHE / "m2v-minilm"
    if not (folder / "model.safetensors").exists():
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from model2vec.distill import distill

        distill(str(minilm_folder()), pca_dims=256).save_pretrained(str(folder))
    return folder


def static_model() -> object:
    """Return llamaembed's static tier distilled from the default model."""
    from prepare import CACHE

    from llamaembed import StaticModel, distill
    from llamaembed.hub.spec import resolve_model

    folder = CACHE / "static-minilm"
    if not (folder / "model.safetensors").exists():
        teacher = resolve_model(None).open()
        distill(teacher, folder)
        teacher.close()
    return StaticModel(folder)


# ----------------------------------------------------------------------------- tables
@dataclass
class Scores:
    """Per-question scores of one system, with each question's project, language, kind."""

    rows: list[tuple[str, str, str, float, float, float]]  # project, language, kind, n, s, r

    def mean(self, where: Callable[[tuple], bool] = lambda r: True) -> tuple[float, float, float]:
        picked = [r for r in self.rows if where(r)]
        if not picked:
            return (0.0, 0.0, 0.0)
        return tuple(statistics.fmean(r[i] for r in picked) for i in (3, 4, 5))  # type: ignore[return-value]


def evaluate(
    runs: dict[str, dict[str, Run]],
    questions: dict[str, list[Question]],
    languages: dict[str, str],
) -> dict[str, Scores]:
    """Return each system variant's scores over every project's questions."""
    scores: dict[str, Scores] = {}
    for project, by_system in runs.items():
        for run in by_system.values():
            for variant, hits in run.hits.items():
                rows = scores.setdefault(variant, Scores([])).rows
                for q, found in zip(questions[project], hits, strict=True):
                    n, s, r = score(found, q.targets)
                    rows.append((project, languages[project], q.kind, n, s, r))
    return scores


def tables(
    scores: dict[str, Scores],
    runs: dict[str, dict[str, Run]],
    order: Sequence[str],
    projects: Sequence[str],
) -> str:
    """Return the Markdown tables: systems, kinds, languages, projects."""
    kinds = ("behaviour", "design", "symbol")
    written = lambda row: row[2] in kinds  # noqa: E731 (the questions written by hand)
    languages = sorted({r[1] for s in scores.values() for r in s.rows})
    timing: dict[str, str] = {}  # "index s | query p50 ms" of the systems timed
    for name in order:
        system = {"default": "ours", "ripgrep -F -w": ""}.get(name, name)
        timed = [runs[p][system] for p in projects if system in runs[p]]
        ms = [t for run in timed for t in run.query_ms]
        seconds = sum(run.index_seconds for run in timed)
        timing[name] = f"{seconds:.1f} | {statistics.median(ms):.1f}" if ms else "— | —"
    lines = [
        "| system | NDCG@10 | success@1 | MRR | "
        + " | ".join(kinds)
        + " | docstrings | index s (all) | query p50 ms |",
        "|---|---|---|---|" + "---|" * len(kinds) + "---|---|---|",
    ]
    for name in order:
        if name not in scores:
            continue
        n, s, r = scores[name].mean(written)
        per_kind = [
            scores[name].mean(lambda row, k=k: row[2] == k)[0] for k in (*kinds, "docstring")
        ]
        lines.append(
            f"| {name} | {n:.3f} | {s:.2f} | {r:.3f} | "
            + " | ".join(f"{v:.3f}" for v in per_kind)
            + f" | {timing[name]} |"
        )
    lines += ["", "NDCG@10 per language:", ""]
    lines.append("| system | " + " | ".join(languages) + " |")
    lines.append("|---|" + "---|" * len(languages))
    for name in order:
        if name in scores:
            values = [
                scores[name].mean(lambda row, lang=lang: row[1] == lang and written(row))[0]
                for lang in languages
            ]
            lines.append(f"| {name} | " + " | ".join(f"{v:.3f}" for v in values) + " |")
    lines += ["", "NDCG@10 per project:", ""]
    lines.append("| system | " + " | ".join(projects) + " |")
    lines.append("|---|" + "---|" * len(projects))
    for name in order:
        if name in scores:
            values = [scores[name].mean(lambda row, p=p: row[0] == p)[0] for p in projects]
            lines.append(f"| {name} | " + " | ".join(f"{v:.3f}" for v in values) + " |")
    return "\n".join(lines)


def merge_runs(path: Path, runs: dict[str, dict[str, Run]]) -> dict[str, dict[str, Run]]:
    """Return the runs saved at ``path`` updated with these, and save the result there."""
    saved: dict[str, dict[str, Run]] = {}
    if path.exists():
        for project, systems in json.loads(path.read_text()).items():
            saved[project] = {
                name: Run(
                    r["index_seconds"],
                    {k: [[tuple(s) for s in h] for h in v] for k, v in r["hits"].items()},
                    r["query_ms"],
                )
                for name, r in systems.items()
            }
    for project, systems in runs.items():
        saved.setdefault(project, {}).update(systems)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({p: {n: vars(r) for n, r in s.items()} for p, s in saved.items()}))
    return {p: saved[p] for p in runs}


def machine() -> str:
    """Return the CPU's lscpu family, model and the flags that matter here."""
    info = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    fields = dict(
        (k.strip(), v.strip())
        for k, v in (ln.split(":", 1) for ln in info.splitlines() if ":" in ln)
    )
    flags = set(fields.get("Flags", "").split())
    shown = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile") if f in flags]
    return (
        f"{fields.get('Model name', platform.processor())}, family {fields.get('CPU family')}, "
        f"model {fields.get('Model')}, {os.cpu_count()} cores, flags {' '.join(shown)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--projects", default="", help="comma-separated names (default: all)")
    parser.add_argument(
        "--systems",
        default="ours,before,static,m2v,semble,bm25s,ripgrep",
        help="comma-separated",
    )
    parser.add_argument("--before", default=BEFORE, help="the commit 'before' runs")
    parser.add_argument(
        "--no-docstrings", action="store_true", help="skip the generated docstring questions"
    )
    parser.add_argument(
        "--runs",
        type=Path,
        default=None,
        help="JSON file of the systems' answers: systems run now are added to it, and the "
        "tables cover every system it holds (so one system can be rerun alone)",
    )
    parser.add_argument(
        "--write", action="store_true", help="put the tables in benchmarks/README.md"
    )
    args = parser.parse_args()
    wanted = set(filter(None, args.projects.split(",")))
    systems = set(args.systems.split(","))
    chosen: list[Project] = [p for p in PROJECTS if not wanted or p.name in wanted]
    questions = {p.name: load_questions(QUESTIONS / f"{p.name}.jsonl") for p in chosen}
    folders = {p.name: CORPUS / p.name for p in chosen}
    missing = [n for n, f in folders.items() if not f.is_dir()]
    if missing:
        raise SystemExit(f"run benchmarks/code_corpus.py first (missing: {', '.join(missing)})")
    languages = {p.name: p.language for p in chosen}
    if not args.no_docstrings:  # each project's copy without doc comments, and its questions
        for project in chosen:
            copy = CORPUS.parent / "code-nodoc" / project.name
            shutil.rmtree(copy, ignore_errors=True)
            doc = f"{project.name}~doc"
            questions[doc] = docstring_questions(project.name, folders[project.name], copy)
            folders[doc] = copy
            languages[doc] = project.language
    runs: dict[str, dict[str, Run]] = {name: {} for name in questions}
    if "before" in systems:
        before = run_before([(folders[n], questions[n]) for n in runs], args.before)
        for name in runs:
            runs[name]["before"] = before[folders[name]]
        print("before: done", file=sys.stderr)
    if "ours" in systems:
        from llamaembed.hub.spec import resolve_model

        model = resolve_model(None).open()
        for name in runs:
            runs[name]["ours"] = run_ours(folders[name], questions[name], model, ablate=True)
            print(f"ours: {name} {runs[name]['ours'].index_seconds:.1f}s", file=sys.stderr)
        model.close()
    if "static" in systems:
        static = static_model()
        for name in runs:
            run = run_ours(folders[name], questions[name], static, ablate=False)
            run.hits = {"static tier (ours)": run.hits["default"]}
            runs[name]["static tier (ours)"] = run
    if "m2v" in systems:  # our passages and ranking with semble's very model
        from llamaembed import StaticModel

        same = StaticModel(semble_model())
        for name in runs:
            run = run_ours(folders[name], questions[name], same, ablate=False)
            run.hits = {"ours with semble's model": run.hits["default"]}
            runs[name]["ours with semble's model"] = run
    if "semble" in systems:
        model_path = semble_model()
        for name in runs:
            runs[name]["semble"] = run_semble(folders[name], questions[name], model_path)
    if "bm25s" in systems:  # over the static tier's passages: the same cut, quickly
        static = static_model()
        for name in runs:
            runs[name]["bm25s"] = run_bm25_alone(folders[name], questions[name], static)
    if "ripgrep" in systems:
        for name in runs:
            runs[name]["ripgrep"] = run_ripgrep(folders[name], questions[name])
    if args.runs is not None:
        runs = merge_runs(args.runs, runs)
    scores = evaluate(runs, questions, languages)
    order = [
        "default",
        "semble",
        "before",
        "static tier (ours)",
        "ours with semble's model",
        "dense alone",
        "its BM25 side alone",
        "bm25s",
        "ripgrep",
        "ripgrep -F -w",
        "hybrid, no code rules",
        *sorted(n for n in scores if n.startswith(("without ", "with "))),
    ]
    report = tables(scores, runs, order, [p.name for p in chosen])
    shown = f" --projects {args.projects}" if args.projects else ""
    total = sum(len(q) for n, q in questions.items() if "~" not in n)
    generated = sum(len(q) for n, q in questions.items() if "~" in n)
    header = (
        f"{len(chosen)} projects, {total} written questions and {generated} docstring "
        f"questions; {machine()}; "
        f"`python benchmarks/code_search.py{shown}`"
    )
    print(header + "\n\n" + report)
    if args.write:
        readme = HERE / "README.md"
        text = readme.read_text(encoding="utf-8")
        begin, end = "<!-- code-search:begin -->", "<!-- code-search:end -->"
        block = f"{begin}\n{header}\n\n{report}\n{end}"
        if begin in text:
            text = re.sub(
                re.escape(begin) + ".*?" + re.escape(end), lambda m: block, text, flags=re.S
            )
        else:
            text += f"\n## Code search on real projects\n\n{block}\n"
        readme.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
