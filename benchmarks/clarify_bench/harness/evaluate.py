"""Benchmark agents on ProactiveGather: agents × tasks × seeds (``clarify-gym bench``).

One episode is one (agent, task, seed): the env is reset with the seed and
``options={"task_id": ...}``, the agent with a seed derived from (seed, task id) (the task
itself, hidden part included, goes only to privileged agents: the oracle), then the agent acts
until STOP or the question budget. Every finished episode is appended to
``<out>/results.jsonl`` at once (flushed and fsync'd) with the glossary metrics as top-level
keys, the dialogue, the per-question rewards, cited ids and the outline; ``metadata.json``
records the env, agents, models, seeds, task source, date, git commit and package versions.

``--resume`` skips the episodes already in ``results.jsonl`` (a torn last line left by a kill
is truncated first), so a run killed at any moment and resumed ends with every episode exactly
once; it refuses a run folder made with different settings. The summary table (mean and 95 %
CI per agent) is printed and saved as ``summary.md``, with PNG plots, all from
``results.jsonl``; ``--summarize DIR`` rebuilds them from an existing run.

Agents run as :mod:`clarify_agents.base` describes: unbatched agents (baselines, API chat models) get
one instance and one env per worker thread (``--concurrency``); batched agents (local models)
serve ``--batch-size`` episodes at once through ``act_batch``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clarify_bench.harness.episodes import MAX_SEEDS, parse_seeds
from clarify_bench.harness.summary import summarize_run
from clarify_gym.cli import json_object
from clarify_gym.errors import ClarifyGymError

__all__ = [
    "MAX_SEEDS",
    "BenchConfig",
    "BenchConfigError",
    "add_arguments",
    "evaluate",
    "parse_seeds",
    "run",
    "summarize_run",
]

logger = logging.getLogger(__name__)

DEFAULT_AGENTS = ("passive", "generic", "random", "oracle")


class BenchConfigError(ClarifyGymError, ValueError):
    """Benchmark settings that cannot be used; the message names the flag and the fix."""


@dataclass
class BenchConfig:
    """Settings of one benchmark run."""

    agents: tuple[str, ...] = DEFAULT_AGENTS
    """Agent specs (see clarify_agents.registry), e.g. passive, generic, random, oracle, smollm2, hf:<model>."""
    tasks: str = "sample"
    """Task source: anything clarify_gym.load_tasks takes."""
    split: str | None = None
    """Keep one split (None: 'test' for the bundled sample, every task otherwise; 'all': every task)."""
    seeds: tuple[int, ...] = (0,)
    """Seeds: every (task, seed) pair is one episode per agent."""
    episodes: int | None = None
    """Run only the first N (seed-major) episodes of the task × seed grid per agent."""
    out: str | None = None
    """Run folder (default runs/bench-<UTC date-time>)."""
    resume: bool = False
    """Continue the run in --out, skipping episodes already in results.jsonl."""
    concurrency: int = 1
    """Episodes in flight at once for unbatched agents (one thread, agent and env each)."""
    batch_size: int = 8
    """Episodes per act_batch call for batched agents (local models)."""
    env_id: str = "ProactiveGather-v1"
    """Gymnasium env id."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """Extra keyword arguments for gym.make (e.g. {"max_questions": 3})."""
    agent_kwargs: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Constructor keyword arguments per agent spec (or per kind, e.g. {"hf": {"max_new_tokens": 32}})."""
    threads: int | None = None
    """torch CPU threads for local models (None: torch's default). On a busy machine 1 is often fastest."""
    ray: str | None = None
    """Run episodes on Ray: "local" starts a local cluster, anything else is an address to join (None: threads here)."""
    ray_actors: int | None = None
    """Ray actors per agent (None: one per CPU of the cluster, at most --concurrency)."""
    ray_gpus: float = 0.0
    """GPUs per Ray actor of a local-model agent (1: one model per GPU; 0: CPU only)."""
    plots: bool = True
    """Save the PNG plots."""
    progress: bool = True
    """Show a progress bar (stderr)."""

    def __post_init__(self) -> None:
        if not self.agents:
            raise BenchConfigError("give at least one agent with --agents")
        twice = sorted({a for a in self.agents if self.agents.count(a) > 1})
        if twice:
            raise BenchConfigError(
                f"--agents lists {', '.join(twice)} more than once; list each agent once"
            )
        if not self.seeds:
            raise BenchConfigError("give at least one seed with --seeds")
        if self.concurrency < 1 or self.batch_size < 1:
            raise BenchConfigError(
                f"--concurrency and --batch-size must be >= 1, got {self.concurrency} and "
                f"{self.batch_size}"
            )
        if self.episodes is not None and self.episodes < 1:
            raise BenchConfigError(
                f"--episodes must be >= 1, got {self.episodes}; leave it out to run the whole "
                "task x seed grid"
            )
        if self.ray_gpus < 0 or (self.ray_gpus and not self.ray):
            raise BenchConfigError(
                f"--ray-gpus {self.ray_gpus:g} needs --ray and a value >= 0 (GPUs per actor of a "
                "local-model agent, e.g. 1)"
            )
        if self.split is None and self.tasks == "sample":
            self.split = "test"
        if self.split == "all":
            self.split = None

    def kwargs_for(self, spec: str) -> dict[str, Any]:
        """Constructor kwargs of one agent: its kind's, then its full spec's."""
        kind = spec.partition(":")[0]
        return {
            **self.agent_kwargs.get(kind, {}),
            **(self.agent_kwargs.get(spec, {}) if spec != kind else {}),
        }


