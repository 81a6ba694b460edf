"""Code as code: syntax passages in 21 grammars, identifier words, ranking rules (no model)."""

from __future__ import annotations

import re

import pytest
from code_samples import DEFINED, SAMPLES

from llamaembed.code.identifiers import code_words, identifier_parts, is_identifier_like
from llamaembed.code.languages import LANGUAGES, language_for, parser_for
from llamaembed.code.passages import _nearest_definitions, code_spans
from llamaembed.code.ranking import (
    CodeRanking,
    asks_for_tests,
    asks_how_to,
    code_priors,
    is_reexport_file,
    is_test_file,
    named_symbols,
    query_kind,
)
from llamaembed.store.chunking import chunk_document
from llamaembed.store.keywords import every_word, keyword_text


def words(text: str) -> int:
    return len(text.split())


def line_costs(text: str) -> list[int]:
    return [words(line) for line in text.splitlines()]


def test_every_sample_language_has_a_grammar_and_a_suffix() -> None:
    assert len(LANGUAGES) >= 21
    for name, (suffix, _) in SAMPLES.items():
        language = language_for(f"file.{suffix}")
        assert language is not None and language.name == name
        assert parser_for(language) is not None, name
    assert language_for("notes.unknown") is None
    assert language_for("Rakefile") is not None


@pytest.mark.parametrize("name", sorted(SAMPLES))
@pytest.mark.parametrize("budget", [6, 40, 400])
def test_passages_follow_the_syntax(name: str, budget: int) -> None:
    suffix, source = SAMPLES[name]
    language = language_for(f"x.{suffix}")
    assert language is not None
    lines = source.splitlines()
    spans = code_spans(source, language, line_costs(source), budget)
    assert spans, name
    # every non-blank line in exactly one passage, in order, passages never overlap
    held = [0] * len(lines)
    for span in spans:
        assert 0 <= span.first <= span.last < len(lines)
        assert lines[span.first].strip() and lines[span.last].strip()  # no blank edges
        for i in range(span.first, span.last + 1):
            held[i] += 1
    assert all(held[i] == 1 for i, line in enumerate(lines) if line.strip()), held
    assert [s.first for s in spans] == sorted(s.first for s in spans)
    # every top-level definition lies in one passage or a run of passages that belong to it
    tree = parser_for(language).parse(source.encode())
    for outer, _inner in _nearest_definitions(tree.root_node, language):
        first, last = outer.start_point[0], outer.end_point[0]
        touching = [s for s in spans if s.first <= last and first <= s.last]
        assert touching
        inside = [s for s in touching if not (s.first <= first and s.last >= last)]
        if len(touching) == 1:
            assert not inside or touching[0].first >= first  # whole, or all of it there is
        else:
            # a run: no passage starts inside the definition unless it is part of it
            for span in touching[1:]:
                assert span.first > first
                assert span.path, (name, span)
    if budget == 6:  # small enough that every container is cut into its members
        defined = {n for s in spans for n in s.defines}
        assert DEFINED[name] <= defined, (name, DEFINED[name] - defined)


def test_a_long_function_is_cut_between_statements_each_piece_led_by_its_signature() -> None:
    body = "\n".join(f"    total = total + compute_value({i}, factor)" for i in range(60))
    source = f"import os\n\n\ndef accumulate(factor):\n    total = 0\n{body}\n    return total\n"
    language = language_for("a.py")
    assert language is not None
    spans = code_spans(source, language, line_costs(source), 60)
    pieces = [s for s in spans if s.path == ("accumulate",)]
    assert len(pieces) > 3
    assert pieces[0].signature == "" and pieces[0].first == 3
    assert all(p.signature == "def accumulate(factor):" for p in pieces[1:])
    assert pieces[-1].last == len(source.splitlines()) - 1


def test_a_class_too_long_keeps_its_name_in_each_members_path() -> None:
    methods = "\n\n".join(
        f"    def method_{i}(self):\n        return self.value * {i} + other_value({i})"
        for i in range(12)
    )
    source = f'class Engine:\n    """Runs."""\n\n    value = 1\n\n{methods}\n'
    spans = code_spans(source, language_for("e.py"), line_costs(source), 30)  # type: ignore[arg-type]
    assert spans[0].path == ("Engine",) and spans[0].first == 0
    assert all(s.path[0] == "Engine" for s in spans)
    defined = {n for s in spans for n in s.defines} - {"Engine"}
    assert defined == {f"method_{i}" for i in range(12)}


