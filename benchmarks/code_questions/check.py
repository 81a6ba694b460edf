"""Check question files: fields, kinds, targets that exist with line spans inside the file.

python benchmarks/code_questions/check.py [NAME ...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
CORPUS = HERE.parent.parent / ".cache" / "bench" / "code"
KINDS = {"behaviour", "design", "symbol"}


def check(name: str) -> list[str]:
    """Return the problems of one project's question file (empty: fine)."""
    problems = []
    seen = set()
    for n, line in enumerate((HERE / f"{name}.jsonl").read_text().splitlines(), 1):
        if not line.strip():
            continue
        q = json.loads(line)
        where = f"{name}.jsonl:{n}"
        if set(q) != {"kind", "question", "targets"}:
            problems.append(f"{where}: keys must be kind, question, targets")
        if q.get("kind") not in KINDS:
            problems.append(f"{where}: kind must be one of {sorted(KINDS)}")
        if q.get("question") in seen:
            problems.append(f"{where}: duplicate question")
        seen.add(q.get("question"))
        if not q.get("targets"):
            problems.append(f"{where}: no targets")
        for t in q.get("targets", []):
            path = CORPUS / name / t["path"]
            if not path.is_file():
                problems.append(f"{where}: no file {t['path']}")
                continue
            lines = len(path.read_text(errors="replace").splitlines())
            if not 1 <= t["start"] <= t["end"] <= lines:
                problems.append(f"{where}: lines {t['start']}-{t['end']} not in 1-{lines}")
    return problems


if __name__ == "__main__":
    names = sys.argv[1:] or sorted(p.stem for p in HERE.glob("*.jsonl"))
    found = [p for name in names for p in check(name)]
    print("\n".join(found) or f"ok: {', '.join(names)}")
    sys.exit(1 if found else 0)
