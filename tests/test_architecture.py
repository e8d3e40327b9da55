"""Import directions: the data flows one way, and heavy or optional libraries stay where they belong."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1] / "lift_memory"


def _imports(path: Path, *, top_level_only: bool = False) -> set[str]:
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else ast.walk(tree)
    names = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _modules():
    return {
        p.relative_to(PACKAGE.parent).with_suffix("").as_posix().replace("/", "."): p for p in PACKAGE.rglob("*.py")
    }


def _importers(prefix: str) -> set[str]:
    return {m for m, p in _modules().items() if any(i == prefix or i.startswith(prefix + ".") for i in _imports(p))}


def test_langchain_never_appears_in_the_core():
    assert _importers("langchain_core") == set() and _importers("langgraph") == set()


def test_chromadb_only_in_the_store_and_its_plumbing():
    assert _importers("chromadb") == {"lift_memory.retrieval.store", "lift_memory.retrieval.chroma"}


# nn.Module subclasses need torch when their class is defined; the registry imports these modules only when
# such an adapter is attached, and test_package checks that `import lift_memory` loads no torch.
TORCH_MODULES = {"lift_memory.adapters.gated_memory.layer", "lift_memory.adapters.gated_memory.model"}


@pytest.mark.parametrize("lazy", ["torch", "transformers", "peft", "chromadb", "tiktoken", "matplotlib", "bm25s"])
def test_heavy_libraries_are_imported_lazily(lazy):
    eager = {m for m, p in _modules().items() if any(i.split(".")[0] == lazy for i in _imports(p, top_level_only=True))}
    assert eager - (TORCH_MODULES if lazy == "torch" else set()) == set()


@pytest.mark.parametrize(
    ("module", "forbidden"),
    [
        ("lift_memory.train", "lift_memory.bank"),
        ("lift_memory.bank", "lift_memory.train"),
        ("lift_memory.adapters", "lift_memory.train"),
        ("lift_memory.adapters", "lift_memory.bank"),
        ("lift_memory.retrieval", "lift_memory.memory"),
        ("lift_memory.segment", "lift_memory.models"),
    ],
)
def test_arrows_point_one_way(module, forbidden):
    offenders = {
        m
        for m, p in _modules().items()
        if m.startswith(module) and any(i == forbidden or i.startswith(forbidden + ".") for i in _imports(p))
    }
    assert offenders == set()


def _graph() -> dict[str, set[str]]:
    """Module -> the ``lift_memory`` modules it imports, at any depth (a lazy import still is a dependency);
    ``from package import name`` counts as importing the submodule ``package.name`` where there is one."""
    modules = _modules()
    graph = {}
    for module, path in modules.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                targets = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                continue
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != module:
                    deps.add(target)
        graph[module.removesuffix(".__init__")] = {d.removesuffix(".__init__") for d in deps}
    return graph


def test_no_import_cycles():
    graph = _graph()
    cycles = []
    for start in graph:  # depth-first from every module; a path back to the start is a cycle
        stack = [(start, [start])]
        seen = set()
        while stack:
            module, path = stack.pop()
            for dep in graph.get(module, ()):
                if dep == start:
                    cycles.append(" -> ".join([*path, start]))
                elif dep not in seen:
                    seen.add(dep)
                    stack.append((dep, [*path, dep]))
    assert cycles == []


def test_no_module_over_400_lines():
    long = {m: n for m, p in _modules().items() if (n := len(p.read_text().splitlines())) > 400}
    assert long == {}
