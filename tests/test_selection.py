"""Which files an index reads: .gitignore at every level, negations, info/exclude,
.llamaembedignore, hidden files, --include/--exclude, the skip list outside git; on real
folders and real git repositories (``git check-ignore`` is the reference)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from llamaembed.store.selection import FileRules, FileSelector, match_sources, select_files

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def names(root: Path, found: list[Path]) -> set[str]:
    return {p.relative_to(root.resolve()).as_posix() for p in found}


def git_repo(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    return root


ISSUE_TREE = {
    **{f"src/m{i}.py": f"def f{i}():\n    return {i}\n" for i in range(5)},
    **{f"logs/run{i}.log": f"log line {i}\n" for i in range(30)},
    "data/rows.csv": "".join(f"row{i},value{i}\n" for i in range(30)),
    "build/generated.py": "x = 1\n",
    ".gitignore": "build/\ndata/\n*.log\n",
}


@needs_git
def test_the_issue_repository_indexes_only_its_sources(tmp_path: Path) -> None:
    repo = git_repo(tmp_path / "repo")
    write(repo, ISSUE_TREE)
    assert names(repo, select_files([repo])) == {f"src/m{i}.py" for i in range(5)}
    everything = names(repo, select_files([repo], FileRules(ignore_files=False)))
    assert len(everything) == 5 + 30 + 2 and "build/generated.py" in everything
    assert ".gitignore" not in everything  # hidden, and no text suffix
    # an ignored folder given on its own is read as asked; the other patterns still count
    assert names(repo, select_files([repo / "data"])) == {"data/rows.csv"}
    assert names(repo, select_files([repo / "build"])) == {"build/generated.py"}
    assert names(repo, select_files([repo / "logs"])) == set()  # *.log, not the folder
    # a subfolder of the repository follows the repository's .gitignore
    write(repo, {"src/debug.log": "x\n", "src/build/out.py": "y = 2\n"})
    assert names(repo, select_files([repo / "src"])) == {f"src/m{i}.py" for i in range(5)}


NESTED = {
    ".gitignore": "*.log\n!keep.log\n/top-only.md\nsecret/\n",
    "keep.log": "kept\n",
    "drop.log": "dropped\n",
    "top-only.md": "ignored: /top-only.md is anchored to the root's folder\n",
    "sub/top-only.md": "not ignored: the anchored pattern names the root's file only\n",
    "sub/.gitignore": "*.txt\n!important.txt\n",
    "sub/notes.txt": "ignored by sub/.gitignore\n",
    "sub/important.txt": "re-included\n",
    "sub/keep.log": "kept by the root's negation\n",
    "sub/deeper/.gitignore": "!again.txt\n",
    "sub/deeper/again.txt": "re-included one level down\n",
    "sub/deeper/other.txt": "still ignored by sub/.gitignore\n",
    "secret/plan.md": "inside an ignored folder\n",
    "excluded-by-info.md": "listed in .git/info/exclude\n",
    "ours.md": "listed in .llamaembedignore\n",
    ".llamaembedignore": "ours.md\n!drop-again.log\n",
    "drop-again.log": "git ignores it, .llamaembedignore re-includes it\n",
    "plain.md": "indexed\n",
}


@needs_git
def test_nested_gitignore_negations_info_exclude_and_our_ignore_file(tmp_path: Path) -> None:
    repo = git_repo(tmp_path / "repo")
    write(repo, NESTED)
    (repo / ".git" / "info").mkdir(exist_ok=True)
    (repo / ".git" / "info" / "exclude").write_text("excluded-by-info.md\n")
    found = names(repo, select_files([repo]))
    assert found == {
        "keep.log",
        "sub/top-only.md",
        "sub/important.txt",
        "sub/keep.log",
        "sub/deeper/again.txt",
        "drop-again.log",
        "plain.md",
    }
    # git itself agrees on every file git's rules decide (all but .llamaembedignore's)
    ours = {"ours.md", "drop-again.log"}
    candidates = [n for n in NESTED if not n.endswith("ignore") and n not in ours]
    checked = subprocess.run(
        ["git", "-C", str(repo), "check-ignore", "--no-index", *candidates],
        capture_output=True,
        text=True,
    ).stdout.split()
    assert set(candidates) - set(checked) == found - ours
    # admits (what --watch asks of one path) agrees with the walk on every file
    selector = FileSelector(repo, FileRules())
    for name in NESTED:
        assert selector.admits(repo / name) == (name in found), name


def test_outside_git_the_skip_list_applies_and_gitignore_does_not(tmp_path: Path) -> None:
    folder = tmp_path / "plain"
    write(folder, {
        "a.md": "a\n",
        "build/b.md": "built\n",
        "node_modules/pkg/c.js": "x\n",
        ".gitignore": "a.md\n",  # not a repository: git's file has no say
        ".llamaembedignore": "skip-me.md\n",
        "skip-me.md": "x\n",
        ".hidden/d.md": "hidden\n",
        ".e.md": "hidden file\n",
    })
    assert names(folder, select_files([folder])) == {"a.md"}
    assert names(folder, select_files([folder], FileRules(ignore_files=False))) == {
        "a.md", "build/b.md", "node_modules/pkg/c.js", "skip-me.md",
    }
    assert names(folder, select_files([folder], FileRules(hidden=True))) == {
        "a.md", ".hidden/d.md", ".e.md",
    }


@needs_git
def test_include_exclude_hidden_and_the_git_folder(tmp_path: Path) -> None:
    repo = git_repo(tmp_path / "repo")
    write(repo, {
        "src/a.py": "a\n", "src/b.py": "b\n", "src/gen/c.py": "c\n", "docs/d.md": "d\n",
        "notes.weird": "any suffix an --include names\n", ".config/e.toml": "e\n",
    })
    rules = FileRules(include=("*.py", "*.weird"), exclude=("gen/",))
    assert names(repo, select_files([repo], rules)) == {"src/a.py", "src/b.py", "notes.weird"}
    assert names(repo, select_files([repo], FileRules(exclude=("src/*.py", "docs")))) == {
        "src/gen/c.py",
    }
    hidden = names(repo, select_files([repo], FileRules(hidden=True, ignore_files=False)))
    assert ".config/e.toml" in hidden
    assert not any(n.startswith(".git/") for n in hidden)  # never git's own files
    with pytest.raises(ValueError, match="empty"):
        FileRules(include=(" ",))


@needs_git
def test_a_file_named_is_read_and_links_out_of_the_folder_are_not(tmp_path: Path) -> None:
    repo = git_repo(tmp_path / "repo")
    write(repo, {"app.log": "named on its own\n", "a.md": "a\n", ".gitignore": "*.log\n"})
    outside = tmp_path / "outside.md"
    outside.write_text("not under the repository\n")
    (repo / "link.md").symlink_to(outside)
    (repo / "inner.md").symlink_to(repo / "a.md")
    assert names(repo, select_files([repo])) == {"a.md"}  # inner.md resolves to a.md
    assert names(repo, select_files([repo / "app.log"])) == {"app.log"}


@needs_git
def test_a_large_ignored_folder_is_never_walked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """10,000 ignored files cost nothing: the walk never lists their folder (the times of
    both are in benchmarks/README.md, "Ignored folders")."""
    repo = git_repo(tmp_path / "repo")
    write(repo, {"src/main.py": "print(1)\n", ".gitignore": "datasets/\n"})
    shards = repo / "datasets"
    for i in range(100):
        folder = shards / f"part-{i:03d}"
        folder.mkdir(parents=True)
        for j in range(100):
            (folder / f"row-{j}.csv").write_text(f"{i},{j}\n")
    listed: list[str] = []
    scandir = os.scandir

    def recording(path: str | os.PathLike[str]):  # type: ignore[no-untyped-def]
        listed.append(os.fspath(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", recording)
    assert names(repo, select_files([repo])) == {"src/main.py"}
    assert not any("datasets" in p for p in listed)
    assert sum(1 for _ in shards.rglob("*.csv")) == 10_000
    monkeypatch.undo()
    assert len(select_files([repo], FileRules(ignore_files=False))) == 10_001


def test_match_sources_relative_to_a_base(tmp_path: Path) -> None:
    sources = [str(tmp_path / p) for p in ("src/a.py", "src/deep/b.py", "docs/c.md")]
    assert match_sources(sources, ["*.py"], tmp_path) == sources[:2]
    assert match_sources(sources, ["src/*.py"], tmp_path) == sources[:1]
    assert match_sources(sources, ["docs/", "b.py"], tmp_path) == sources[1:]
    assert match_sources(sources, ["*.rs"], tmp_path) == []
