"""The module graph of `distill/` is a tree (cli → stages → parts): no import cycles.

Every `import distill.x` / `from distill.x import y` / `from distill import x` / `from . import x`
in a module counts, at module level and inside functions alike (a lazy import is still an edge for
a reader). Run: `python -m pytest -q tests/test_architecture.py`.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "distill"


def module_name(path: Path, root: Path) -> str:
    """`root/distill/teachers/__init__.py` → `distill.teachers`; `…/generate.py` → `distill.generate`."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(root: Path, package: str = PACKAGE) -> dict[str, Path]:
    return {module_name(p, root): p for p in sorted((root / package).rglob("*.py"))}


def resolve(name: str, known: dict[str, Path]) -> str | None:
    """The module `name` lands in: itself, else its longest known prefix (`distill.x.func` → `distill.x`)."""
    while name:
        if name in known:
            return name
        name = name.rpartition(".")[0]
    return None


def imports_of(module: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The `distill` modules that `module` imports anywhere in its file (excluding itself)."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        hits: list[str | None] = []
        if isinstance(node, ast.Import):
            hits = [resolve(a.name, known) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's package, `level - 1` packages up
                pkg = module.split(".") if is_package else module.split(".")[:-1]
                pkg = pkg[: len(pkg) - (node.level - 1)]
                base = ".".join(pkg + ([base] if base else []))
            # `from distill import x` imports the submodule x when there is one, else names in `base`
            hits = [
                f"{base}.{a.name}" if f"{base}.{a.name}" in known else resolve(base, known)
                for a in node.names
            ]
        found.update(h for h in hits if h and h != module)
    return found


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    known = modules(root)
    return {m: imports_of(m, p, known) for m, p in known.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as `[a, b, …, a]`, or None (depth-first search, three colours)."""
    colour: dict[str, int] = dict.fromkeys(graph, 0)  # 0 new, 1 on the stack, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        colour[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if colour.get(nxt, 0) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if colour.get(nxt, 0) == 0:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        colour[node] = 2
        return None

    for node in sorted(graph):
        if colour[node] == 0:
            found = visit(node)
            if found:
                return found
    return None


def test_distill_has_no_import_cycles():
    graph = import_graph()
    assert len(graph) > 20 and "distill.cli" in graph
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " → ".join(cycle or [])


# --------------------------------------------------------------- the checker itself, on tiny packages


def write_package(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        p = root / PACKAGE / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)


@pytest.mark.parametrize(
    "files, cycle",
    [
        # module-level from-import both ways
        ({"a.py": "from distill.b import f\n", "b.py": "from distill.a import g\n"}, ["a", "b", "a"]),
        # a lazy import inside a function still closes the cycle
        (
            {"a.py": "import distill.b\n", "b.py": "def f():\n    from distill import a\n"},
            ["a", "b", "a"],
        ),
        # relative imports, three modules round
        (
            {"a.py": "from .b import x\n", "b.py": "from . import c\n", "c.py": "from distill.a import y\n"},
            ["a", "b", "c", "a"],
        ),
        # through a subpackage's __init__
        (
            {"a.py": "from distill.sub import k\n", "sub/__init__.py": "from ..a import z\n"},
            ["a", "sub", "a"],
        ),
    ],
)
def test_finds_cycles_of_every_kind(tmp_path, files, cycle):
    write_package(tmp_path, {"__init__.py": "", **files})
    found = find_cycle(import_graph(tmp_path))
    assert found is not None
    names = [m.removeprefix("distill.") for m in found]
    # the same cycle, whichever module the search entered it by
    assert len(names) == len(cycle) and set(names) == set(cycle) and names[0] == names[-1]


@pytest.mark.parametrize(
    "files",
    [
        {"a.py": "from distill.b import f\n", "b.py": "import os\nfrom distill.c import g\n", "c.py": ""},
        {"a.py": "import distill.b\nimport distill.c\n", "b.py": "from distill import c\n", "c.py": ""},
        {"a.py": "def f():\n    from . import b\n", "b.py": "import json\n"},  # stdlib names do not count
        {"a.py": "from distill import a\n", "b.py": ""},  # a module importing itself is no cycle
    ],
)
def test_trees_pass(tmp_path, files):
    write_package(tmp_path, {"__init__.py": "", **files})
    assert find_cycle(import_graph(tmp_path)) is None


def test_edges_are_read_from_functions_and_relative_imports(tmp_path):
    write_package(
        tmp_path,
        {
            "__init__.py": "",
            "a.py": "def f():\n    from .b import x\n    import distill.c.d\n",
            "b.py": "",
            "c/__init__.py": "",
            "c/d.py": "from .. import b\n",
        },
    )
    graph = import_graph(tmp_path)
    assert graph["distill.a"] == {"distill.b", "distill.c.d"}
    assert graph["distill.c.d"] == {"distill.b"}


MAX_FUNCTION_LINES = 80


def test_no_function_in_the_package_is_longer_than_a_screen() -> None:
    """Every function in distill/ reads on one screen (<= 80 lines, decorators and docstring included)."""
    long = []
    for path in sorted((ROOT / PACKAGE).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                if node.end_lineno - start + 1 > MAX_FUNCTION_LINES:
                    n = node.end_lineno - start + 1
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({n} lines)")
    assert not long, "functions over 80 lines:\n" + "\n".join(long)