def _settings(cfg: BenchConfig, task_ids: Sequence[str]) -> dict[str, Any]:
    """What must match for a run to be resumed (everything that changes results)."""
    return {
        "env_id": cfg.env_id,
        "env_kwargs": cfg.env_kwargs,
        "agents": list(cfg.agents),
        "agent_kwargs": cfg.agent_kwargs,
        "tasks": cfg.tasks,
        "split": cfg.split,
        "task_ids": list(task_ids),
        "seeds": list(cfg.seeds),
        "episodes": cfg.episodes,
    }


def _default_out() -> str:
    return f"runs/bench-{_dt.datetime.now(_dt.timezone.utc).strftime('%Y%m%d-%H%M%S')}"


def _check_settings(cfg: BenchConfig) -> tuple[list[Any], Any]:
    """Everything that can be checked before a run folder is touched: the agent specs, the
    tasks and the env (built once with every task, which masks them all). Returns the tasks
    and the env spec; raises a :class:`~clarify_gym.errors.ClarifyGymError` naming the problem."""
    import gymnasium as gym
    from clarify_agents.registry import parse_spec

    import clarify_gym
    from clarify_bench.harness.runfiles import RunFilesError
    from clarify_gym.registration import make_env

    if cfg.ray:
        from clarify_bench.harness.ray_runner import check_ray_address, require_ray

        require_ray(loopback=cfg.ray in ("", "local"))
        if cfg.ray not in ("", "local"):
            check_ray_address(cfg.ray)  # an address nothing answers at: one line, now
    for spec_text in cfg.agents:  # fail fast on a typo, before any episode runs
        load, _ = parse_spec(spec_text)
        load()  # imports the agent's module (py:<module>:<attr> included), builds nothing
    tasks = clarify_gym.load_tasks(cfg.tasks, split=cfg.split)
    if not tasks:
        raise RunFilesError(f"no tasks in {cfg.tasks!r} (split {cfg.split!r})")
    make_env(cfg.env_id, tasks=tasks, **cfg.env_kwargs).close()
    return tasks, gym.spec(cfg.env_id)


def _run_here(
    spec_text: str,
    kwargs: dict[str, Any],
    episodes: list[Any],
    cfg: BenchConfig,
    make_env: Any,
    emit: Any,
    failures: Any,
    record: Any,
) -> None:
    """One agent's episodes in this process: batched in lock step, or on worker threads."""
    from clarify_agents.registry import make_agent

    from clarify_bench.harness.episodes import run_batched, run_unbatched
    from clarify_bench.harness.ray_runner import agent_metadata

    agent = make_agent(spec_text, **kwargs)
    record(agent_metadata(agent, kwargs))

    def new_agent() -> Any:
        return make_agent(spec_text, **kwargs)

    try:
        if agent.batched:
            run_batched(episodes, agent, make_env, cfg.batch_size, emit)
        else:
            run_unbatched(episodes, agent, new_agent, make_env, cfg.concurrency, emit, failures)
    finally:  # what the agent reports once it ran (the model an endpoint served, say)
        record({**agent_metadata(agent, kwargs), **agent.describe()})


