"""The code-search benchmark's preparation and scoring, on a tiny project written here.

The full run (13 projects from the registries) is by hand; this keeps its pieces from
rotting: question files, the docstring-question generator, scoring, our system and
ripgrep on ten questions whose answers are known.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from llamaembed import Llama

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import code_search

PROJECT = {
    "geometry/shapes.py": '''"""Shapes and their areas."""

import math


class Circle:
    """A circle given by its radius."""

    def __init__(self, radius):
        self.radius = radius

    def area(self):
        """Compute the area enclosed by the circle."""
        return math.pi * self.radius ** 2


class Rectangle:
    def __init__(self, width, height):
        self.width = width
        self.height = height

    def area(self):
        """Compute the area of the rectangle from its sides."""
        return self.width * self.height
''',
    "geometry/units.py": '''def inches_to_centimetres(value):
    """Convert a length in inches to centimetres."""
    return value * 2.54


def parse_length(text):
    """Read a length such as 3cm or 2in into centimetres."""
    number, unit = float(text[:-2]), text[-2:]
    return number if unit == "cm" else inches_to_centimetres(number)
''',
    "server/http.go": '''package server

// ListenAndServe accepts connections until the server is closed.
func (s *Server) ListenAndServe() error {
	for {
		conn, err := s.listener.Accept()
		if err != nil {
			return err
		}
		go s.serve(conn)
	}
}

// RetryPolicy says how often a failed request is tried again.
type RetryPolicy struct {
	Attempts int
	Backoff  int
}
''',
    "tests/test_shapes.py": '''from geometry.shapes import Circle


def test_circle_area():
    assert round(Circle(1).area(), 2) == 3.14
''',
}

QUESTIONS = [
    ("symbol", "where is the Circle class", "geometry/shapes.py", 6, 15),
    ("symbol", "Rectangle", "geometry/shapes.py", 18, 25),
    ("symbol", "inches_to_centimetres", "geometry/units.py", 1, 3),
    ("symbol", "retry policy struct", "server/http.go", 15, 19),
    ("behaviour", "how is the area of a circle computed", "geometry/shapes.py", 12, 15),
    ("behaviour", "convert a length in inches", "geometry/units.py", 1, 3),
    ("behaviour", "how are incoming connections accepted", "server/http.go", 3, 13),
    ("behaviour", "parse a length with a unit suffix", "geometry/units.py", 6, 9),
    ("design", "which shapes can compute their area", "geometry/shapes.py", 6, 25),
    ("design", "how many times is a failed request retried", "server/http.go", 15, 19),
]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("bench")
    project = root / "tiny"
    for name, text in PROJECT.items():
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text(text)
    questions = root / "tiny.jsonl"
    questions.write_text(
        "\n".join(
            json.dumps(
                {"kind": k, "question": q, "targets": [{"path": p, "start": a, "end": b}]}
            )
            for k, q, p, a, b in QUESTIONS
        )
    )
    return project, questions


def test_scoring_by_hand() -> None:
    targets = [("a.py", 10, 20), ("b.py", 1, 5)]
    assert code_search.score([("a.py", 12, 14), ("b.py", 2, 3)], targets) == (1.0, 1.0, 1.0)
    ndcg, s1, rr = code_search.score([("c.py", 1, 9), ("a.py", 1, 10)], targets)
    # one target found at rank 2 of an ideal two at ranks 1 and 2
    assert ndcg == pytest.approx((1 / 1.5849625) / (1 + 1 / 1.5849625))
    assert (s1, rr) == (0.0, 0.5)
    # a second passage of the same target counts nothing; a miss scores 0
    assert code_search.score([("a.py", 10, 12), ("a.py", 13, 20)], [targets[0]])[0] == 1.0
    assert code_search.score([("a.py", 21, 30)], targets) == (0.0, 0.0, 0.0)


def test_questions_and_docstring_questions(tiny: tuple[Path, Path], tmp_path: Path) -> None:
    project, questions_file = tiny
    questions = code_search.load_questions(questions_file)
    assert len(questions) == 10 and {q.kind for q in questions} == {
        "behaviour",
        "design",
        "symbol",
    }
    copy = tmp_path / "nodoc"
    generated = code_search.docstring_questions("tiny", project, copy)
    texts = {q.text for q in generated}
    assert "Convert a length in inches to centimetres." in texts
    assert "ListenAndServe accepts connections until the server is closed." in texts
    units = (copy / "geometry/units.py").read_text()
    assert "Convert a length" not in units and "return value * 2.54" in units
    # line numbers hold in the copy: each answer's span is its function there
    for question in generated:
        path, first, _ = question.targets[0]
        lines = (copy / path).read_text().splitlines()
        assert lines[first - 1].lstrip().startswith(("def ", "func ", "//", ""))
    assert all("tests/" not in q.targets[0][0] for q in generated)  # no test files
    shutil.rmtree(copy)


def test_our_system_and_ripgrep_answer_the_known_questions(
    tiny: tuple[Path, Path], minilm: Llama
) -> None:
    project, questions_file = tiny
    questions = code_search.load_questions(questions_file)
    ours = code_search.run_ours(project, questions, minilm, ablate=True)
    assert {"default", "dense alone", "hybrid, no code rules", "without definition"} <= set(
        ours.hits
    )
    runs = {"tiny": {"ours": ours}}
    if shutil.which("rg"):  # apt's ripgrep (.ci/run installs it)
        runs["tiny"]["ripgrep"] = code_search.run_ripgrep(project, questions)
    scores = code_search.evaluate(runs, {"tiny": questions}, {"tiny": "python"})
    ndcg, s1, _ = scores["default"].mean()
    assert ndcg >= 0.8 and s1 >= 0.7  # a tiny project: the model finds nearly all
    report = code_search.tables(scores, runs, ["default", "ripgrep"], ["tiny"])
    assert "| default |" in report and "NDCG@10 per language" in report
    if "ripgrep" in scores:
        assert 0 < scores["ripgrep"].mean()[0] <= scores["default"].mean()[0]
        assert "| ripgrep |" in report
