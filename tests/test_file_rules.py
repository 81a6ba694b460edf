"""``llamaembed index`` honours ignore rules (and removes what a rule change excludes);
``llamaembed search`` shows grep's context lines, lists files (-l) and filters by --glob
inside the search; ``ingest_files`` takes the same rules. Real model, real git repos."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from llamaembed import Index, Llama
from llamaembed.cli import main
from llamaembed.store.ingest import ingest_files
from llamaembed.store.selection import FileRules


def cli(*args: str) -> tuple[int, str]:
    done = CliRunner().invoke(main, list(args))
    return done.exit_code, done.output


def sources(db: Path, model: Llama) -> set[str]:
    return {Path(m["source"]).name for _, m in Index.load(db, model).iter_metadata()}


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    (root / "src").mkdir()
    for i in range(5):
        (root / "src" / f"m{i}.py").write_text(f'def f{i}():\n    """Step {i}."""\n    return {i}\n')
    (root / "data").mkdir()
    (root / "data" / "rows.csv").write_text("".join(f"row{i},v{i}\n" for i in range(30)))
    for i in range(3):
        (root / f"run{i}.log").write_text(f"log line {i}\n")
    (root / "keep.log").write_text("the one log kept\n")
    (root / ".gitignore").write_text("data/\n*.log\n!keep.log\n")
    return root


def test_index_honours_gitignore_and_a_rule_change_removes_passages(
    repo: Path, tmp_path: Path, tiny_encoder: Llama, tiny_encoder_path: Path
) -> None:
    db, model = str(tmp_path / "db"), str(tiny_encoder_path)
    code, out = cli("index", str(repo), "--db", db, "--model", model)
    assert code == 0, out
    assert sources(Path(db), tiny_encoder) == {f"m{i}.py" for i in range(5)} | {"keep.log"}
    # --no-ignore reads everything
    code, out = cli("index", str(repo), "--db", db, "--model", model, "--no-ignore")
    assert code == 0 and "indexed 4 files" in out, out
    assert {"rows.csv", "run0.log"} <= sources(Path(db), tiny_encoder)
    # back to the rules, now also leaving out src/m0.py: five files' passages go
    (repo / ".gitignore").write_text("data/\n*.log\n!keep.log\nsrc/m0.py\n")
    code, out = cli("index", str(repo), "--db", db, "--model", model)
    assert code == 0 and "5 now excluded" in out, out
    assert sources(Path(db), tiny_encoder) == {f"m{i}.py" for i in range(1, 5)} | {"keep.log"}
    # --include narrows and --exclude removes; --hidden reads a hidden folder
    (repo / ".notes").mkdir()
    (repo / ".notes" / "todo.md").write_text("hidden notes\n")
    code, out = cli("index", str(repo), "--db", db, "--model", model, "--hidden",
                    "--include", "*.md", "--include", "src/*.py", "--exclude", "m4.py")
    assert code == 0, out
    assert sources(Path(db), tiny_encoder) == {"todo.md", "m1.py", "m2.py", "m3.py"}


def test_ingest_files_takes_the_rules(repo: Path, tiny_encoder: Llama) -> None:
    index = Index(tiny_encoder)
    report = ingest_files(index, tiny_encoder, [repo])
    assert report.indexed_files == 6 and report.excluded_files == 0
    report = ingest_files(index, tiny_encoder, [repo], rules=FileRules(include=("*.csv",)))
    assert {Path(m["source"]).name for _, m in index.iter_metadata()} == set()  # csv ignored
    assert report.excluded_files == 6
    report = ingest_files(index, tiny_encoder, [repo], rules=FileRules(ignore_files=False,
                                                                       include=("*.csv",)))
    assert report.indexed_files == 1
    assert {Path(m["source"]).name for _, m in index.iter_metadata()} == {"rows.csv"}


GARDEN = "\n".join(
    f"Line {n}: water the tomato plants and mulch the garden beds, week {n}." for n in range(1, 9)
)


@pytest.fixture
def notes(tmp_path: Path, minilm_f16_path: Path) -> tuple[Path, str]:
    """Garden files (.txt) that answer the question, and cooking notes (.md) that don't."""
    folder = tmp_path / "notes"
    folder.mkdir()
    for i in range(6):
        (folder / f"garden{i}.txt").write_text(f"Garden diary {i}\n\n{GARDEN}\n")
    for i in range(8):
        lines = [f"Recipe {i} step {n}: simmer the onions and season the soup." for n in range(6)]
        (folder / f"recipe{i}.md").write_text("\n".join(lines) + "\n")
    db = str(tmp_path / "db")
    code, out = cli("index", str(folder), "--db", db, "--model", str(minilm_f16_path))
    assert code == 0, out
    return folder, db


def hits_json(db: str, *options: str) -> list[dict]:  # type: ignore[type-arg]
    code, out = cli("search", "how often should I water tomatoes", "--db", db, *options,
                    "--json")
    assert code == 0, out
    return json.loads(out)


