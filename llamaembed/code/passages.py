"""Passages of source code cut by syntax: one definition, or a run of small neighbours.

``code_spans(text, language, line_costs, max_tokens)`` parses a file with tree-sitter and
returns line spans that cover every line once, in order:

- a definition (function, method, class, type) that fits the budget is one passage;
- small neighbours under the same parent (a class's short methods, a file's helpers,
  its imports) are packed together up to half the budget;
- a larger container (a class, an ``impl``, a module) is cut into its head (signature,
  docstring, fields) and its members, each with the container in its symbol path;
- a larger function is cut between its statements; each piece after the first carries the
  function's signature line, for the model to read before it.

Each span records its symbol path (``("Client", "send")``), its kind and the names it
defines. Pure functions over the syntax tree; None when the language has no grammar here
or the file does not parse, and the caller cuts by lines instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .languages import _WRAPPERS, Language, definition_name, parser_for

__all__ = ["CodeSpan", "code_spans", "definition_kind"]

Node = Any


@dataclass(frozen=True)
class CodeSpan:
    """A passage of code: lines ``first``..``last`` (0-based, inclusive) and what they define.

    ``path`` is the symbol path of the definition the passage belongs to (its container's
    for a head or a run of members); ``defines`` the names defined in it, outermost first;
    ``signature`` the first line of the definition a continuation piece belongs to ("" for
    a passage that starts its definition).
    """

    first: int
    last: int
    path: tuple[str, ...]
    kind: str
    defines: tuple[str, ...]
    signature: str = ""


@dataclass
class _Segment:
    first: int
    last: int
    parent: tuple[str, ...]
    name: str  # "" for lines that define nothing
    kind: str
    cost: int
    signature: str = ""
    head: bool = False  # a container's head: its path already ends with its name


_KINDS = (
    ("function", ("function", "method", "constructor", "init_declaration", "signature", "bind")),
    ("class", ("class", "object", "record", "struct", "union", "protocol", "companion")),
    ("interface", ("interface", "trait")),
    ("module", ("module", "namespace", "mod_item", "impl", "instance", "schema")),
    ("type", ("type", "enum", "data", "alias", "newtype", "typedef", "concept")),
    ("table", ("table", "view", "index", "trigger")),
)


def definition_kind(node_type: str, name: str = "") -> str:
    """Return a definition's kind ("function", "class", "type", ...) from its node type."""
    if node_type == "call":  # Elixir
        return "module" if name[:1].isupper() else "function"
    for kind, markers in _KINDS:
        if any(m in node_type for m in markers):
            return kind
    if node_type in ("variable_declarator", "test_declaration"):
        return "function"
    return "definition"


def _definition(node: Node, language: Language) -> Node | None:
    """Return the definition a node is or wraps (decorators, exports), else None."""
    if language.is_definition(node):
        return node
    if node.type in _WRAPPERS:
        for child in node.named_children[:3]:
            found = _definition(child, language)
            if found is not None:
                return found
    return None


def _nearest_definitions(node: Node, language: Language) -> list[tuple[Node, Node]]:
    """Return (outer node, definition) pairs for the definitions nearest below a node."""
    found: list[tuple[Node, Node]] = []
    stack = list(reversed(node.named_children))
    while stack:
        child = stack.pop()
        inner = _definition(child, language)
        if inner is not None:
            found.append((child, inner))
        else:
            stack.extend(reversed(child.named_children))
    return found


def _last_line(node: Node) -> int:
    """Return a node's last line (a line comment that takes its newline ends on its own)."""
    row, column = node.end_point
    return row - 1 if column == 0 and row > node.start_point[0] else row


def _leading_comments(outer: Node) -> int:
    """Return the first line of a definition with the comments and attributes right above it."""
    first = outer.start_point[0]
    sibling = outer.prev_named_sibling
    while sibling is not None and _last_line(sibling) >= first - 1:
        if "comment" not in sibling.type and sibling.type not in ("attribute_item", "decorator"):
            break
        if _last_line(sibling) >= first:  # a comment ending on the definition's line
            break
        first = sibling.start_point[0]
        sibling = sibling.prev_named_sibling
    return first


