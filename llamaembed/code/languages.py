"""Languages llamaembed parses: file suffixes, tree-sitter grammars, what a definition is.

A :class:`Language` names its grammar (bundled by ``semble-grammars``, loaded on first
use and never downloaded) and the syntax-tree node types that are definitions: functions,
methods, classes, types, modules. Nodes that only wrap a definition (a decorator, an
``export``, a C++ ``template``, an SQL ``statement``) count as the definition they wrap.
``language_for(path)`` is the one place a file's language is decided.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

__all__ = [
    "LANGUAGES",
    "PROSE_SUFFIXES",
    "Language",
    "definition_name",
    "is_prose",
    "language_for",
    "parser_for",
]

Node = Any  # tree_sitter.Node (imported only when a file is parsed)

# Node types that hold a definition as one of their first named children.
_WRAPPERS = frozenset(
    {
        "decorated_definition",  # Python
        "export_statement",  # JavaScript, TypeScript
        "template_declaration",  # C++
        "statement",  # SQL
        "lexical_declaration",  # const f = () => ... (JavaScript, TypeScript)
        "variable_declaration",  # var f = function ... ; Zig's const S = struct {...}
        "ambient_declaration",  # TypeScript's declare ...
        "expression_statement",  # res.send = function ... (JavaScript)
    }
)

_JS_DEFINITIONS = frozenset(
    {
        "function_declaration",
        "generator_function_declaration",
        "class_declaration",
        "abstract_class_declaration",
        "method_definition",
        "interface_declaration",
        "type_alias_declaration",
        "enum_declaration",
        "internal_module",
        "module",
        "function_signature",
        "variable_declarator",  # only with a function or class value: _js_declarator
        "assignment_expression",  # res.send = function send() {...}: likewise
    }
)


def _js_declarator(node: Node) -> bool:
    if node.type not in ("variable_declarator", "assignment_expression"):
        return True
    value = node.child_by_field_name("value") or node.child_by_field_name("right")
    return value is not None and value.type in (
        "arrow_function",
        "function_expression",
        "function",
        "generator_function",
        "class",
    )


_ELIXIR_DEFINERS = frozenset(
    {
        "def",
        "defp",
        "defmacro",
        "defmacrop",
        "defmodule",
        "defprotocol",
        "defimpl",
        "defstruct",
        "defguard",
        "defdelegate",
    }
)


def _elixir_call(node: Node) -> bool:
    target = node.child_by_field_name("target")
    return target is not None and target.text.decode("utf-8", "replace") in _ELIXIR_DEFINERS


def _zig_container(node: Node) -> bool:
    if node.type != "variable_declaration":
        return True
    return any(
        c.type
        in ("struct_declaration", "enum_declaration", "union_declaration", "opaque_declaration")
        for c in node.named_children
    )


def _c_type_with_body(node: Node) -> bool:
    """Return False for a struct/enum/union without a body (``struct node *n``: a use)."""
    if node.type.endswith("_specifier"):
        return node.child_by_field_name("body") is not None
    return True


@dataclass(frozen=True)
class Language:
    """A programming language: its grammar and the node types that are definitions.

    ``accepts`` refines ``definitions`` for node types that are definitions only
    sometimes (a JavaScript variable holding a function; an Elixir ``def`` call).
    """

    name: str
    grammar: str
    suffixes: tuple[str, ...]
    definitions: frozenset[str]
    accepts: Callable[[Node], bool] | None = field(default=None, compare=False)
    filenames: tuple[str, ...] = ()

    def is_definition(self, node: Node) -> bool:
        """Return True when a syntax-tree node is a definition of this language."""
        if node.type not in self.definitions:
            return False
        return self.accepts is None or self.accepts(node)


def _lang(
    name: str,
    suffixes: str,
    definitions: str,
    grammar: str | None = None,
    accepts: Callable[[Node], bool] | None = None,
    filenames: tuple[str, ...] = (),
) -> Language:
    return Language(
        name,
        grammar or name,
        tuple(suffixes.split()),
        frozenset(definitions.split()),
        accepts,
        filenames,
    )


_JS = " ".join(sorted(_JS_DEFINITIONS))
LANGUAGES: tuple[Language, ...] = (
    _lang("python", ".py .pyi .pyw", "function_definition class_definition"),
    _lang("javascript", ".js .mjs .cjs .jsx", _JS, accepts=_js_declarator),
    _lang("typescript", ".ts .mts .cts", _JS, accepts=_js_declarator),
    _lang("tsx", ".tsx", _JS, accepts=_js_declarator),
    _lang("go", ".go", "function_declaration method_declaration type_declaration"),
    _lang(
        "rust",
        ".rs",
        "function_item function_signature_item struct_item enum_item union_item trait_item "
        "impl_item mod_item macro_definition type_item",
    ),
    _lang(
        "java",
        ".java",
        "class_declaration interface_declaration enum_declaration record_declaration "
        "annotation_type_declaration method_declaration constructor_declaration",
    ),
    _lang(
        "kotlin",
        ".kt .kts",
        "class_declaration object_declaration function_declaration companion_object",
    ),
    _lang(
        "c",
        ".c .h",
        "function_definition struct_specifier enum_specifier union_specifier type_definition",
        accepts=_c_type_with_body,
    ),
    _lang(
        "cpp",
        ".cc .cpp .cxx .c++ .hh .hpp .hxx .h++ .ipp",
        "function_definition class_specifier struct_specifier enum_specifier union_specifier "
        "namespace_definition type_definition alias_declaration concept_definition",
        accepts=_c_type_with_body,
    ),
    _lang(
        "csharp",
        ".cs",
        "class_declaration struct_declaration interface_declaration enum_declaration "
        "record_declaration method_declaration constructor_declaration property_declaration "
        "namespace_declaration delegate_declaration",
    ),
    _lang(
        "ruby",
        ".rb .rake .gemspec",
        "class module method singleton_method",
        filenames=("Rakefile", "Gemfile"),
    ),
    _lang(
        "php",
        ".php",
        "class_declaration interface_declaration trait_declaration enum_declaration "
        "function_definition method_declaration",
    ),
    _lang(
        "swift",
        ".swift",
        "class_declaration protocol_declaration function_declaration init_declaration "
        "protocol_function_declaration typealias_declaration",
    ),
    _lang(
        "scala",
        ".scala .sc",
        "class_definition object_definition trait_definition enum_definition "
        "function_definition function_declaration",
    ),
    _lang("lua", ".lua", "function_declaration"),
    _lang("bash", ".sh .bash", "function_definition"),
    _lang("elixir", ".ex .exs", "call", accepts=_elixir_call),
    _lang(
        "haskell",
        ".hs",
        "function signature bind data_type newtype class instance type_synomym type_family",
    ),
    _lang(
        "zig",
        ".zig",
        "function_declaration test_declaration variable_declaration",
        accepts=_zig_container,
    ),
    _lang(
        "sql",
        ".sql",
        "create_table create_view create_materialized_view create_function create_index "
        "create_type create_trigger create_schema alter_table",
    ),
)

_BY_SUFFIX = {s: lang for lang in LANGUAGES for s in lang.suffixes}
_BY_NAME = {n: lang for lang in LANGUAGES for n in lang.filenames}


PROSE_SUFFIXES = frozenset({".md", ".markdown", ".rst", ".txt", ".adoc", ".org", ".tex"})
"""Suffixes of prose files: cut at headings and paragraphs, never parsed as code."""


def is_prose(path: str | PurePath) -> bool:
    """Return True for a prose file (Markdown, reStructuredText, text, …) by its suffix."""
    return PurePath(path).suffix.lower() in PROSE_SUFFIXES


def language_for(path: str | PurePath) -> Language | None:
    """Return the language of a file by its suffix (or name), None for anything else."""
    pure = PurePath(path)
    return _BY_NAME.get(pure.name) or _BY_SUFFIX.get(pure.suffix.lower())


_PARSERS: dict[tuple[str, int], Any] = {}
_PARSERS_LOCK = threading.Lock()


def parser_for(language: Language) -> Any | None:
    """Return a tree-sitter parser for the language (one per thread), None if unavailable.

    The grammar comes from ``semble-grammars`` (bundled, extracted once into its cache);
    a missing package or grammar means the caller falls back to line-based passages.
    """
    key = (language.grammar, threading.get_ident())
    with _PARSERS_LOCK:
        if key in _PARSERS:
            return _PARSERS[key]
    parser = _new_parser(language.grammar)
    with _PARSERS_LOCK:
        _PARSERS[key] = parser
    return parser


@functools.cache
def _grammar(name: str) -> Any | None:
    try:
        from semble_grammars import get_language
    except ImportError:
        return None
    try:
        return get_language(name)
    except Exception:
        return None


def _new_parser(name: str) -> Any | None:
    grammar = _grammar(name)
    if grammar is None:
        return None
    from tree_sitter import Parser

    return Parser(grammar)


_NAME_TYPES = frozenset(
    {
        "identifier",
        "type_identifier",
        "field_identifier",
        "property_identifier",
        "simple_identifier",
        "constant",
        "name",
        "word",
        "variable",
        "object_reference",
        "namespace_identifier",
        "qualified_identifier",
        "operator_name",
        "destructor_name",
        "alias",
    }
)


def definition_name(node: Node) -> str:
    """Return the name a definition node defines ("" when it has none to read).

    The ``name`` field where the grammar has one; C and C++ declarators are followed to
    their identifier; a Rust ``impl`` is named by its type (``impl Display for Point``:
    "Point"); an Elixir ``def`` by its first argument; otherwise the first identifier-like
    child.
    """
    for field_name in ("name", "type", "declarator", "left"):
        child = node.child_by_field_name(field_name)
        if child is None:
            continue
        if field_name == "type" and node.type != "impl_item":
            continue
        if field_name == "left":  # an assignment: the whole target (res.send)
            return _short(child)
        while child.type not in _NAME_TYPES:
            inner = child.child_by_field_name("declarator") or child.child_by_field_name("name")
            if inner is None:
                break
            child = inner
        return _short(child)
    if node.type == "call":  # Elixir: def name(args) do
        arguments = [c for c in node.named_children if c.type == "arguments"]
        if arguments and arguments[0].named_children:
            first = arguments[0].named_children[0]
            target = first.child_by_field_name("target")
            return _short(target if target is not None else first)
        return ""
    for child in node.named_children:
        if child.type == "string" and node.type == "test_declaration":  # Zig: test "name"
            return _short(child).strip('"')
        if child.type in _NAME_TYPES:
            return _short(child)
        if child.type in ("type_spec", "const_spec", "var_spec", "variable_declarator"):
            return definition_name(child)
    return ""


def _short(node: Node) -> str:
    text = node.text.decode("utf-8", "replace")
    return text.split("(")[0].split("<")[0].strip()[:80]