def test_context_lines_are_exactly_the_files_lines(notes: tuple[Path, str]) -> None:
    _, db = notes
    for hit in hits_json(db, "-k", "4", "-C", "2"):
        lines = Path(hit["source"]).read_text().splitlines()
        first, last = hit["snippet"]["line_start"], hit["snippet"]["line_end"]
        before = [(c["line"], c["text"]) for c in hit["context"]["before"]]
        after = [(c["line"], c["text"]) for c in hit["context"]["after"]]
        assert before == [(n, lines[n - 1]) for n in range(max(1, first - 2), first)]
        assert after == [(n, lines[n - 1]) for n in range(last + 1, min(len(lines), last + 2) + 1)]
    # -A/-B alone, and the text output marks lines as grep does
    hit = hits_json(db, "-k", "1", "-B", "1", "-A", "0")[0]
    assert len(hit["context"]["before"]) <= 1 and hit["context"]["after"] == []
    code, out = cli("search", "how often should I water tomatoes", "--db", db, "-k", "1",
                    "-C", "1")
    assert code == 0
    first, last = hit["snippet"]["line_start"], hit["snippet"]["line_end"]
    lines = Path(hit["source"]).read_text().splitlines()
    expected = [f"{n}-{lines[n - 1]}" for n in range(max(1, first - 1), first)]
    expected += [f"{n}:{lines[n - 1]}" for n in range(first, last + 1)]
    expected += [f"{n}-{lines[n - 1]}" for n in range(last + 1, min(len(lines), last + 1) + 1)]
    shown = [line.strip() for line in out.splitlines()]
    start = shown.index(expected[0])
    assert shown[start : start + len(expected)] == expected, out
    # a file changed since it was indexed gets no context rather than wrong lines
    Path(hit["source"]).write_text("rewritten\n")
    changed = hits_json(db, "-k", "1", "-C", "2")[0]
    assert changed["source"] == hit["source"] and changed["context"] is None


def test_files_with_matches_in_rank_order(notes: tuple[Path, str]) -> None:
    _, db = notes
    ranked = [h["source"] for h in hits_json(db, "-k", "8")]
    code, out = cli("search", "how often should I water tomatoes", "--db", db, "-k", "8", "-l")
    assert code == 0
    expected = list(dict.fromkeys(ranked))
    assert [str(Path(p).resolve()) for p in out.split()] == expected
    code, out = cli("search", "how often should I water tomatoes", "--db", db, "-k", "8", "-l",
                    "--json")
    assert json.loads(out) == expected


def test_glob_filters_inside_the_search(notes: tuple[Path, str]) -> None:
    _, db = notes
    unfiltered = hits_json(db, "-k", "5")
    assert all(h["source"].endswith(".txt") for h in unfiltered)  # garden files rank first
    recipes = hits_json(db, "-k", "5", "--glob", "*.md")
    assert len(recipes) == 5 and all(h["source"].endswith(".md") for h in recipes)
    two = hits_json(db, "-k", "5", "--glob", "recipe1.md", "--glob", "garden2.*")
    assert {Path(h["source"]).name for h in two} == {"recipe1.md", "garden2.txt"}
    assert hits_json(db, "--glob", "*.rs") == []
    code, out = cli("search", "q", "--db", db, "--glob", "")
    assert code == 2 and "--glob needs a pattern" in out


def test_glob_with_a_milvus_store(notes: tuple[Path, str], tmp_path: Path,
                                  minilm_f16_path: Path) -> None:
    folder, _ = notes
    for n in range(20):  # more files than Milvus takes as an any-of list
        (folder / f"extra{n}.md").write_text(f"Extra note {n}: season the soup with salt.\n")
    store = str(tmp_path / "notes.db")
    code, out = cli("index", str(folder), "--store", store, "--model", str(minilm_f16_path))
    assert code == 0, out
    code, out = cli("search", "how often should I water tomatoes", "--store", store, "-k", "5",
                    "--glob", "*.md", "--json")
    assert code == 0, out
    hits = json.loads(out)
    assert len(hits) == 5 and all(h["source"].endswith(".md") for h in hits)
    code, out = cli("search", "how often should I water tomatoes", "--store", store, "-k", "3",
                    "--glob", "garden1.txt", "--json")
    assert code == 0 and {Path(h["source"]).name for h in json.loads(out)} == {"garden1.txt"}


def test_context_of_a_crlf_file_and_its_last_line(tmp_path: Path, tiny_encoder_path: Path) -> None:
    folder = tmp_path / "crlf"
    folder.mkdir()
    lines = [f"line {n} of a windows file" for n in range(1, 41)]
    (folder / "notes.txt").write_bytes(("\r\n".join(lines) + "\r\n").encode())
    db = str(tmp_path / "db")
    code, out = cli("index", str(folder), "--db", db, "--model", str(tiny_encoder_path),
                    "--max-tokens", "32")
    assert code == 0, out
    code, out = cli("search", "line 20", "--db", db, "-k", "50", "-C", "3", "--json")
    hits = json.loads(out)
    assert len(hits) > 2
    for hit in hits:
        first, last = hit["snippet"]["line_start"], hit["snippet"]["line_end"]
        assert [c["line"] for c in hit["context"]["before"]] == list(range(max(1, first - 3),
                                                                          first))
        assert [c["line"] for c in hit["context"]["after"]] == list(range(last + 1,
                                                                         min(40, last + 3) + 1))
        for c in hit["context"]["before"] + hit["context"]["after"]:
            assert c["text"] == lines[c["line"] - 1]  # no "\r", no line past the end
