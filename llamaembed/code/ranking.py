"""Ranking priors for code: what a developer means when searching source, as pure rules.

Each rule is one field of :class:`CodeRanking` (0 turns it off), measured on its own in
``benchmarks/code_search.py``'s ablation table:

- ``identifier_keywords``: a query that names code (``TextFormatter``, ``parse_args``,
  ``src/app.py``) weighs the keyword side this much instead of the sentence weight;
- ``definition``: a passage that *defines* a symbol the query names (``where is
  TextFormatter`` or "text formatter") gains this much over the passages that use it;
- ``test_files`` / ``reexports``: passages of tests, examples, vendored or generated
  files, and re-export files' passages that define nothing (``__init__.py``,
  ``index.ts``, ``mod.rs``), lose this much, unless the query asks for tests or examples;
- ``file_decay``: past a file's first ``FREE_PASSAGES`` passages in the ranking, each
  later one loses this much more, so a question whose answer spans files reaches the
  second file (off by default: it cost NDCG@10 at every weight measured);
- ``file_support``: a file with several passages among the candidates gains up to this
  much (a file that is about the question beats one lucky passage); prose files too, so
  the rule does not tilt a mixed index towards code;
- ``how_to_docs``: for a how-to question ("how do I …", "can I …", "is there …"), the
  passages of prose files (Markdown, reStructuredText, text) gain this much: a user asking
  how to do something wants the docs that say it, and code cut by syntax is short and
  named (the model reads ``path › Symbol``), so without it the code outranked the README's
  answer (benchmarks/search_quality.py's readme set: MRR@10 0.654 before code passages,
  0.607 with them and no rule, 0.689 with it). Questions about how the code works ("how
  does …", "where is …") are left alone.

The rules but ``file_support`` and ``how_to_docs`` touch only passages that carry a
``language`` in their metadata (code). Scores are cosines plus keyword bonuses, so the
weights are fractions of a cosine.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import PurePosixPath
from typing import Any

from .identifiers import identifier_parts, is_identifier_like
from .languages import is_prose

__all__ = [
    "CodeRanking",
    "asks_for_tests",
    "asks_how_to",
    "code_priors",
    "is_reexport_file",
    "is_test_file",
    "named_symbols",
    "query_kind",
]

FREE_PASSAGES = 2
"""Passages of one file that ``file_decay`` leaves alone (the third and later decay)."""

_TOKEN = re.compile(r"[\w./:-]+", re.UNICODE)
_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class CodeRanking:
    """The code ranking rules' weights; ``CodeRanking.off()`` turns every rule off."""

    # chosen on benchmarks/code_search.py (13 third-party projects, 8 languages): see its
    # ablation table; file_decay cost NDCG@10 at every weight tried, so it is off;
    # how_to_docs: the least weight at which search_quality.py's readme set is no worse
    # than before code passages on MRR@10 and success@1 (0.654 / 0.54; 0.1: 0.668 / 0.52,
    # 0.12: 0.689 / 0.56, 0.15: 0.702 / 0.57); a rule for every sentence query instead
    # needed 0.05 and cost the code benchmark's design questions
    identifier_keywords: float = 0.2
    definition: float = 0.08
    test_files: float = 0.05
    reexports: float = 0.03
    file_decay: float = 0.0
    file_support: float = 0.02
    how_to_docs: float = 0.12

    @classmethod
    def off(cls) -> CodeRanking:
        """Return rules that change nothing."""
        return cls(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)

    def without(self, rule: str) -> CodeRanking:
        """Return these rules with one turned off (for an ablation)."""
        return replace(self, **{rule: 0.0})


def query_kind(text: str) -> str:
    """Return "identifier" for a query that names code (an identifier or a path), else "sentence".

    A token written as code (``getUserName``, ``parse_args``, ``HTTPServer``,
    ``a.b``, ``src/app.py``, ``Foo::bar``) makes it an identifier query, and so does a
    query of one word.
    """
    tokens = _TOKEN.findall(text)
    if len(tokens) == 1 and _WORD.search(tokens[0]):
        return "identifier"
    for token in tokens:
        core = token.strip(".:/-")
        if any(sep in core for sep in ("/", "::", ".")) and re.search(r"\w[./:]+\w", core):
            return "identifier"
        if is_identifier_like(core):
            return "identifier"
    return "sentence"


def named_symbols(text: str) -> set[str]:
    """Return the symbol names a query names, normalised (lower-case, no ``_`` or ``-``).

    Tokens written as code (``parse_args``, ``TextFormatter``, the last part of ``a.b`` or
    ``a::b``), capitalised words after the first (``where is Router``), every word of a
    query of one or two words, and each run of two or three neighbouring words joined
    ("text formatter" -> textformatter). A plain word inside a sentence ("how is a request
    sent") names nothing: it would favour every passage defining ``request``.
    """
    names: set[str] = set()
    tokens = _TOKEN.findall(text)
    for n, token in enumerate(tokens):
        core = token.strip(".:/-")
        last = re.split(r"[./:]+", core)[-1] if core else ""
        if not last:
            continue
        named = (
            len(tokens) <= 2
            or is_identifier_like(core)
            or last != core
            or (n > 0 and last[:1].isupper())
        )
        if named:
            names.add(_normal(last))
    words = [w.lower() for w in _WORD.findall(text) if w.lower() not in _QUESTION_WORDS]
    for size in (2, 3):
        for i in range(len(words) - size + 1):
            names.add("".join(words[i : i + size]))
    return {n for n in names if len(n) > 2}


