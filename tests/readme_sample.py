"""The README's sample search output, from a real run of its first command.

    python tests/readme_sample.py --write    # rerun the command, put its output in README.md

The set-up's first command indexes README.md, llamaembed/ and examples/ with the default
model and searches "how do I rerank search results". ``run_sample`` does the same through
the CLI and returns what ``search -k 1`` prints; the README shows it between the
``sample-search`` markers, and tests/test_search_output.py checks the two agree. The
README holds its own sample, so a change to the block moves line numbers: ``--write``
repeats until the output no longer changes.
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

from click.testing import CliRunner

ROOT = Path(__file__).resolve().parent.parent
QUESTION = "how do I rerank search results"
BLOCK = re.compile(r"(<!-- sample-search:start -->\n```\n)(.*?)(```\n<!-- sample-search:end -->)",
                   re.S)


def index_corpus(db: Path, root: Path = ROOT) -> None:
    """Run the first command's ``llamaembed index`` (default model) into ``db``."""
    from llamaembed.cli import main

    sources = [str(root / "README.md"), str(root / "llamaembed"), str(root / "examples")]
    made = CliRunner().invoke(main, ["index", *sources, "--db", str(db)])
    if made.exit_code != 0:
        raise RuntimeError(made.output)


def search(db: Path, *options: str, root: Path = ROOT) -> str:
    """Return what ``llamaembed search QUESTION`` prints, paths relative to ``root``."""
    from llamaembed.cli import main

    found = CliRunner().invoke(main, ["search", QUESTION, "--db", str(db), *options])
    if found.exit_code != 0:
        raise RuntimeError(found.output)
    return found.stdout.replace(str(root) + "/", "")


def run_sample(root: Path = ROOT) -> str:
    """Index the README's corpus in a temporary folder; return the sample block's text."""
    with tempfile.TemporaryDirectory() as tmp:
        index_corpus(Path(tmp) / "db", root)
        return search(Path(tmp) / "db", "-k", "1", root=root)


def readme_block(root: Path = ROOT) -> str:
    """Return the sample block's text as the README has it."""
    match = BLOCK.search((root / "README.md").read_text())
    if match is None:
        raise ValueError("README.md has no sample-search block")
    return match.group(2)


def write(root: Path = ROOT, rounds: int = 4) -> str:
    """Rerun the sample until the README's block is its own output; return it."""
    readme = root / "README.md"
    for _ in range(rounds):
        output = run_sample(root)
        if output == readme_block(root):
            return output
        text = readme.read_text()
        readme.write_text(BLOCK.sub(lambda m, new=output: m.group(1) + new + m.group(3), text))
    raise RuntimeError(f"the sample did not settle in {rounds} rounds")


if __name__ == "__main__":
    if "--write" in sys.argv:
        print(write())
    else:
        print(run_sample())