def evaluate(cfg: BenchConfig) -> Path:
    """Run (or resume) a benchmark; returns the run folder. Raises
    :class:`~clarify_bench.harness.runfiles.RunFilesError` when the folder cannot be used as asked."""
    import gymnasium as gym
    from tqdm.auto import tqdm

    from clarify_bench.harness.episodes import AgentGaveUp, Failures, plan_episodes
    from clarify_bench.harness.runfiles import (
        METADATA,
        RESULTS,
        ResultsWriter,
        new_metadata,
        now_iso,
        open_run,
        read_results,
        write_json_atomic,
    )

    folder = Path(cfg.out or _default_out())
    tasks, spec = _check_settings(cfg)
    task_ids = [t.id for t in tasks]
    settings = _settings(cfg, task_ids)

    def make_env() -> Any:
        return gym.make(cfg.env_id, tasks=tasks, **cfg.env_kwargs)

    metadata, done = open_run(folder, settings, resume=cfg.resume)
    metadata = metadata or new_metadata(spec, cfg.env_kwargs, settings, len(tasks))
    if cfg.threads:
        import torch

        torch.set_num_threads(cfg.threads)
    metadata["threads"] = cfg.threads
    write_json_atomic(folder / METADATA, metadata)

    plan = [
        e
        for e in plan_episodes(cfg.agents, task_ids, cfg.seeds, cfg.episodes)
        if (e.agent, e.task_id, e.seed) not in done
    ]
    if done:
        logger.info("resuming: %d episodes done, %d to go", len(done), len(plan))
    failures = Failures()
    if plan:
        env = make_env()
        try:
            metadata["env"]["parts"] = env.unwrapped.describe_parts()
        finally:
            env.close()
        write_json_atomic(folder / METADATA, metadata)
    gave_up: list[str] = []
    bar = tqdm(
        total=len(plan),
        desc="episodes",
        unit="ep",
        disable=not cfg.progress,
        file=sys.stderr,
        dynamic_ncols=True,
    )
    runner = None
    if cfg.ray and plan:
        from clarify_bench.harness.ray_runner import RayRunner

        runner = RayRunner(
            None if cfg.ray == "local" else cfg.ray, actors=cfg.ray_actors, gpus=cfg.ray_gpus
        )
        metadata["ray"] = {
            "address": cfg.ray,
            "started": runner.started,
            "cpus": runner.cpus,
            "gpus": runner.cluster_gpus,
            "actors": cfg.ray_actors,
            "gpus_per_actor": cfg.ray_gpus,
        }
    with ResultsWriter(folder / RESULTS) as writer:

        def emit(row: dict[str, Any]) -> None:
            writer.write(row)
            bar.update(1)

        for spec_text in cfg.agents:
            episodes = [e for e in plan if e.agent == spec_text]
            if not episodes:
                continue
            bar.set_postfix_str(spec_text)
            kwargs = cfg.kwargs_for(spec_text)

            def record(meta: dict[str, Any], spec_text: str = spec_text) -> None:
                metadata["agents"][spec_text] = meta
                write_json_atomic(folder / METADATA, metadata)

            try:
                if runner is not None:
                    runner.run_agent(
                        spec_text, kwargs, episodes, cfg, tasks, emit, failures, record
                    )
                else:
                    _run_here(spec_text, kwargs, episodes, cfg, make_env, emit, failures, record)
            except AgentGaveUp as exc:
                logger.error("%s", exc)
                gave_up.append(str(exc))
    bar.close()
    if runner is not None:
        runner.close()
    # what the folder holds now: this run's failures (a resume reran every missing episode),
    # written before the summary, which reads them from metadata.json
    metadata["failed_episodes"] = failures.by_agent
    metadata["gave_up"] = gave_up
    rows = read_results(folder / RESULTS)
    record_llm_roles(metadata, rows)
    metadata["finished"] = now_iso() if not failures.count else None
    write_json_atomic(folder / METADATA, metadata)
    if rows:
        summarize_run(folder, plots=cfg.plots)
    return folder


