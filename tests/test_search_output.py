"""Search output for people: line-aligned passages, snippets, line ranges, --json, piping."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner

from llamaembed.cli import main
from llamaembed.cli._render import render_hits
from llamaembed.store.chunking import chunk_document
from llamaembed.store.search import Hit
from llamaembed.store.snippet import best_snippet, highlight, query_terms

ROOT = Path(__file__).resolve().parent.parent

GUIDE = """# Garden guide

Intro paragraph about this guide. It is short.

## Watering

Water tomatoes deeply twice a week. Shallow watering makes weak roots.
In hot weeks, water every morning before the sun is high.

Mulch keeps the soil moist between waterings.

## Pruning roses

Prune roses in late winter, just above an outward-facing bud.
Remove dead, diseased and crossing canes first.

```
shears = sharpen(shears)
cut(cane, angle=45)
```

## Compost

A compost heap needs greens (kitchen scraps, grass) and browns (dry leaves, cardboard).
Turn it every two weeks so it stays aerobic and does not smell.
"""

CODE = '''"""Helpers for the garden."""


def water(plant, litres):
    """Give a plant water."""
    plant.soil += litres
    return plant


class Sprinkler:
    """Waters a lawn on a timer."""

    def start(self, minutes):
        self.running = minutes
        return self
'''


def _words(text: str) -> int:
    return max(1, len(text) // 4)


def test_chunk_document_keeps_whole_lines_headings_and_fences() -> None:
    chunks = chunk_document(GUIDE, _words, 64, prose=True)
    lines = GUIDE.splitlines()
    for chunk in chunks:
        # the text is the file's lines line_start..line_end, verbatim
        assert chunk.text == "\n".join(lines[chunk.line_start - 1 : chunk.line_end]).rstrip()
        assert GUIDE[chunk.start : chunk.end] == chunk.text
    by_heading = {c.heading: c for c in chunks}
    assert "Pruning roses" in by_heading and "Garden guide" not in by_heading  # no title
    pruning = by_heading["Pruning roses"]
    assert pruning.text.startswith("## Pruning roses") and "cut(cane, angle=45)\n```" in pruning.text
    assert all(c.text.count("```") % 2 == 0 for c in chunks)  # a fence is never cut
    # each heading starts a passage
    assert [c.heading for c in chunks if c.text.startswith("## ")] == [
        "Watering", "Pruning roses", "Compost"]
    code = chunk_document(CODE, _words, 30, prose=False)
    # passages begin at top-level lines and keep a definition that fits whole
    assert all(not c.text[:1].isspace() for c in code) and len(code) >= 2
    assert any("def water" in c.text and "return plant" in c.text for c in code)
    assert code[-1].text.startswith("class Sprinkler:")
    assert all(c.heading == "" for c in code)


def test_chunk_document_splits_long_blocks_and_lines() -> None:
    block = "\n".join(f"line {i} " + "word " * 10 for i in range(40))
    chunks = chunk_document(block, lambda w: 1, 50, prose=False, overlap=12)
    assert len(chunks) > 5 and all(c.line_end - c.line_start + 1 <= 5 for c in chunks)
    assert chunks[1].line_start <= chunks[0].line_end  # consecutive pieces share lines
    assert chunks[-1].line_end == 40
    long_line = "word " * 300
    pieces = chunk_document(long_line, lambda w: 1, 100, prose=True, overlap=0)
    assert len(pieces) == 3 and all(p.line_start == p.line_end == 1 for p in pieces)
    assert chunk_document("", _words, 10, prose=True) == []
    with pytest.raises(ValueError):
        chunk_document("a", _words, 10, prose=True, overlap=10)


def test_best_snippet_cuts_at_bounds_around_the_match() -> None:
    text = "\n".join(f"filler line number {i} about nothing" for i in range(20))
    text += "\nThe compost heap needs turning. Turn it weekly!\n" + "tail line\n" * 5
    snippet = best_snippet(text, "how often should I turn compost", first_line=100, max_lines=3)
    assert "compost heap" in snippet.text and text[snippet.start : snippet.end] == snippet.text
    assert snippet.line_start == 120 and snippet.line_end <= 122
    assert not snippet.cut_before and not snippet.cut_after
    # a long line is cut between sentences, and says so
    paragraph = " ".join(f"Sentence {i} is filler." for i in range(60)) + " Roses need pruning."
    cut = best_snippet(paragraph, "pruning roses", max_chars=120)
    assert cut.text.endswith("Roses need pruning.") and cut.cut_before and not cut.cut_after
    assert len(cut.text) <= 120
    # no query word anywhere: the scorer decides, else the start
    plain = "alpha beta\n" * 3 + "gamma delta\n" * 3
    assert best_snippet(plain, "zzz", max_lines=2).line_start == 1
    chosen = best_snippet(plain, "zzz", max_lines=2,
                          scorer=lambda texts: [t.count("gamma") for t in texts])
    assert "gamma" in chosen.text and "alpha" not in chosen.text
    assert query_terms("How do I rerank the search results?") == ["rerank", "search", "results"]
    marked = highlight("Reranking search results", "rerank results", lambda w: f"<{w}>")
    assert marked == "<Reranking> search <results>"


def test_render_groups_by_file_and_shows_readable_scores() -> None:
    hits = [
        Hit("a#0", 0.033, "alpha one", {"source": "/x/a.md", "line_start": 3, "line_end": 3}, 0.71),
        Hit("b#0", 0.030, "beta", {"source": "/x/b.py", "line_start": 1, "line_end": 1}, 0.52),
        Hit("a#1", 0.029, "alpha two\nmore", {"source": "/x/a.md", "line_start": 9,
                                              "line_end": 10, "heading": "Intro"}, 0.40),
    ]
    text = render_hits(hits, "alpha", reranker=None, color=False)
    lines = text.splitlines()
    assert lines[0].endswith("a.md") and "[1] line 3 · cosine 0.71" in lines[1]
    assert "[3] lines 9-10 · cosine 0.40 · Intro" in text
    assert text.index("a.md") < text.index("[3]") < text.index("b.py")  # grouped by file
    assert "\x1b[" not in text and "0.033" not in text
    colored = render_hits(hits, "alpha", reranker=None, color=True)
    assert "\x1b[" in colored
    assert render_hits([], "q", reranker=None, color=False) == "no results"
    # a file's own control characters cannot drive the terminal
    hostile = Hit("h", 0.1, "evil \x1b[2J text", {"source": "/x/\x1b]0;t\x07.md"}, 0.3)
    shown = render_hits([hostile], "evil", reranker=None, color=False)
    assert "\x1b" not in shown and "\x07" not in shown and "evil" in shown


@pytest.fixture(scope="module")
def garden(tmp_path_factory: pytest.TempPathFactory, minilm_f16_path: Path) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("garden")
    (folder / "guide.md").write_text(GUIDE)
    (folder / "garden.py").write_text(CODE)
    db = folder / "db"
    result = CliRunner().invoke(
        main, ["index", str(folder), "--db", str(db), "--model", str(minilm_f16_path)]
    )
    assert result.exit_code == 0, result.output
    # piped: a summary line and nothing else, no progress bar, no escape codes
    assert result.stdout.count("\n") == 1 and "indexed 2 files" in result.stdout
    assert "\r" not in result.output and "\x1b" not in result.output
    assert result.stderr == ""
    return folder, db


def test_cli_json_fields_line_ranges_and_snippets(garden: tuple[Path, Path]) -> None:
    _, db = garden
    result = CliRunner().invoke(main, ["search", "when should I prune roses", "--db", str(db),
                                       "--json", "-k", "4"])
    assert result.exit_code == 0, result.output
    records = json.loads(result.stdout)
    assert records[0]["source"].endswith("guide.md") and records[0]["heading"] == "Pruning roses"
    for record in records:
        assert set(record) >= {"rank", "id", "source", "line_start", "line_end", "heading",
                               "score", "similarity", "relevance", "snippet", "text", "metadata"}
        lines = Path(record["source"]).read_text().splitlines()
        span = "\n".join(lines[record["line_start"] - 1 : record["line_end"]])
        assert span.rstrip() == record["text"]
        snippet = record["snippet"]
        assert record["line_start"] <= snippet["line_start"] <= snippet["line_end"]
        assert snippet["line_end"] <= record["line_end"]
        window = "\n".join(lines[snippet["line_start"] - 1 : snippet["line_end"]])
        assert snippet["text"] in window and snippet["text"].strip()
        assert record["relevance"] is None and 0 < record["similarity"] <= 1.0001
    first = records[0]["snippet"]["text"]
    assert "Prune roses in late winter" in first


def test_cli_text_output_piped_and_reranked(garden: tuple[Path, Path],
                                             tiny_reranker_path: Path) -> None:
    folder, db = garden
    result = CliRunner().invoke(main, ["search", "turning the compost heap", "--db", str(db)])
    assert result.exit_code == 0 and "\x1b" not in result.stdout
    lines = result.stdout.splitlines()
    assert lines[0] == str(folder / "guide.md") or lines[0].endswith("guide.md")
    assert lines[1].lstrip().startswith("[1] lines ") and "cosine" in lines[1]
    assert any("Turn it every two weeks" in line for line in lines[2:8])
    reranked = CliRunner().invoke(main, ["search", "compost", "--db", str(db), "--json",
                                         "--rerank", str(tiny_reranker_path)])
    records = json.loads(reranked.stdout)
    scores = [r["score"] for r in records]
    assert scores == sorted(scores, reverse=True)
    for record in records:  # relevance is the cross-encoder's probability
        assert record["relevance"] == pytest.approx(1 / (1 + math.exp(-record["score"])))
    text = CliRunner().invoke(main, ["search", "compost", "--db", str(db),
                                     "--rerank", str(tiny_reranker_path)]).stdout
    assert "relevance" in text and "cosine" in text


def test_cli_milvus_store(tmp_path: Path, garden: tuple[Path, Path], minilm_f16_path: Path) -> None:
    pytest.importorskip("milvus_lite")
    folder, _ = garden
    store = str(tmp_path / "garden.db")
    made = CliRunner().invoke(main, ["index", str(folder / "guide.md"), "--store", store,
                                     "--model", str(minilm_f16_path)])
    assert made.exit_code == 0 and "chunks in" in made.stdout, made.output
    found = CliRunner().invoke(main, ["search", "pruning roses", "--store", store, "--json"])
    assert found.exit_code == 0, found.output
    records = json.loads(found.stdout)
    assert records[0]["heading"] == "Pruning roses" and records[0]["similarity"] > 0.3
    again = CliRunner().invoke(main, ["index", str(folder / "guide.md"), "--store", store,
                                      "--model", str(minilm_f16_path)])
    assert "1 unchanged" in again.stdout
    bad = CliRunner().invoke(main, ["search", "x", "--store", str(tmp_path / "none.db")])
    assert bad.exit_code == 1 and "no collection" in bad.output
    assert not (tmp_path / "none.db").exists()  # searching does not create a store
    width = CliRunner().invoke(main, ["index", "--from-parquet", str(tmp_path), "--store", store,
                                      "--dimensions", "64"])
    assert width.exit_code == 2 and "takes the vectors' width" in width.output  # as with --db
    wrong = CliRunner().invoke(main, ["search", "x", "--store", "notes.txt"])
    assert wrong.exit_code == 1 and "ending in .db" in wrong.output


def test_readme_first_command_and_its_sample_output(tmp_path: Path) -> None:
    """The set-up's first command (default model): the answer paragraph first, and the
    README's sample block is what the command prints now (cosines within 0.03: the
    default weight type depends on the CPU)."""
    import re

    from readme_sample import QUESTION, index_corpus, readme_block, search

    db = tmp_path / "db"
    index_corpus(db)
    records = json.loads(search(db, "--json"))
    top = records[0]
    assert top["source"] == "README.md" and top["heading"] == "Searching your files"
    assert top["text"].startswith("To rerank search results"), top["text"]
    lines = (ROOT / "README.md").read_text().splitlines()
    first = lines.index("<!-- sample-search:start -->") + 1
    last = lines.index("<!-- sample-search:end -->") + 1
    quoting = [r for r in records if r["source"] == "README.md"
               and r["line_start"] <= last and r["line_end"] >= first]
    assert len(quoting) <= 2, [(r["line_start"], r["text"][:40]) for r in quoting]  # of 10
    assert QUESTION in (ROOT / "README.md").read_text()
    cosine = re.compile(r"cosine (\d\.\d\d)")
    printed, shown = search(db, "-k", "1"), readme_block()
    assert cosine.sub("cosine ?", printed) == cosine.sub("cosine ?", shown), (
        "README's sample is stale: run python tests/readme_sample.py --write\n" + printed)
    for now, then in zip(cosine.findall(printed), cosine.findall(shown), strict=True):
        assert abs(float(now) - float(then)) <= 0.03


def test_index_progress_off_a_terminal_is_lines(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str],
                                                minilm_f16_path: Path) -> None:
    # (the bar with its ETA on a terminal: tests/test_ingest_runs.py, under a pty)
    from llamaembed import Index, Llama
    from llamaembed.store.ingest import ingest_files

    (tmp_path / "guide.md").write_text(GUIDE)
    (tmp_path / "notes.md").write_text(GUIDE.replace("roses", "tulips"))
    with Llama(str(minilm_f16_path)) as model:
        ingest_files(Index(model), model, [tmp_path], show_progress=True,
                     progress_interval=0.0, group_passages=1)
    lines = capsys.readouterr().err.splitlines()
    assert lines and all(line.startswith("indexing: ") for line in lines)
    assert "2/2 files (100%)" in lines[-1] and "passages/s" in lines[-1]
    assert any("left" in line for line in lines)
