"""Which files under a folder an index reads: ignore files, hidden files, include/exclude globs.

The rules are ripgrep's, matched by ``pathspec`` (git's own wildmatch semantics):

- ``.gitignore`` files at every level of a git repository (each one's patterns relative
  to its folder, deeper files overriding shallower ones, ``!pattern`` re-including),
  ``.git/info/exclude``, and a ``.llamaembedignore`` of our own at any level (above the
  ``.gitignore`` of the same folder). Outside git, ``.gitignore`` files do not count and a
  fixed list of folders (``DEFAULT_SKIP_DIRS``: virtualenvs, caches, build output) is
  skipped instead. ``FileRules(ignore_files=False)`` turns all of that off.
- Hidden files and folders (a name starting with ``.``) are skipped unless ``hidden``.
  ``.git`` itself never is read.
- ``exclude`` globs (gitignore syntax, relative to the folder walked) remove files and
  folders; ``include`` globs, when given, admit only the files they match, whatever their
  suffix (else a file needs a text suffix, ``TEXT_SUFFIXES``).
- Links are not followed out of the folder walked.

``FileSelector`` answers for one folder (``admits``, ``walk``); ``select_files`` expands
files and folders. A file named on its own is always read: asking is choosing.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pathspec

__all__ = [
    "DEFAULT_SKIP_DIRS",
    "IGNORE_FILE",
    "TEXT_SUFFIXES",
    "FileRules",
    "FileSelector",
    "is_rules_file",
    "match_sources",
    "select_files",
]

IGNORE_FILE = ".llamaembedignore"

TEXT_SUFFIXES = frozenset(
    [
        ".txt",
        ".md",
        ".markdown",
        ".rst",
        ".adoc",
        ".org",
        ".tex",
        ".py",
        ".pyi",
        ".js",
        ".ts",
        ".tsx",
        ".jsx",
        ".java",
        ".kt",
        ".go",
        ".rs",
        ".c",
        ".h",
        ".cc",
        ".cpp",
        ".hpp",
        ".cs",
        ".rb",
        ".php",
        ".swift",
        ".scala",
        ".sh",
        ".bash",
        ".zsh",
        ".sql",
        ".html",
        ".htm",
        ".css",
        ".xml",
        ".json",
        ".yaml",
        ".yml",
        ".toml",
        ".ini",
        ".cfg",
        ".csv",
        ".tsv",
        ".log",
    ]
)

# Outside a git repository, folders nobody means to search (inside one, .gitignore says)
DEFAULT_SKIP_DIRS = frozenset(
    {
        ".hg",
        ".svn",
        ".venv",
        "venv",
        "node_modules",
        "__pycache__",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".tox",
        "build",
        "dist",
    }
)


@dataclass(frozen=True)
class FileRules:
    """How files under a folder are chosen (see the module's docstring)."""

    ignore_files: bool = True  # .gitignore, .git/info/exclude, .llamaembedignore, skip list
    hidden: bool = False
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for glob in (*self.include, *self.exclude):
            if not glob.strip():
                raise ValueError("an --include or --exclude glob is empty")
        # a bad glob fails here, not halfway through a walk
        pathspec.GitIgnoreSpec.from_lines([*self.include, *self.exclude])


def is_rules_file(path: Path) -> bool:
    """Return True for a file whose change changes which files are chosen."""
    return path.name in (".gitignore", IGNORE_FILE) or path.parts[-3:] == (
        ".git",
        "info",
        "exclude",
    )


def _git_root(folder: Path) -> Path | None:
    for candidate in (folder, *folder.parents):
        if (candidate / ".git").exists():
            return candidate
    return None


def _relative(path: Path, base: Path, is_dir: bool) -> str:
    """Return a path as gitignore patterns see it: relative to ``base``, a folder with "/"."""
    return path.relative_to(base).as_posix() + ("/" if is_dir else "")


def _read_spec(file: Path) -> pathspec.GitIgnoreSpec | None:
    try:
        lines = file.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:  # absent, a folder, unreadable: no rules
        return None
    spec = pathspec.GitIgnoreSpec.from_lines(lines)
    return spec if len(spec) else None


class FileSelector:
    """The files one folder's rules choose; ignore files are read once each."""

    def __init__(
        self, root: str | os.PathLike[str], rules: FileRules, skip: Iterable[Path] = ()
    ) -> None:
        self.root = Path(root).resolve()
        self.rules = rules
        self.skip = {Path(p).resolve() for p in skip}
        self.git_root = _git_root(self.root) if rules.ignore_files else None
        self._include = pathspec.GitIgnoreSpec.from_lines(rules.include)
        self._exclude = pathspec.GitIgnoreSpec.from_lines(rules.exclude)
        self._specs: dict[Path, list[tuple[Path, pathspec.GitIgnoreSpec]]] = {}

    def _folder_specs(self, folder: Path) -> list[tuple[Path, pathspec.GitIgnoreSpec]]:
        """Return (base folder, spec) pairs that apply in ``folder``, deepest last."""
        if folder in self._specs:
            return self._specs[folder]
        top = self.git_root or self.root
        if folder == top or not folder.is_relative_to(top):
            specs = []
            if self.git_root is not None and folder == top:
                info = _read_spec(top / ".git" / "info" / "exclude")
                specs += [(top, info)] if info else []
        else:
            specs = list(self._folder_specs(folder.parent))
        names = (".gitignore", IGNORE_FILE) if self.git_root is not None else (IGNORE_FILE,)
        for name in names:
            spec = _read_spec(folder / name)
            if spec is not None:
                specs.append((folder, spec))
        self._specs[folder] = specs
        return specs

    def _ignored(self, path: Path, is_dir: bool) -> bool:
        """Return True when an ignore file's last matching pattern ignores ``path``."""
        for base, spec in reversed(self._folder_specs(path.parent)):
            result = spec.check_file(_relative(path, base, is_dir))
            if result.include is None or (result.include and self._names_root(base, spec, result)):
                continue
            return bool(result.include)
        return False

    def _names_root(self, base: Path, spec: pathspec.GitIgnoreSpec, result: Any) -> bool:
        """Return True when the pattern that decided is one that ignores the root itself.

        A folder given to walk is read as asked (ripgrep's rule for explicit paths): a
        `build/` pattern above it does not hide its files; the other patterns still count.
        """
        if base == self.root or not self.root.is_relative_to(base):
            return False
        own = spec.check_file(_relative(self.root, base, is_dir=True))
        return bool(own.include) and own.index == result.index

    def folder_admitted(self, folder: Path) -> bool:
        """Return True when a walk descends into ``folder`` (a folder under the root)."""
        name = folder.name
        if name == ".git" or folder in self.skip:
            return False
        if name.startswith(".") and not self.rules.hidden:
            return False
        if self.rules.ignore_files:
            if self.git_root is None and name in DEFAULT_SKIP_DIRS:
                return False
            if self._ignored(folder, is_dir=True):
                return False
        return not self._exclude.match_file(_relative(folder, self.root, is_dir=True))

    def file_admitted(self, file: Path) -> bool:
        """Return True when a file in an admitted folder is chosen: name, rules, no link out."""
        if file.name.startswith(".") and not self.rules.hidden:
            return False
        relative = _relative(file, self.root, is_dir=False)
        if self.rules.include:
            if not self._include.match_file(relative):
                return False
        elif file.suffix.lower() not in TEXT_SUFFIXES:
            return False
        if self._exclude.match_file(relative):
            return False
        if self.rules.ignore_files and self._ignored(file, is_dir=False):
            return False
        # a link out of the folder: not ours to read
        return not file.is_symlink() or file.resolve().is_relative_to(self.root)

    def _within(self, folder: Path) -> bool:
        """Return True when the walk descends into every folder from the root to ``folder``."""
        chain = []
        while folder != self.root:
            chain.append(folder)
            folder = folder.parent
        return all(self.folder_admitted(f) for f in reversed(chain))

    def admits(self, path: str | os.PathLike[str]) -> bool:
        """Return True when the walk would choose ``path`` (which may no longer exist)."""
        file = Path(os.path.abspath(path))
        if not file.is_relative_to(self.root) or file == self.root:
            return False
        return self._within(file.parent) and self.file_admitted(file)

    def walks_into(self, folder: str | os.PathLike[str]) -> bool:
        """Return True when the walk would descend into ``folder`` (the root included)."""
        path = Path(os.path.abspath(folder))
        return path.is_relative_to(self.root) and not path.is_symlink() and self._within(path)

    def walk(self) -> Iterator[Path]:
        """Yield the chosen files under the root, folder by folder, names sorted."""
        for folder, dirs, files in os.walk(self.root):
            here = Path(folder)
            dirs[:] = sorted(d for d in dirs if self.folder_admitted(here / d))
            for name in sorted(files):
                file = here / name
                if self.file_admitted(file):
                    resolved = file.resolve()
                    if resolved.is_file():
                        yield resolved


def select_files(
    paths: Iterable[str | os.PathLike[str]],
    rules: FileRules | None = None,
    skip: Iterable[Path] = (),
) -> list[Path]:
    """Return the files chosen under the given files and folders, sorted, without duplicates.

    A file given by name is always chosen; a folder is walked with ``rules`` (default
    ``FileRules()``), leaving out the folders in ``skip`` (the index's own folder).
    """
    rules = rules or FileRules()
    skip = list(skip)
    found: set[Path] = set()
    for raw in paths:
        path = Path(raw)
        if path.is_file():
            found.add(path.resolve())
        elif path.is_dir():
            found.update(FileSelector(path, rules, skip).walk())
        else:
            raise FileNotFoundError(f"no such file or folder: {path}")
    return sorted(found)


def match_sources(
    sources: Iterable[str], globs: Iterable[str], base: str | os.PathLike[str] | None = None
) -> list[str]:
    """Return the sources (file paths) that any glob matches, in gitignore syntax.

    A source under ``base`` (default: the working folder) is matched by its path relative
    to it, so ``*.py`` matches at any depth and ``src/**/*.md`` from ``base``; a source
    elsewhere by its absolute path.
    """
    spec = pathspec.GitIgnoreSpec.from_lines(list(globs))
    root = Path(base or os.getcwd()).resolve()
    found = []
    for source in sources:
        path = Path(source)
        relative = path.relative_to(root) if path.is_relative_to(root) else path
        if spec.match_file(relative.as_posix().lstrip("/")):
            found.append(source)
    return found
