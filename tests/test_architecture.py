"""The package's shape: no import cycles, modules and functions of readable size."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "llamaembed"


def _modules() -> dict[str, tuple[Path, bool]]:
    """Return every module's dotted name with its file and whether it is a package."""
    found = {}
    for file in PACKAGE.rglob("*.py"):
        parts = list(file.relative_to(PACKAGE.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        found[".".join(parts)] = (file, is_package)
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def import_graph(*, type_checking: bool = False) -> dict[str, set[str]]:
    """Return module -> the package modules it imports when it runs.

    Imports inside functions (lazy imports) count; imports under ``if TYPE_CHECKING:``
    never run and count only with ``type_checking`` (they are real in meaning: the module
    needs the other to be understood). ``from pkg import name`` is an edge to ``pkg.name``
    when that is a module, else to ``pkg``.
    """
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, (file, is_package) in modules.items():
        tree = ast.parse(file.read_text(encoding="utf-8"))
        skipped = {
            id(inner)
            for node in ast.walk(tree)
            if not type_checking and isinstance(node, ast.If) and _is_type_checking(node)
            for statement in node.body
            for inner in ast.walk(statement)
        }
        here = name.split(".") if is_package else name.split(".")[:-1]
        edges: set[str] = set()
        for node in ast.walk(tree):
            if id(node) in skipped:
                continue
            if isinstance(node, ast.Import):
                for alias in node.names:
                    target = alias.name
                    while target.startswith("llamaembed") and target not in modules:
                        target = target.rsplit(".", 1)[0]
                    if target in modules:
                        edges.add(target)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = here[: len(here) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                if target not in modules:
                    continue
                for alias in node.names:
                    child = f"{target}.{alias.name}"
                    edges.add(child if child in modules else target)
        edges.discard(name)
        graph[name] = edges
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Return the strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph.get(node, ())):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def test_the_cycle_finder_sees_direct_lazy_and_package_cycles() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert find_cycles(graph) == [["a", "b", "c"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_the_graph_reads_every_kind_of_import() -> None:
    graph = import_graph()
    # a module-level relative import, a lazy one inside a function, a package's __init__
    assert "llamaembed.errors" in graph["llamaembed.engine.llama"]
    assert "llamaembed.hub.registry" in graph["llamaembed.engine.llama"]  # from_pretrained
    assert "llamaembed.cli" in graph["llamaembed.__main__"]


def test_no_import_cycles() -> None:
    cycles = find_cycles(import_graph())
    assert not cycles, "import cycles between modules: " + "; ".join(
        " <-> ".join(group) for group in cycles
    )


def test_no_import_cycles_in_the_store_counting_type_only_imports() -> None:
    graph = import_graph(type_checking=True)
    cycles = [g for g in find_cycles(graph) if any(m.startswith("llamaembed.store") for m in g)]
    assert not cycles, "store/ import cycles, type-only imports counted: " + "; ".join(
        " <-> ".join(group) for group in cycles
    )


def _own_private_names(tree: ast.Module) -> set[str]:
    """Return the private attribute names a module defines (methods, self._x, class fields)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.ClassDef):
            for statement in node.body:
                for target in getattr(statement, "targets", [getattr(statement, "target", None)]):
                    if isinstance(target, ast.Name):
                        names.add(target.id)
    return {n for n in names if n.startswith("_") and not n.startswith("__")}


def test_no_module_reads_private_attributes_of_another_modules_objects() -> None:
    """``obj._name`` only where this module's own classes define ``_name``."""
    found = []
    for file in PACKAGE.rglob("*.py"):
        if file.name == "_native.py":
            continue  # the one ctypes boundary: llama-cpp-python's loaded library
        tree = ast.parse(file.read_text(encoding="utf-8"))
        own = _own_private_names(tree)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Attribute) or not node.attr.startswith("_"):
                continue
            if node.attr.startswith("__") or node.attr in own:
                continue
            if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                continue
            found.append(f"{file.relative_to(PACKAGE)}:{node.lineno} {ast.unparse(node)}")
    assert not found, "private attributes of other modules' objects: " + "; ".join(found)


def test_the_private_attribute_check_sees_a_foreign_read() -> None:
    tree = ast.parse("class A:\n    def f(self, other):\n        self._x = other._y\n")
    assert _own_private_names(tree) == {"_x"}


def test_embedders_implement_the_contract_without_probing() -> None:
    """Consumers take the Embedder contract; none probes a model with hasattr/getattr."""
    for file in PACKAGE.rglob("*.py"):
        if file.parent.name in ("engine", "convert") or file.name == "__init__.py":
            continue  # llama.cpp's bindings and GGUF readers do probe optional symbols
        text = file.read_text(encoding="utf-8")
        for probe in ("hasattr(llama", "hasattr(model", "hasattr(embedder", "Llama | Static"):
            assert probe not in text, f"{file.relative_to(PACKAGE)} probes: {probe}"
        assert "getattr(embedder" not in text and "getattr(model" not in text, file


MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 100


def test_modules_and_functions_stay_readable() -> None:
    long_modules, long_functions = [], []
    for file in sorted(PACKAGE.rglob("*.py")):
        text = file.read_text(encoding="utf-8")
        name = str(file.relative_to(PACKAGE))
        if len(text.splitlines()) > MAX_MODULE_LINES:
            long_modules.append(f"{name} ({len(text.splitlines())} lines)")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long_functions.append(f"{name}:{node.name} ({length} lines)")
    assert not long_modules, f"modules over {MAX_MODULE_LINES} lines: {long_modules}"
    assert not long_functions, f"functions over {MAX_FUNCTION_LINES} lines: {long_functions}"


def test_benchmarks_and_examples_import_what_exists() -> None:
    """A name moved or removed in the package fails here, not when someone runs a script."""
    import importlib

    missing = []
    for folder in ("benchmarks", "examples"):
        for file in sorted((PACKAGE.parent / folder).glob("*.py")):
            for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
                if not (isinstance(node, ast.ImportFrom) and node.level == 0):
                    continue
                if not (node.module or "").startswith("llamaembed"):
                    continue
                module = importlib.import_module(node.module or "")
                for alias in node.names:
                    found = hasattr(module, alias.name)
                    if not found:
                        try:
                            importlib.import_module(f"{node.module}.{alias.name}")
                            found = True
                        except ImportError:
                            pass
                    if not found:
                        missing.append(f"{file.name}: {node.module}.{alias.name}")
    assert not missing, missing