def test_chunk_document_gives_exact_lines_and_falls_back_on_a_parse_error() -> None:
    source = SAMPLES["go"][1]
    chunks = chunk_document(source, words, 40, prose=False, language=language_for("m.go"))
    lines = source.splitlines(keepends=True)
    for chunk in chunks:
        assert chunk.text == "".join(lines[chunk.line_start - 1 : chunk.line_end]).rstrip()
        assert source[chunk.start : chunk.end] == chunk.text
    assert {c.kind for c in chunks} >= {"function", "type"}
    assert any(c.symbol == "Server" for c in chunks)
    broken = "def ok():\n    return 1\n\ndef broken(:\n    pass\n\nx = [1, 2\n"
    fallback = chunk_document(broken, words, 40, prose=False, language=language_for("b.py"))
    assert all(c.kind == "" for c in fallback)  # cut by lines, as before
    covered = "\n".join(c.text for c in fallback)
    assert all(line in covered for line in broken.splitlines() if line.strip())


def test_a_minified_line_longer_than_the_budget_is_split_between_words() -> None:
    source = "var a = 1; " * 200 + "\n"
    chunks = chunk_document(source, words, 50, prose=False, language=language_for("m.js"))
    assert len(chunks) > 1 and all(words(c.text) <= 50 for c in chunks)
    assert all(c.line_start == c.line_end == 1 for c in chunks)


# ----------------------------------------------------------------------------- identifiers
@pytest.mark.parametrize(
    ("identifier", "parts"),
    [
        ("getUserName", ["get", "user", "name"]),
        ("HTTPServer", ["http", "server"]),
        ("parseJSON2XML", ["parse", "json", "2", "xml"]),
        ("APIRouter", ["api", "router"]),
        ("snake_case_name", ["snake", "case", "name"]),
        ("kebab-case", ["kebab", "case"]),
        ("XMLHttpRequest", ["xml", "http", "request"]),
        ("IOError", ["io", "error"]),
        ("ALL_CAPS", ["all", "caps"]),
        ("größeBerechnen", ["größe", "berechnen"]),
        ("ÉtatInitial", ["état", "initial"]),
        ("__init__", ["init"]),
        ("plain", ["plain"]),
    ],
)
def test_identifier_parts(identifier: str, parts: list[str]) -> None:
    assert identifier_parts(identifier) == parts


def test_code_words_keep_identifiers_whole_and_split_on_both_sides() -> None:
    assert code_words("APIRouter.include_router(x)") == [
        "apirouter",
        "api",
        "router",
        "include_router",
        "include",
        "router",
        "x",
    ]
    # the query side asks with the same words a document is indexed with
    indexed = set(
        keyword_text(
            "class APIRouter:\n    def getUserName(self): ...",
            {"source": "/srv/app/routing/api_router.py"},
        ).split()
    )
    assert {"apirouter", "api", "router", "getusername", "get", "user", "name"} <= indexed
    assert {"routing", "api_router"} <= indexed  # the file path's words count too
    assert every_word("the api router") <= indexed
    assert every_word("getUserName") == {"getusername", "get", "user", "name"}
    assert is_identifier_like("parse_args") and is_identifier_like("HTTPServer")
    assert not is_identifier_like("Server") and not is_identifier_like("router")


# ----------------------------------------------------------------------------- ranking rules
def test_query_kind_and_named_symbols() -> None:
    assert query_kind("TextFormatter") == "identifier"
    assert query_kind("where is parse_args defined") == "identifier"
    assert query_kind("what does src/app.py do") == "identifier"
    assert query_kind("how are redirects followed") == "sentence"
    assert "textformatter" in named_symbols("where is the text formatter")
    assert "textformatter" in named_symbols("TextFormatter")
    assert "send" in named_symbols("what does Router::send do")


def test_path_rules() -> None:
    assert is_test_file("pkg/tests/test_client.py") and is_test_file("src/app.test.ts")
    assert is_test_file("cmd/root_test.go") and is_test_file("examples/demo.py")
    assert is_test_file("web/vendor/lib.js") and is_test_file("api/types_pb2.py")
    assert not is_test_file("src/testing_utils_impl/contest.py".replace("testing_", "t_"))
    assert is_reexport_file("pkg/__init__.py") and is_reexport_file("src/index.ts")
    assert is_reexport_file("src/mod.rs") and not is_reexport_file("src/client.rs")
    assert asks_for_tests("where is the client tested") and not asks_for_tests("client retries")


def meta(source: str, defines: tuple[str, ...] = (), language: str = "python") -> dict:
    return {"source": source, "defines": list(defines), "language": language}


def ranked(text: str, candidates: list[tuple[float, dict]], rules: CodeRanking) -> list[int]:
    return [i for i, _ in code_priors(text, candidates, rules)]


def only(rule: str) -> CodeRanking:
    off = CodeRanking.off()
    return CodeRanking(**{**off.__dict__, rule: getattr(CodeRanking(), rule)})