def record_llm_roles(metadata: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    """Put the recorded episodes' per-role LLM counts in ``metadata["llm"]`` and the served
    models and fallbacks they saw in the env parts' records (described before any request was
    made, so these were still empty there)."""
    from clarify_bench.harness.summary import llm_roles

    roles = llm_roles(rows)
    metadata["llm"] = roles
    parts = metadata.get("env", {}).get("parts") or {}
    for role, counts in roles.items():
        part = parts.get(role)
        if isinstance(part, dict) and "served_model" in part:
            models = counts["served_models"]
            part["served_model"] = models[0] if len(models) == 1 else (models or None)
            part["json_fallback"] = counts["fallbacks"] > 0


# ---- command line ------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``clarify-gym bench``."""
    from clarify_agents.registry import valid_specs

    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = "agents:\n  " + "\n  ".join(valid_specs())
    parser.add_argument(
        "--agents",
        default=",".join(DEFAULT_AGENTS),
        help="comma-separated agent specs (default: %(default)s)",
    )
    parser.add_argument(
        "--tasks",
        default="sample",
        help="task source: 'sample', a DOLOMITES .jsonl/.zip path, 'hf:cmalaviya/dolomites'",
    )
    parser.add_argument(
        "--split",
        default=None,
        help="keep one split (default: 'test' for the sample, every task otherwise; 'all': every task)",
    )
    parser.add_argument(
        "--seeds", default="0", type=parse_seeds, help="seeds, e.g. 0,1,2 or 0-4 (default: 0)"
    )
    parser.add_argument(
        "--episodes",
        type=int,
        default=None,
        help="run only the first N episodes of the task x seed grid per agent",
    )
    parser.add_argument(
        "--out", default=None, help="run folder (default: runs/bench-<UTC date-time>)"
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out, skipping finished episodes",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=1,
        help="episodes in flight for unbatched agents, e.g. API models (threads)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=8,
        help="episodes per generate call for local models (default: 8)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads for local models (default: torch's choice; on a busy machine 1 is often fastest)",
    )
    parser.add_argument(
        "--env-id", default="ProactiveGather-v1", help="gymnasium env id (default: %(default)s)"
    )
    parser.add_argument(
        "--env-kwargs",
        type=json_object,
        default={},
        help="JSON kwargs for gym.make, e.g. '{\"max_questions\": 3}'",
    )
    parser.add_argument(
        "--agent-kwargs",
        type=json_object,
        default={},
        help='JSON: agent spec or kind -> constructor kwargs, e.g. \'{"hf": {"max_new_tokens": 32}}\'',
    )
    from clarify_bench.harness.ray_runner import add_ray_arguments

    add_ray_arguments(parser)
    parser.add_argument("--no-plots", action="store_true", help="do not save PNG plots")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--summarize",
        metavar="DIR",
        default=None,
        help="only rebuild summary.md and the plots of an existing run folder",
    )


def run(args: argparse.Namespace) -> int:
    """Run ``clarify-gym bench``."""
    if args.summarize:
        summarize_run(Path(args.summarize), plots=not args.no_plots)
        return 0
    if args.resume and not args.out:
        raise BenchConfigError("--resume needs --out DIR (the run folder to continue)")
    agents = tuple(a.strip() for a in args.agents.split(",") if a.strip())
    cfg = BenchConfig(
        agents=agents,
        tasks=args.tasks,
        split=args.split,
        seeds=args.seeds,
        episodes=args.episodes,
        out=args.out,
        resume=args.resume,
        concurrency=args.concurrency,
        batch_size=args.batch_size,
        threads=args.threads,
        ray=args.ray,
        ray_actors=args.ray_actors,
        ray_gpus=args.ray_gpus,
        env_id=args.env_id,
        env_kwargs=args.env_kwargs,
        agent_kwargs=args.agent_kwargs,
        plots=not args.no_plots,
        progress=not args.no_progress,
    )
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for name in ("benchmarks", "agents", "clarify_gym"):
        logging.getLogger(name).setLevel(logging.INFO)
    folder = evaluate(cfg)
    print(f"results: {folder / 'results.jsonl'}")
    from clarify_bench.harness.summary import run_problems

    problems = run_problems(folder)
    if problems:
        print(f"clarify-gym bench: error: {problems}", file=sys.stderr)
        return 3
    return 0