class _Cutter:
    """Cuts one parsed file into segments, then packs segments into spans."""

    def __init__(
        self, lines: Sequence[str], language: Language, costs: Sequence[int], max_tokens: int
    ) -> None:
        self.lines = lines
        self.language = language
        self.costs = costs
        self.max_tokens = max_tokens
        self.segments: list[_Segment] = []
        self.cursor = 0  # the first line no segment holds yet

    def cost(self, first: int, last: int) -> int:
        return sum(self.costs[first : last + 1])

    def add(
        self,
        last: int,
        parent: tuple[str, ...],
        name: str,
        kind: str,
        signature: str = "",
        head: bool = False,
    ) -> None:
        """Add a segment from the cursor to ``last`` (nothing if that is already held).

        Lines that are no definition (or a container's head) and exceed the budget are cut
        by lines, each piece ending at its last blank line where it has one.
        """
        if last < self.cursor:
            return
        first = self.cursor
        if (not name or head) and self.cost(first, last) > self.max_tokens:
            for start, stop in self.line_pieces(first, last, at_blank=True):
                lead = start == first
                self.segments.append(
                    _Segment(
                        start,
                        stop,
                        parent,
                        name if lead else "",
                        kind,
                        self.cost(start, stop),
                        head=head and lead,
                    )
                )
            self.cursor = last + 1
            return
        self.segments.append(
            _Segment(first, last, parent, name, kind, self.cost(first, last), signature, head)
        )
        self.cursor = last + 1

    def line_pieces(self, first: int, last: int, *, at_blank: bool) -> list[tuple[int, int]]:
        """Return lines ``first``..``last`` packed greedily into pieces within the budget.

        With ``at_blank``, a piece that is not the last ends at its last blank line, if any.
        """
        pieces = []
        line = first
        while line <= last:
            start, taken, blank = line, self.costs[line], None
            while line + 1 <= last and taken + self.costs[line + 1] <= self.max_tokens:
                line += 1
                taken += self.costs[line]
                if at_blank and not self.lines[line].strip():
                    blank = line
            if line < last and blank is not None:
                line = blank
            pieces.append((start, line))
            line += 1
        return pieces

    def walk(self, node: Node, parent: tuple[str, ...], end: int) -> None:
        """Cut lines up to ``end`` holding the definitions nearest below ``node``."""
        for outer, inner in _nearest_definitions(node, self.language):
            first = max(_leading_comments(outer), self.cursor)
            last = _last_line(outer)
            if last < self.cursor:
                continue  # on a line an earlier definition already holds
            if first > self.cursor:
                self.add(first - 1, parent, "", "code")
            name = definition_name(inner) or inner.type
            kind = definition_kind(inner.type, name)
            if self.cost(first, last) <= self.max_tokens:
                self.add(last, parent, name, kind)
                continue
            members = _nearest_definitions(inner, self.language)
            if members and members[0][0].start_point[0] > inner.start_point[0]:
                # a container (its members start below its first line): its head, then
                # each member under its path
                head_end = _leading_comments(members[0][0]) - 1
                self.add(head_end, (*parent, name), name, kind, head=True)
                self.walk(inner, (*parent, name), last)
            else:
                self.split(inner, first, last, parent, name, kind)
        self.add(end, parent, "", "code")

    def split(
        self, node: Node, first: int, last: int, parent: tuple[str, ...], name: str, kind: str
    ) -> None:
        """Cut a definition too long for one passage between its statements."""
        body = max(
            node.named_children, key=lambda c: c.end_point[0] - c.start_point[0], default=None
        )
        while body is not None and len(body.named_children) == 1:
            body = body.named_children[0]
        children = body.named_children if body is not None else ()
        cuts = sorted({c.start_point[0] for c in children if first < c.start_point[0] <= last})
        signature = self.lines[node.start_point[0]].strip()[:160]
        starts = [first, *cuts]
        ends = [c - 1 for c in cuts] + [last]
        piece_first = first
        used = 0
        for start, stop in zip(starts, ends, strict=True):
            size = self.cost(start, stop)
            if used and used + size > self.max_tokens:
                self.add(start - 1, parent, name, kind, "" if piece_first == first else signature)
                piece_first, used = start, 0
            if size > self.max_tokens:  # one statement longer than the budget: by lines
                for _, end in self.line_pieces(start, stop, at_blank=False):
                    self.add(end, parent, name, kind, "" if self.cursor == first else signature)
                piece_first, used = stop + 1, 0
                continue
            used += size
        self.add(last, parent, name, kind, "" if piece_first == first else signature)

    def trivial(self, segment: _Segment) -> bool:
        """Return True for lines with no word in them (closing brackets, blank lines)."""
        return not segment.name and not any(
            ch.isalnum() for line in self.lines[segment.first : segment.last + 1] for ch in line
        )

    def spans(self) -> list[CodeSpan]:
        """Return the segments packed into spans: small same-parent neighbours together."""
        spans: list[CodeSpan] = []
        run: list[_Segment] = []

        def close() -> None:
            if not run:
                return
            named = [s for s in run if s.name]
            head = named[0] if named else run[0]
            path = head.parent if head.head or not head.name else (*head.parent, head.name)
            defines = tuple(dict.fromkeys(s.name for s in named))
            first, last = run[0].first, run[-1].last
            while first < last and not self.lines[first].strip():
                first += 1
            while last > first and not self.lines[last].strip():
                last -= 1
            spans.append(
                CodeSpan(
                    first,
                    last,
                    path,
                    head.kind if named else "code",
                    defines,
                    run[0].signature,
                )
            )
            run.clear()

        target = max(1, self.max_tokens // 2)
        for segment in self.segments:
            if run and self.trivial(segment):  # a closing brace, blank lines
                run.append(segment)
                continue
            if run:
                size = sum(s.cost for s in run)
                joins = (
                    segment.parent == run[-1].parent
                    and not segment.signature
                    and size + segment.cost <= target
                    and not (run[-1].name and run[-1].name == segment.name and run[-1].signature)
                )
                if not joins:
                    close()
            run.append(segment)
        close()
        return [s for s in spans if any(self.lines[i].strip() for i in range(s.first, s.last + 1))]


def code_spans(
    text: str, language: Language, line_costs: Sequence[int], max_tokens: int
) -> list[CodeSpan] | None:
    """Return a file's passages as syntax-aware line spans, or None to cut it by lines.

    ``line_costs`` holds each line's token count (``text.splitlines()``'s lines). None when
    the grammar is not available or the file does not parse cleanly.
    """
    lines = text.splitlines()
    if len(line_costs) != len(lines):
        raise ValueError("line_costs must hold one count per line")
    if not lines:
        return []
    parser = parser_for(language)
    if parser is None:
        return None
    tree = parser.parse(text.encode("utf-8", "surrogatepass"))
    if tree.root_node.has_error:
        return None
    cutter = _Cutter(lines, language, line_costs, max_tokens)
    cutter.walk(tree.root_node, (), len(lines) - 1)
    return cutter.spans()