_QUESTION_WORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "is",
        "are",
        "was",
        "were",
        "how",
        "what",
        "where",
        "which",
        "who",
        "why",
        "when",
        "does",
        "do",
        "did",
        "of",
        "in",
        "on",
        "for",
        "to",
        "and",
        "or",
        "with",
        "by",
        "from",
        "it",
        "its",
        "this",
        "that",
        "be",
    ]
)


def _normal(name: str) -> str:
    return "".join(identifier_parts(name))


_TEST_PARTS = frozenset({"test", "tests", "spec", "specs", "__tests__", "testing", "testdata"})
_EXAMPLE_PARTS = frozenset({"example", "examples", "demo", "demos", "samples", "benches"})
_VENDOR_PARTS = frozenset({"vendor", "vendored", "third_party", "node_modules", "generated"})
_TEST_NAME = re.compile(
    r"(^test_.*|.*_test\.\w+$|.*\.(test|spec)\.\w+$|.*_spec\.rb$|^conftest\.py$|.*Tests?\.\w+$)"
)
_GENERATED_NAME = re.compile(r".*(\.min\.js|_pb2\.py|\.pb\.go|\.generated\.\w+|_generated\.\w+)$")
_REEXPORT_NAMES = frozenset({"__init__.py", "index.ts", "index.js", "index.mjs", "mod.rs"})


def is_test_file(path: str) -> bool:
    """Return True for tests, examples, vendored and generated files (by their path)."""
    pure = PurePosixPath(path.replace("\\", "/"))
    folders = {p.lower() for p in pure.parts[:-1]}
    if folders & (_TEST_PARTS | _EXAMPLE_PARTS | _VENDOR_PARTS):
        return True
    return bool(_TEST_NAME.match(pure.name) or _GENERATED_NAME.match(pure.name))


def is_reexport_file(path: str) -> bool:
    """Return True for files that mostly re-export a package (``__init__.py``, ``index.ts``)."""
    return PurePosixPath(path.replace("\\", "/")).name in _REEXPORT_NAMES


def asks_for_tests(text: str) -> bool:
    """Return True when a query asks for tests or examples ("where is X tested")."""
    words = {w.lower() for w in _WORD.findall(text)}
    return bool(
        words
        & {"test", "tests", "tested", "testing", "spec", "specs", "example", "examples", "fixture"}
    )


_HOW_TO = re.compile(
    r"\s*(how (do|can|should|would|could) (i|we|you)|how to|(can|could) (i|we|you)"
    r"|is there|are there|where (do|can|should) (i|we|you))\b",
    re.IGNORECASE,
)


def asks_how_to(text: str) -> bool:
    """Return True for a how-to question: "how do I …", "how to …", "can I …", "is there …"."""
    return bool(_HOW_TO.match(text))


def _defines_named(meta: Mapping[str, Any], names: set[str]) -> bool:
    defines = meta.get("defines") or ()
    for name in defines:
        last = re.split(r"[./:]+", str(name))[-1]
        if _normal(last) in names:
            return True
    return False


def code_priors(
    text: str, candidates: Sequence[tuple[float, Mapping[str, Any]]], ranking: CodeRanking
) -> list[tuple[int, float]]:
    """Return (candidate index, adjusted score) pairs, best first, after the code rules.

    ``candidates`` are (score, metadata) pairs best first (the fused ranking). A
    candidate without ``language`` in its metadata keeps its score, but takes part in the
    ordering. Ties keep the given order.
    """
    scores = [float(score) for score, _ in candidates]
    metas = [meta for _, meta in candidates]
    code = [bool(meta.get("language")) for meta in metas]
    names = named_symbols(text) if ranking.definition else set()
    tests_wanted = asks_for_tests(text)
    prose_bonus = ranking.how_to_docs if ranking.how_to_docs and asks_how_to(text) else 0.0
    by_file: dict[str, list[int]] = {}
    for i, meta in enumerate(metas):
        if meta.get("source") is not None:
            by_file.setdefault(str(meta["source"]), []).append(i)
    adjusted = list(scores)
    for i, meta in enumerate(metas):
        source = str(meta.get("source", ""))
        if ranking.file_support and source in by_file:  # prose files too: no tilt to code
            others = len(by_file[source]) - 1
            adjusted[i] += ranking.file_support * min(others, 3) / 3
        if not code[i]:
            if prose_bonus and is_prose(source):
                adjusted[i] += prose_bonus
            continue
        if names and _defines_named(meta, names):
            adjusted[i] += ranking.definition
        if not tests_wanted and is_test_file(source):
            adjusted[i] -= ranking.test_files
        if is_reexport_file(source) and not meta.get("defines"):
            adjusted[i] -= ranking.reexports
    order = sorted(range(len(adjusted)), key=lambda i: -adjusted[i])
    if not ranking.file_decay:
        return [(i, adjusted[i]) for i in order]
    # greedy: past a file's first FREE_PASSAGES picks, each lowers the rest of its passages
    seen: dict[str, int] = {}
    left = order
    picked: list[tuple[int, float]] = []
    while left:
        best_at, best = 0, None
        for at, i in enumerate(left):
            earlier = seen.get(str(metas[i].get("source")), 0) if code[i] else 0
            value = adjusted[i] - ranking.file_decay * max(0, earlier - FREE_PASSAGES + 1)
            if best is None or value > best:
                best_at, best = at, value
        i = left.pop(best_at)
        picked.append((i, float(best if best is not None else adjusted[i])))
        if code[i]:
            key = str(metas[i].get("source"))
            seen[key] = seen.get(key, 0) + 1
    return picked
