"""LLM pipeline throughput: whole episodes per second against the fake OpenAI-compatible server
with 200 ms latency per request, at concurrency 1, 4, 16 and 32. Prints JSON and saves it to
``benchmarks/results/perf_llm.json``.

Run: ``python -m clarify_bench.studies.perf_llm [--latency 0.2] [--waves 3] [--ray 32]``. Target (issue 4):
speed-up over concurrency 1 of at least 0.8 * N up to N = 32; with ``--ray N`` the same episodes
also run on Ray actors of a local cluster (issue 15: speed-up at N = 32 over the one-thread rate
at least 0.8 * N), stored under ``"ray"``.

An episode is the paper's whole pipeline over HTTP: ``ProactiveGather-LLM-v0`` (LLM user oracle,
LLM writer, LLM checklist judge) played by a :class:`~clarify_agents.chat.ChatAgent`, five questions
then the outline and its score: 12 requests, so at least 2.4 s at 200 ms each. Concurrency N
runs N episodes at a time on N threads (one env and one agent clone each; every LLM part
shares the process-wide connection pool and concurrency limit), ``waves`` episodes per thread.
The reply cache is off, so every request reaches the server. The server runs in its own
process (``python -m clarify_gym.testing``), as a real endpoint would.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from clarify_bench.harness.runfiles import write_json_atomic

RESULTS = Path(__file__).resolve().parents[2] / "results" / "perf_llm.json"
CONCURRENCY = (1, 4, 16, 32)
QUESTIONS_PER_EPISODE = 5


def run_episodes(concurrency: int, waves: int, seed0: int) -> dict[str, Any]:
    """Play ``concurrency * waves`` episodes on ``concurrency`` threads; time them."""
    import gymnasium as gym
    from clarify_agents.chat import ChatAgent

    import clarify_gym  # noqa: F401  (registers the ids)

    agent = ChatAgent.from_spec("chat:fake-model")
    workers = [
        (gym.make("ProactiveGather-LLM-v0", max_questions=QUESTIONS_PER_EPISODE), agent.clone())
        for _ in range(concurrency)
    ]
    errors: list[BaseException] = []
    calls = [0] * concurrency

    def work(index: int) -> None:
        env, player = workers[index]
        try:
            for wave in range(waves):
                seed = seed0 + wave * concurrency + index
                obs, _ = env.reset(seed=seed)
                player.reset(seed=seed)
                while True:
                    obs, _, terminated, truncated, info = env.step(player.act(obs))
                    if terminated or truncated:
                        break
                calls[index] += info["llm/calls"] + player.usage.calls
        except BaseException as exc:  # reported after the join
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(concurrency)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - start
    if errors:
        raise errors[0]
    episodes = concurrency * waves
    return {
        "episodes": episodes,
        "seconds": round(seconds, 3),
        "episodes_per_s": round(episodes / seconds, 4),
        "requests": sum(calls),
        "requests_per_s": round(sum(calls) / seconds, 2),
    }


def run_ray_episodes(concurrency: int, waves: int, seed0: int, actors: int) -> dict[str, Any]:
    """The same episodes on Ray: ``actors`` :class:`~clarify_bench.harness.ray_runner.EpisodeActor` actors
    of ``concurrency / actors`` threads each (built and warmed before the clock starts); the
    driver submits every episode and collects the rows, as ``clarify-gym bench --ray`` does."""
    import math

    import clarify_gym
    from clarify_bench.harness.episodes import plan_episodes
    from clarify_bench.harness.ray_runner import RayRunner, require_ray

    ray = require_ray(loopback=True)

    runner = RayRunner(actors=actors)  # a local cluster, given this process's LLM settings
    try:
        cls = runner.actor_class(math.ceil(concurrency / actors), actors)
        tasks = clarify_gym.load_tasks("sample", split="test")
        env_kwargs = {"max_questions": QUESTIONS_PER_EPISODE}
        handles = [
            cls.remote("chat:fake-model", {}, "ProactiveGather-LLM-v0", env_kwargs, tasks)
            for _ in range(actors)
        ]
        ray.get([h.describe.remote() for h in handles])  # agents built, imports done
        seeds = range(seed0, seed0 + math.ceil(concurrency * waves / len(tasks)))
        plan = plan_episodes(["chat:fake-model"], [t.id for t in tasks], seeds, concurrency * waves)
        warm = plan_episodes(["chat:fake-model"], [tasks[0].id], [seed0 - 1], None)[0]
        ray.get([h.run.remote(warm) for h in handles])  # connection pools, task masks
        start = time.perf_counter()
        rows = ray.get([handles[i % actors].run.remote(e) for i, e in enumerate(plan)])
        seconds = time.perf_counter() - start
    finally:
        runner.close()
    return {
        "episodes": len(rows),
        "actors": actors,
        "threads_per_actor": math.ceil(concurrency / actors),
        "seconds": round(seconds, 3),
        "episodes_per_s": round(len(rows) / seconds, 4),
        "questions": sum(r["env/questions"] for r in rows),
    }


def start_server(latency: float) -> tuple[subprocess.Popen[str], str]:
    """The fake server in its own process; returns it and its base URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "clarify_gym.testing", "--latency", str(latency)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--latency", type=float, default=0.2, help="server seconds per request")
    parser.add_argument("--waves", type=int, default=3, help="episodes per thread")
    parser.add_argument(
        "--concurrency", type=int, nargs="+", default=list(CONCURRENCY), help="levels to measure"
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to save the JSON")
    parser.add_argument(
        "--ray",
        type=int,
        nargs="*",
        default=None,
        metavar="N",
        help="also measure these levels on a local Ray cluster (bench --ray), e.g. --ray 32",
    )
    parser.add_argument("--ray-actors", type=int, default=2, help="Ray actors (default: 2)")
    args = parser.parse_args(argv)

    proc, url = start_server(args.latency)
    try:
        os.environ.update(
            {
                "CLARIFY_GYM_LLM_BASE_URL": url,
                "CLARIFY_GYM_LLM_API_KEY": "not-needed",
                "CLARIFY_GYM_LLM_MODEL": "fake-model",
                "CLARIFY_GYM_LLM_CACHE": "off",
                "CLARIFY_GYM_LLM_CONCURRENCY": str(max([*args.concurrency, *(args.ray or [])])),
            }
        )
        run_episodes(1, 1, seed0=10_000)  # warm-up: imports, connection pool, task masks
        by_level = {str(n): run_episodes(n, args.waves, seed0=1000 * n) for n in args.concurrency}
        by_ray = {
            str(n): run_ray_episodes(n, args.waves, 1000 * n, min(args.ray_actors, n))
            for n in args.ray or []
        }
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    base = by_level[str(args.concurrency[0])]["episodes_per_s"]
    speedup = {n: round(r["episodes_per_s"] / base, 2) for n, r in by_level.items()}
    result = {
        "benchmark": "perf_llm",
        "env_id": "ProactiveGather-LLM-v0",
        "agent": "ChatAgent (chat:fake-model)",
        "server": "clarify_gym.testing fake server, own process",
        "latency_s": args.latency,
        "requests_per_episode": by_level[str(args.concurrency[0])]["requests"]
        // by_level[str(args.concurrency[0])]["episodes"],
        "waves": args.waves,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "episodes_per_s": {n: r["episodes_per_s"] for n, r in by_level.items()},
        "speedup": speedup,
        "by_concurrency": by_level,
        "target": "speedup >= 0.8 * N",
        "met": {n: speedup[n] >= 0.8 * int(n) for n in speedup},
    }
    if by_ray:
        ray_speedup = {n: round(r["episodes_per_s"] / base, 2) for n, r in by_ray.items()}
        result["ray"] = {
            "runner": "Ray actors on a local cluster (clarify_bench.harness.ray_runner.EpisodeActor)",
            "episodes_per_s": {n: r["episodes_per_s"] for n, r in by_ray.items()},
            "speedup": ray_speedup,
            "speedup_over": f"threads at concurrency {args.concurrency[0]}",
            "by_concurrency": by_ray,
            "met": {n: ray_speedup[n] >= 0.8 * int(n) for n in ray_speedup},
        }
    write_json_atomic(args.out, result)
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
