"""The packages are layers: clarify_gym <- clarify_agents <- clarify_bench, imports only point down;
``clarify_gym.llm`` imports nothing of the env; no module imports itself through others.

The import graph is read from the source (every ``import`` statement, at module level, inside
functions and under ``TYPE_CHECKING`` alike), so an import that only runs on some path counts.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
from helpers import run_python

ROOT = Path(__file__).resolve().parent.parent
#: package -> its folder in the checkout
FOLDERS = {
    "clarify_gym": ROOT / "clarify_gym",
    "clarify_agents": ROOT / "agents" / "clarify_agents",
    "clarify_bench": ROOT / "benchmarks" / "clarify_bench",
}
#: package -> the packages of this repository it must never import
FORBIDDEN = {
    "clarify_gym": {"clarify_agents", "clarify_bench", "agents", "benchmarks"},
    "clarify_agents": {"clarify_bench", "agents", "benchmarks"},
    "clarify_bench": {"agents", "benchmarks"},
}


def _module_name(path: Path) -> str:
    for package, folder in FOLDERS.items():
        if path.is_relative_to(folder):
            parts = [package, *path.relative_to(folder).with_suffix("").parts]
            return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
    raise ValueError(path)


def _modules() -> dict[str, Path]:
    return {
        _module_name(path): path for folder in FOLDERS.values() for path in folder.rglob("*.py")
    }


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """Every module of this repository (or other top-level name) ``path`` imports, anywhere."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            for alias in node.names:  # `from package import submodule` imports the submodule
                sub = f"{module}.{alias.name}"
                found.add(sub if sub in MODULES else module)
    return found


def _graph() -> dict[str, set[str]]:
    """module -> the modules of the three packages it imports."""
    graph: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        targets = set()
        for imported in _imports(name, path):
            while imported and imported not in MODULES:  # `import a.b.c` of an attribute
                imported = imported.rpartition(".")[0]
            if imported and imported != name:
                targets.add(imported)
        graph[name] = targets
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
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


def test_the_graph_is_read_from_every_import():
    graph = _graph()
    assert len(graph) > 80
    assert "clarify_gym.errors" in graph["clarify_gym.cli"]
    # a function-level import counts
    assert "clarify_gym.masking" in graph["clarify_gym.cli"]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("package", sorted(FORBIDDEN), ids=str)
def test_no_module_imports_a_layer_above_it(package):
    upward = {
        name: sorted({i.partition(".")[0] for i in _imports(name, path)} & FORBIDDEN[package])
        for name, path in sorted(MODULES.items())
        if name.partition(".")[0] == package
    }
    assert {k: v for k, v in upward.items() if v} == {}


def test_llm_imports_nothing_of_the_env():
    """``clarify_gym.llm`` talks to endpoints; it may use ``clarify_gym.errors`` and itself only."""
    allowed = {"clarify_gym.errors"}
    env = {
        name: sorted(
            t
            for t in targets
            if t.startswith("clarify_gym")
            and t not in allowed
            and not t.startswith("clarify_gym.llm")
        )
        for name, targets in _graph().items()
        if name.startswith("clarify_gym.llm")
    }
    assert {k: v for k, v in env.items() if v} == {}


def test_no_import_circles():
    assert _cycles(_graph()) == []


def test_importing_the_env_loads_no_agents_benchmarks_torch_openai_or_llm_client():
    code = (
        "import json, sys\n"
        "import gymnasium as gym\n"
        "import clarify_gym, clarify_gym.env, clarify_gym.wrappers\n"
        "env = gym.make('ProactiveGather-v0'); env.reset(seed=0); env.step('STOP')\n"
        "bank = gym.make('ProactiveGatherBank-v0'); bank.reset(seed=0)\n"
        "roots = {m.partition('.')[0] for m in sys.modules}\n"
        "bad = roots & {'clarify_agents', 'clarify_bench', 'agents', 'benchmarks', 'torch', 'openai'}\n"
        "bad |= {m for m in sys.modules if m.startswith('clarify_gym.llm.') and m not in\n"
        "        ('clarify_gym.llm.cache', 'clarify_gym.llm.reply', 'clarify_gym.llm.config',\n"
        "         'clarify_gym.llm.schemas')}\n"
        "print(json.dumps(sorted(bad)))\n"
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
