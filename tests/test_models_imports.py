"""The models package imports one way: no cycles (function-level imports included), and product code does not
import the tiny test-model factory."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FACTORY = {"models.tiny", "models.families.zimage.tiny"}
USES_FACTORY = {"models.demo"} | FACTORY  # the demo builds a tiny model on purpose
# The modules that read, load and render a base model: everything above them (grid, demo) builds on these.
SHARED = {"models.files", "models.bpe", "models.families", "models.ldm", "models.detect", "models.model_info",
          "models.loading", "models.hashes", "models.lora_file", "models.generate", "models.recipe",
          "models.preflight"}


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
    return found


def _graph(package: str) -> dict[str, set[str]]:
    files = {_module(p): p for p in (ROOT / package).rglob("*.py")}
    return {m: {i for i in _imports(p) if i in files and i != m} for m, p in files.items()}


def test_models_has_no_import_cycle():
    # Family modules are the package's plugins: models.families loads them, and they may call the shared code
    # (function-level imports), so their own imports are not edges here.
    graph = {m: (set() if m.startswith("models.families.") else deps & SHARED)
             for m, deps in _graph("models").items() if m in SHARED}
    state: dict[str, int] = {}

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for d in sorted(graph.get(m, ())):
            assert state.get(d) != 1, " → ".join(path + [m, d])
            if d not in state:
                visit(d, path + [m])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [])


def test_product_code_does_not_import_the_test_model_factory():
    for package in ("core", "models", "training", "taggers", "ui"):
        for p in (ROOT / package).rglob("*.py"):
            if _module(p) not in USES_FACTORY:
                assert not _imports(p) & FACTORY, p
