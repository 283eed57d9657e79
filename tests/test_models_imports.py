"""The architecture as a test: the packages import one way, no two modules import each other in a circle (lazy
imports inside functions and `TYPE_CHECKING` imports included: a lazy import hides a misplaced name, it does not
remove the dependency), and product code does not import the tiny test-model factory."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("core", "models", "training", "taggers", "ui")
# Which other packages each may import (docs/ARCHITECTURE.md): the UI never imports training code, it runs it.
ALLOWED = {"core": set(), "models": {"core"}, "taggers": {"core"}, "training": {"core", "models"},
           "ui": {"core", "models", "taggers"}}
# the tiny-model factory: models/tiny.py and each family's tiny module (one may reuse another's tokenizer)
FACTORY = {"models.tiny"} | {f"models.families.{p.parent.name}.tiny" for p in ROOT.glob("models/families/*/tiny.py")}
USES_FACTORY = {"models.demo"} | FACTORY  # the demo builds a tiny model on purpose


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _files() -> dict[str, Path]:
    return {_module(p): p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))}


def _imports(path: Path, known: set[str]) -> set[str]:
    """Danlu's modules that `path` imports anywhere in it. `from pkg import sub` of a submodule is an edge to the
    submodule only (importing it does not use what the package's own __init__ defines)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            subs = {f"{node.module}.{a.name}" for a in node.names} & known
            found |= subs
            if len(subs) < len(node.names):
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
    return found & known


def _graph() -> dict[str, set[str]]:
    files = _files()
    return {m: _imports(p, set(files)) - {m} for m, p in files.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The groups of modules that reach each other (strongly connected components of two or more; Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_lazy_cycle_and_nothing_else(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "a.py").write_text("from pkg.b import x\n", encoding="utf-8")
    (pkg / "b.py").write_text("def f():\n    from pkg import a\n", encoding="utf-8")
    (pkg / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.a import y\n",
                              encoding="utf-8")
    known = {"pkg.a", "pkg.b", "pkg.c"}
    graph = {m: _imports(pkg / f"{m[4:]}.py", known) - {m} for m in known}
    assert graph == {"pkg.a": {"pkg.b"}, "pkg.b": {"pkg.a"}, "pkg.c": {"pkg.a"}}
    assert _cycles(graph) == [["pkg.a", "pkg.b"]]


def test_no_module_imports_in_a_cycle():
    cycles = _cycles(_graph())
    assert not cycles, "import cycles (lazy imports included):\n" + "\n".join(" ↔ ".join(c) for c in cycles)


def test_packages_import_one_way():
    wrong = [f"{m} → {d}" for m, deps in sorted(_graph().items()) for d in sorted(deps)
             if d.split(".")[0] != m.split(".")[0] and d.split(".")[0] not in ALLOWED[m.split(".")[0]]]
    assert not wrong, "\n".join(wrong)


def test_product_code_does_not_import_the_test_model_factory():
    graph = _graph()
    wrong = [m for m, deps in graph.items() if m not in USES_FACTORY and deps & FACTORY]
    assert not wrong, wrong