def test_each_ranking_rule_on_a_handmade_list() -> None:
    use = (0.60, meta("app/views.py", ("render_page",)))
    definition = (0.56, meta("app/formatting.py", ("TextFormatter",)))
    assert ranked("where is TextFormatter", [use, definition], only("definition")) == [1, 0]
    assert ranked("where is TextFormatter", [use, definition], CodeRanking.off()) == [0, 1]
    test = (0.60, meta("tests/test_client.py", ("test_retry",)))
    impl = (0.58, meta("client/retry.py", ("retry",)))
    assert ranked("how are retries done", [test, impl], only("test_files")) == [1, 0]
    assert ranked("how are retries tested", [test, impl], only("test_files")) == [0, 1]
    reexport = (0.60, meta("pkg/__init__.py"))
    assert ranked("client", [reexport, impl], only("reexports")) == [1, 0]
    same = [
        (0.70, meta("a.py", ("f",))),
        (0.69, meta("a.py", ("g",))),
        (0.68, meta("a.py", ("h",))),
        (0.675, meta("b.py", ("i",))),
    ]
    decay = CodeRanking(**{**CodeRanking.off().__dict__, "file_decay": 0.02})
    assert ranked("x", same, decay) == [0, 1, 3, 2]  # a file's third passage decays
    assert ranked("x", same, CodeRanking()) == [0, 1, 2, 3]  # off by default
    support = [
        (0.60, meta("lone.py")),
        (0.59, meta("many.py")),
        (0.40, meta("many.py")),
        (0.39, meta("many.py")),
    ]
    assert ranked("x", support, only("file_support"))[0] == 1
    # prose: only file support applies (a file with several candidates, code or not)
    prose = [(0.70, {"source": "README.md"}), (0.69, {"source": "README.md"})]
    tests = [(0.70, {"source": "tests/guide.md"}), (0.50, {"source": "tests/guide.md"})]
    adjusted = dict(code_priors("x", prose, CodeRanking()))
    assert adjusted == pytest.approx({0: 0.70 + 0.02 / 3, 1: 0.69 + 0.02 / 3})
    plain = dict(code_priors("where is Circle", tests, CodeRanking().without("file_support")))
    assert plain == pytest.approx({0: 0.70, 1: 0.50})  # no test penalty, no definition bonus


def test_a_how_to_question_puts_the_docs_before_code_as_good() -> None:
    candidates = [
        (0.70, meta("app/store.py", ("save",))),
        (0.60, {"source": "docs/guide.md", "heading": "Saving"}),
        (0.65, {"source": "settings.toml"}),  # neither code nor prose: no bonus
    ]
    rules = only("how_to_docs")
    assert ranked("how do I save the store", candidates, rules) == [1, 0, 2]
    adjusted = dict(code_priors("How can I save the store?", candidates, rules))
    assert adjusted[1] == pytest.approx(0.60 + CodeRanking().how_to_docs)
    assert adjusted[0] == pytest.approx(0.70) and adjusted[2] == pytest.approx(0.65)
    # a question about how the code works, or written as code, leaves the docs alone
    for text in ("how does the store save", "where is save defined", "save_store"):
        assert ranked(text, candidates, rules) == [0, 2, 1], text
    assert ranked("how do I save the store", candidates, CodeRanking.off()) == [0, 2, 1]


@pytest.mark.parametrize(
    ("text", "how_to"),
    [
        ("how do I rerank search results", True),
        ("How can we run it on a GPU?", True),
        ("how to quantise a model", True),
        ("can I use a corpus", True),
        ("is there a LlamaIndex class", True),
        ("where should I put the config", True),
        ("how does the parser recover from errors", False),
        ("how is a request retried", False),
        ("where is TextFormatter defined", False),
        ("which headers are dropped", False),
        ("show how do I", False),
    ],
)
def test_asks_how_to(text: str, how_to: bool) -> None:
    assert asks_how_to(text) is how_to


def test_identifier_queries_weigh_the_word_side_up() -> None:
    from llamaembed.store.keywords import KeywordSide
    from llamaembed.store.search import weighted_sides

    side = KeywordSide({"textformatter"}, 0.04, 5.0)
    assert weighted_sides([side], "TextFormatter", CodeRanking())[0].weight == 0.2
    assert weighted_sides([side], "how is text formatted", CodeRanking())[0].weight == 0.04
    assert weighted_sides([side], "TextFormatter", None)[0].weight == 0.04


def test_the_rules_are_off_only_when_asked() -> None:
    assert CodeRanking().without("definition").definition == 0
    assert all(v == 0 for v in CodeRanking.off().__dict__.values())
    assert re.fullmatch(r"\d+\.\d+", f"{CodeRanking().definition}")
