"""The package's import layering: no import cycle, no lower layer importing a higher one.

The layer order is the table in ``debiaslab/__init__.py``'s docstring; this test reads it, parses
every module under ``src/debiaslab`` with :mod:`ast` (imports at the top of a module and inside
functions alike) and checks each import of debiaslab against it.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import debiaslab

PACKAGE = Path(debiaslab.__file__).resolve().parent
DEFERRED = re.compile(r"#\s*deferred:\s*\S")  # the marker that says why an import is deferred
# Function-level imports of debiaslab without a reason that are still waiting to move to the top
# of their module (issue 14, point 4). Lower it as they move; never raise it.
UNMARKED_FUNCTION_IMPORTS_LEFT = 4


@dataclass(frozen=True)
class Import:
    """One ``import debiaslab...`` / ``from debiaslab... import`` statement's target."""

    source: str  # importing module, e.g. "debiaslab.report"
    target: str  # imported module, e.g. "debiaslab.results"
    line: int
    top: bool  # executed at import time (module body, incl. if/try), not inside a function
    reason: bool  # carries a ``# deferred: <why>`` marker


def layer_table(doc: str) -> list[tuple[str, list[str]]]:
    """``[(layer, [names])]`` lowest first, from the indented table in the package docstring."""
    start = doc.index("Layers, lowest first")
    rows = []
    for line in doc[start:].splitlines()[1:]:
        if rows and not line.strip():
            break
        if rows and line.startswith("     "):  # a row's names continued on the next line
            rows[-1][1].extend(line.split())
        elif line.startswith("    ") and line.strip():
            layer, *names = line.split()
            rows.append((layer, names))
    return rows


def module_names(root: Path) -> dict[str, Path]:
    """Dotted module name → file, for every module of the package under ``root``."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = [root.name, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> list[Import]:
    """Every debiaslab import in ``path`` (module-level and function-level)."""
    source = path.read_text("utf-8")
    lines = source.splitlines()
    tree = ast.parse(source, filename=str(path))
    top_level = set()
    stack = list(tree.body)
    while stack:  # statements run at import time: the body and its if/try/with blocks
        node = stack.pop()
        top_level.add(id(node))
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            stack.extend(n for n in ast.iter_child_nodes(node) if isinstance(n, ast.stmt))
        elif isinstance(node, ast.ClassDef):  # a class body runs at import time too
            stack.extend(n for n in node.body if not isinstance(n, ast.FunctionDef))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, *([node.module] if node.module else [])])
            names = [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        context = "\n".join(lines[max(node.lineno - 2, 0) : node.end_lineno])
        for name in names:
            if name.split(".")[0] != "debiaslab":
                continue
            target = _resolve(name, modules)
            if target and target != module:
                found.append(
                    Import(
                        module,
                        target,
                        node.lineno,
                        id(node) in top_level,
                        bool(DEFERRED.search(context)),
                    )
                )
    return found


def layer_of(module: str, table: list[tuple[str, list[str]]]) -> tuple[int, str] | None:
    """(rank, layer name) of a module: the longest table entry that names it or its package."""
    best = None
    for rank, (layer, names) in enumerate(table):
        for name in names:
            full = name if name == "debiaslab" else f"debiaslab.{name}"
            covers = module == full or (name != "debiaslab" and module.startswith(full + "."))
            if covers and (best is None or len(full) > best[0]):
                best = (len(full), rank, layer)
    return None if best is None else best[1:]


def all_imports(root: Path = PACKAGE) -> list[Import]:
    modules = module_names(root)
    return [imp for name, path in modules.items() for imp in imports_of(name, path, modules)]


def upward_imports(imports: list[Import], table) -> list[str]:
    problems = []
    for imp in imports:
        low, low_name = layer_of(imp.source, table)
        high, high_name = layer_of(imp.target, table)
        if high > low:
            problems.append(
                f"{imp.source} (layer {low_name}) line {imp.line} imports {imp.target} "
                f"(layer {high_name}, higher)"
            )
    return problems


def cycles(imports: list[Import]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    graph: dict[str, set[str]] = {}
    for imp in imports:
        graph.setdefault(imp.source, set()).add(imp.target)
        graph.setdefault(imp.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


TABLE = layer_table(debiaslab.__doc__ or "")
IMPORTS = all_imports()


def test_every_module_has_a_layer():
    assert [layer for layer, _ in TABLE][:2] == ["base", "records"] and len(TABLE) >= 8
    unplaced = [m for m in module_names(PACKAGE) if layer_of(m, TABLE) is None]
    assert not unplaced, f"add to the layer table in debiaslab/__init__.py: {unplaced}"


def test_no_import_cycle():
    # Module-level imports run when a module is loaded; function-level ones when it is used.
    # Neither may close a circle: a circle means two modules are one job split in two.
    assert cycles([imp for imp in IMPORTS if imp.top]) == []
    assert cycles(IMPORTS) == []


def test_no_lower_layer_imports_a_higher_one():
    problems = upward_imports(IMPORTS, TABLE)
    assert not problems, "upward imports:\n" + "\n".join(problems)


def test_function_level_imports_say_why_or_are_counted():
    unmarked = [imp for imp in IMPORTS if not imp.top and not imp.reason]
    statements = {(imp.source, imp.line) for imp in unmarked}
    assert len(statements) <= UNMARKED_FUNCTION_IMPORTS_LEFT, (
        f"{len(statements)} function-level debiaslab imports without '# deferred: <why>' "
        f"(at most {UNMARKED_FUNCTION_IMPORTS_LEFT}); move new ones to the top of the module"
    )


def test_the_checks_find_a_cycle_and_an_upward_import(tmp_path: Path):
    """The walker itself: a planted cycle and a planted upward import are both reported."""
    pkg = tmp_path / "debiaslab"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "low.py").write_text("def f():\n    from debiaslab.sub import high\n")
    (pkg / "sub" / "high.py").write_text(
        "from debiaslab import low\n\ndef g():\n    from . import peer  # deferred: test\n"
    )
    (pkg / "sub" / "peer.py").write_text("from debiaslab.sub.high import g\n")
    table = [("base", ["debiaslab", "low"]), ("top", ["sub"])]
    imports = all_imports(pkg)
    assert {(i.source, i.target, i.top, i.reason) for i in imports} == {
        ("debiaslab.low", "debiaslab.sub.high", False, False),
        ("debiaslab.sub.high", "debiaslab.low", True, False),
        ("debiaslab.sub.high", "debiaslab.sub.peer", False, True),
        ("debiaslab.sub.peer", "debiaslab.sub.high", True, False),
    }
    assert cycles([i for i in imports if i.top]) == []
    assert cycles(imports) == [["debiaslab.low", "debiaslab.sub.high", "debiaslab.sub.peer"]]
    assert upward_imports(imports, table) == [
        "debiaslab.low (layer base) line 2 imports debiaslab.sub.high (layer top, higher)"
    ]
