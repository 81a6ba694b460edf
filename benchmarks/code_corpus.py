"""The code-search benchmark's projects: real third-party code at pinned versions, offline.

    python benchmarks/code_corpus.py [--only NAME,...]

Each project comes from a package registry this machine reaches (PyPI source
distributions, npm tarballs, Debian packages that carry sources) and is unpacked into
``.cache/bench/code/NAME`` (git-ignored), keeping only its source folder. The question
sets in ``benchmarks/code_questions/NAME.jsonl`` name files relative to that folder.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / ".cache" / "bench" / "code"


@dataclass(frozen=True)
class Project:
    """One project: where it comes from, its language, and the folder of it we index."""

    name: str
    language: str
    registry: str  # "pypi" (sdist), "npm" (tarball) or "debian" (binary package)
    package: str
    version: str
    keep: str  # the folder inside the unpacked archive that holds the sources


PROJECTS: tuple[Project, ...] = (
    Project("httpx", "python", "pypi", "httpx", "0.27.2", "httpx-0.27.2/httpx"),
    Project("marshmallow", "python", "pypi", "marshmallow", "3.23.1", "marshmallow-3.23.1/src"),
    Project("express", "javascript", "npm", "express", "4.21.2", "package"),
    Project("axios", "javascript", "npm", "axios", "1.7.7", "package/lib"),
    Project("query-core", "typescript", "npm", "@tanstack/query-core", "5.59.0", "package/src"),
    Project("trpc-server", "typescript", "npm", "@trpc/server", "11.0.0", "package/src"),
    Project(
        "cobra",
        "go",
        "debian",
        "golang-github-spf13-cobra-dev",
        "1.6.1-1",
        "usr/share/gocode/src/github.com/spf13/cobra",
    ),
    Project(
        "logrus",
        "go",
        "debian",
        "golang-github-sirupsen-logrus-dev",
        "1.9.0-1",
        "usr/share/gocode/src/github.com/sirupsen/logrus",
    ),
    Project(
        "serde_json",
        "rust",
        "debian",
        "librust-serde-json-dev",
        "1.0.87-1",
        "usr/share/cargo/registry/serde_json-1.0.87",
    ),
    Project(
        "anyhow",
        "rust",
        "debian",
        "librust-anyhow-dev",
        "1.0.69-1",
        "usr/share/cargo/registry/anyhow-1.0.69",
    ),
    Project(
        "rack",
        "ruby",
        "debian",
        "ruby-rack",
        "2.2.22-0+deb12u2",
        "usr/share/rubygems-integration/all/gems/rack-2.2.22/lib",
    ),
    Project("monolog", "php", "debian", "php-monolog", "2.9.1-1", "usr/share/php/Monolog"),
    Project(
        "cmark-gfm",
        "c",
        "pypi",
        "cmarkgfm",
        "2024.11.20",
        "cmarkgfm-2024.11.20/third_party/cmark",
    ),
)

_SKIP = {".github", "node_modules", "vendor", "benches", "fuzz"}


def _download(project: Project, into: Path) -> Path:
    """Return the downloaded archive of a project."""
    pinned = {  # each registry's client, asked for the pinned version, run in ``into``
        "pypi": ["pip", "download", "-q", "--no-deps", "--no-binary", ":all:", "-d", "."],
        "npm": ["npm", "pack", "--silent"],
        "debian": ["apt-get", "download", "-q"],
    }
    spelled = {"pypi": "{}=={}", "npm": "{}@{}", "debian": "{}={}"}
    if project.registry not in pinned:
        raise ValueError(f"unknown registry {project.registry!r}")
    wanted = spelled[project.registry].format(project.package, project.version)
    subprocess.run(
        [*pinned[project.registry], wanted], check=True, cwd=into, stdout=subprocess.DEVNULL
    )
    (archive,) = [p for p in into.iterdir() if p.is_file()]
    return archive


def _unpack(archive: Path, into: Path) -> None:
    if archive.suffix == ".deb":
        subprocess.run(["dpkg-deb", "-x", str(archive), str(into)], check=True)
    elif archive.suffix == ".zip":
        with zipfile.ZipFile(archive) as z:
            z.extractall(into)
    else:
        with tarfile.open(archive) as t:
            t.extractall(into, filter="data")


def fetch(project: Project, corpus: Path = CORPUS) -> Path:
    """Return the project's source folder, downloading and unpacking it once."""
    target = corpus / project.name
    if target.is_dir():
        return target
    with tempfile.TemporaryDirectory() as tmp:
        download = Path(tmp) / "download"
        unpacked = Path(tmp) / "unpacked"
        download.mkdir()
        unpacked.mkdir()
        _unpack(_download(project, download), unpacked)
        source = unpacked / project.keep
        if not source.is_dir():
            raise FileNotFoundError(f"{project.name}: no {project.keep} in the archive")
        for skipped in _SKIP:
            for folder in list(source.rglob(skipped)):
                shutil.rmtree(folder, ignore_errors=True)
        corpus.mkdir(parents=True, exist_ok=True)
        shutil.copytree(source, target, symlinks=False)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default="", help="comma-separated project names")
    args = parser.parse_args()
    wanted = set(filter(None, args.only.split(",")))
    for project in PROJECTS:
        if wanted and project.name not in wanted:
            continue
        folder = fetch(project)
        files = sum(1 for p in folder.rglob("*") if p.is_file())
        print(f"{project.name:12} {project.language:11} {files:5} files  {folder}")


if __name__ == "__main__":
    main()
