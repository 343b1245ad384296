"""The shape of the code (DESIGN §1): no import circles, imports one way, empty package files.

Every module of ``app/``, ``indexer/`` and ``models/`` is parsed with :mod:`ast`, so an import
counts wherever it is written: at the top, inside a function, or under ``if TYPE_CHECKING:``.
``from X import name`` is an import of ``X.name`` when that is a module, else of ``X``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("models", "indexer", "app")  # lower layers first: each may import only those before it
MAX_LOOSE = 3  # modules directly in indexer/ besides its subpackages (errors, query, ...)

Graph = dict[str, set[str]]


def module_files(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every module of the three packages under ``root``."""
    out: dict[str, Path] = {}
    for package in PACKAGES:
        for file in sorted((root / package).rglob("*.py")):
            parts = list(file.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = file
    return out


def _imported(node: ast.AST, module: str, is_package: bool, known: set[str]) -> Iterator[str]:
    """The first-party modules one import statement names."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            name = alias.name
            while name and name not in known:  # `import a.b.c` where only a.b is ours
                name = name.rpartition(".")[0]
            if name:
                yield name
    elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:  # relative: resolved against the importing module's package
            anchor = module.split(".")
            anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
            base = ".".join([*anchor, base] if base else anchor)
        for alias in node.names:
            sub = f"{base}.{alias.name}"
            if sub in known:
                yield sub
            elif base in known:
                yield base


def import_graph(root: Path) -> Graph:
    """Module -> the first-party modules it imports, anywhere in its source."""
    files = module_files(root)
    known = set(files)
    graph: Graph = {}
    for module, file in files.items():
        tree = ast.parse(file.read_text("utf-8"), filename=str(file))
        is_package = file.name == "__init__.py"
        graph[module] = {
            target
            for node in ast.walk(tree)
            for target in _imported(node, module, is_package, known)
            if target != module
        }
    return graph


def circles(graph: Graph) -> list[list[str]]:
    """One circle per strongly connected component, as a path ``a -> ... -> a`` (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [_path_through(graph, c) for c in components]


def _path_through(graph: Graph, component: set[str]) -> list[str]:
    """A shortest circle from the component's first module back to itself (breadth first)."""
    start = min(component)
    came_from: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for nxt in sorted(graph[node] & component):
                if nxt == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(came_from[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if nxt not in came_from:
                    came_from[nxt] = node
                    following.append(nxt)
        frontier = following
    raise AssertionError(f"no circle through {sorted(component)}")


def upward_imports(graph: Graph) -> list[str]:
    """``a imports b`` for every import of a higher layer (models < indexer < app)."""
    layer = {package: i for i, package in enumerate(PACKAGES)}
    return [
        f"{module} imports {target}"
        for module, targets in sorted(graph.items())
        for target in sorted(targets)
        if layer[target.split(".")[0]] > layer[module.split(".")[0]]
    ]


def code_in_package_files(root: Path) -> list[str]:
    """``file:line`` of the first statement beyond a docstring in each ``__init__.py``."""
    out = []
    for package in PACKAGES:
        for file in sorted((root / package).rglob("__init__.py")):
            body = ast.parse(file.read_text("utf-8")).body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                body = body[1:]
            if body:
                out.append(f"{file.relative_to(root)}:{body[0].lineno}")
    return out


def loose_modules(root: Path) -> list[str]:
    """The modules directly in ``indexer/`` (not in a stage's folder)."""
    return sorted(f.name for f in (root / "indexer").glob("*.py") if f.name != "__init__.py")


# -- the tree as it is --------------------------------------------------------------------------
def test_no_import_circles():
    found = circles(import_graph(ROOT))
    assert not found, "import circles:\n" + "\n".join(" -> ".join(c) for c in found)


def test_imports_go_one_way():
    upward = upward_imports(import_graph(ROOT))
    assert not upward, "models <- indexer <- app, but:\n" + "\n".join(upward)


def test_package_files_hold_only_a_docstring():
    found = code_in_package_files(ROOT)
    assert not found, "code in __init__.py (a docstring only; import from the module):\n" + (
        "\n".join(found)
    )


def test_indexer_keeps_its_modules_in_stage_folders():
    loose = loose_modules(ROOT)
    assert len(loose) <= MAX_LOOSE, f"{len(loose)} loose modules in indexer/: {', '.join(loose)}"


# -- the checks themselves, on a tree made to break them ---------------------------------------
def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, "utf-8")


def test_a_circle_through_type_checking_and_a_function_is_found(tmp_path):
    _write(
        tmp_path,
        {
            "models/__init__.py": "",
            "indexer/__init__.py": '"""Docstring only."""\n',
            "app/__init__.py": "",
            "app/serving/__init__.py": "",
            "app/serving/a.py": (
                "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n"
                "    from app.serving.b import B\n"
            ),
            "app/serving/b.py": "def f():\n    from . import c\n",
            "app/serving/c.py": "import app.serving.a\n",
            "app/ok.py": "from app.serving import a\n",
        },
    )
    graph = import_graph(tmp_path)
    assert graph["app.ok"] == {"app.serving.a"}  # `from package import module`: the module
    assert circles(graph) == [["app.serving.a", "app.serving.b", "app.serving.c", "app.serving.a"]]


def test_upward_imports_and_package_code_are_found(tmp_path):
    _write(
        tmp_path,
        {
            "models/__init__.py": "import os\n",
            "models/m.py": "def f():\n    import indexer.i\n",
            "indexer/__init__.py": '"""Docstring only."""\n',
            "indexer/i.py": "from app import a\n",
            "app/__init__.py": "",
            "app/a.py": "from indexer.i import x\nfrom models import m\n",
        },
    )
    graph = import_graph(tmp_path)
    assert upward_imports(graph) == ["indexer.i imports app.a", "models.m imports indexer.i"]
    assert code_in_package_files(tmp_path) == [str(Path("models/__init__.py")) + ":1"]
