"""The packages are layers: clarify_gym <- clarify_agents <- clarify_bench, imports only point down."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
from helpers import run_python

ROOT = Path(__file__).resolve().parent.parent
#: package -> the packages of this repository it must never import
FORBIDDEN = {
    "clarify_gym": {"clarify_agents", "clarify_bench", "agents", "benchmarks"},
    "clarify_agents": {"clarify_bench", "agents", "benchmarks"},
}
#: package -> its folder in the checkout
FOLDERS = {
    "clarify_gym": ROOT / "clarify_gym",
    "clarify_agents": ROOT / "agents" / "clarify_agents",
}


def _imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.partition(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.partition(".")[0])
    return roots


@pytest.mark.parametrize("package", sorted(FORBIDDEN), ids=str)
def test_no_module_imports_a_layer_above_it(package):
    upward = {
        str(path.relative_to(ROOT)): sorted(_imported_roots(path) & FORBIDDEN[package])
        for path in sorted(FOLDERS[package].rglob("*.py"))
    }
    assert {k: v for k, v in upward.items() if v} == {}


def test_importing_the_env_loads_no_agents_benchmarks_torch_or_openai():
    code = (
        "import json, sys\n"
        "import gymnasium as gym\n"
        "import clarify_gym, clarify_gym.env, clarify_gym.wrappers\n"
        "env = gym.make('ProactiveGather-v0'); env.reset(seed=0); env.step('STOP')\n"
        "bank = gym.make('ProactiveGatherBank-v0'); bank.reset(seed=0)\n"
        "roots = {m.partition('.')[0] for m in sys.modules}\n"
        "print(json.dumps(sorted(roots & {'clarify_agents', 'clarify_bench', 'agents', 'benchmarks', 'torch', 'openai'})))\n"
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
