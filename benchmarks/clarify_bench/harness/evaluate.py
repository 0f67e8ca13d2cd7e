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
from clarify_gym.cli import (
    add_dataclass_arguments,
    comma_list,
    flag,
    from_args,
    make_text_env,
    positive_int,
)
from clarify_gym.errors import ConfigError
from clarify_gym.registration import DEFAULT_ENV_ID

__all__ = [
    "MAX_SEEDS",
    "BenchConfig",
    "BenchConfigError",
    "BenchOptions",
    "add_arguments",
    "evaluate",
    "parse_seeds",
    "run",
    "summarize_run",
]

logger = logging.getLogger(__name__)

DEFAULT_AGENTS = ("passive", "generic", "random", "oracle")


class BenchConfigError(ConfigError):
    """Benchmark settings that cannot be used; the message names the flag and the fix."""


@dataclass
class BenchConfig:
    """Settings of one benchmark run."""

    agents: tuple[str, ...] = field(
        default=DEFAULT_AGENTS, metadata=flag(parse=comma_list, metavar="SPECS")
    )
    """Comma-separated agent specs (listed below), e.g. passive,generic,smollm2,hf:<model>."""
    tasks: str = "sample"
    """Task source: 'sample', a DOLOMITES .jsonl/.zip path, 'hf:cmalaviya/dolomites'."""
    split: str | None = None
    """Keep one split (default: 'test' for the sample, every task otherwise; 'all': every task)."""
    seeds: tuple[int, ...] = field(default=(0,), metadata=flag(parse=parse_seeds, metavar="SEEDS"))
    """Seeds, e.g. 0,1,2 or 0-4: every (task, seed) pair is one episode per agent."""
    episodes: int | None = None
    """Run only the first N (seed-major) episodes of the task x seed grid per agent."""
    out: str | None = None
    """Run folder (default: runs/bench-<UTC date-time>)."""
    resume: bool = False
    """Continue the run in --out, skipping episodes already in results.jsonl."""
    concurrency: int = 1
    """Episodes in flight at once for unbatched agents, e.g. API models (one thread, agent and env each)."""
    batch_size: int = 8
    """Episodes per generate call for batched agents (local models)."""
    env_id: str = DEFAULT_ENV_ID
    """Gymnasium env id."""
    env_kwargs: dict[str, Any] = field(default_factory=dict, metadata=flag(metavar="JSON"))
    """JSON keyword arguments for gym.make, e.g. '{"max_questions": 3}'."""
    agent_kwargs: dict[str, dict[str, Any]] = field(
        default_factory=dict, metadata=flag(metavar="JSON")
    )
    """JSON: agent spec or kind -> constructor keyword arguments, e.g. '{"hf": {"max_new_tokens": 32}}'."""
    threads: int | None = None
    """torch CPU threads for local models (default: torch's choice; on a busy machine 1 is often fastest)."""
    ray: str | None = field(default=None, metadata=flag(const="local", metavar="ADDRESS"))
    """Run episodes on Ray: alone, start a local cluster; with ADDRESS ("auto", HOST:PORT, ray://HOST:PORT) join one (needs clarify-gym[ray])."""
    ray_actors: int | None = field(default=None, metadata=flag(parse=positive_int, metavar="N"))
    """Ray actors per agent (default: one per cluster CPU, at most --concurrency)."""
    ray_gpus: float = 0.0
    """GPUs per Ray actor of a local-model agent (1: one model per GPU; default 0: CPU only)."""
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
        if self.threads is not None and self.threads < 1:
            raise BenchConfigError(
                f"--threads must be >= 1, got {self.threads}; leave it out for torch's default"
            )
        if self.ray_actors is not None and self.ray_actors < 1:
            raise BenchConfigError(f"--ray-actors must be >= 1, got {self.ray_actors}")
        unknown = sorted(
            key
            for key in self.agent_kwargs
            if key not in self.agents and key not in {a.partition(":")[0] for a in self.agents}
        )
        if unknown:
            raise BenchConfigError(
                f"--agent-kwargs names {', '.join(map(repr, unknown))}, neither an agent of "
                f"--agents nor its kind; use one of {', '.join(self.agents)} or its kind"
            )
        not_objects = sorted(k for k, v in self.agent_kwargs.items() if not isinstance(v, dict))
        if not_objects:
            raise BenchConfigError(
                f"--agent-kwargs: the value of {', '.join(map(repr, not_objects))} must be a "
                'JSON object of keyword arguments, e.g. {"hf": {"max_new_tokens": 32}}'
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
    from clarify_agents.registry import check_agent

    import clarify_gym
    from clarify_bench.harness.runfiles import RunFilesError

    if cfg.ray:
        from clarify_bench.harness.ray_runner import check_ray_address, require_ray

        require_ray(loopback=cfg.ray in ("", "local"))
        if cfg.ray not in ("", "local"):
            check_ray_address(cfg.ray)  # an address nothing answers at: one line, now
    for spec_text in cfg.agents:  # every agent, before any episode of the first one runs
        check_agent(spec_text, **cfg.kwargs_for(spec_text))  # imports, builds nothing
    tasks = clarify_gym.load_tasks(cfg.tasks, split=cfg.split)
    if not tasks:
        raise RunFilesError(f"no tasks in {cfg.tasks!r} (split {cfg.split!r})")
    make_text_env(cfg.env_id, tasks=tasks, **cfg.env_kwargs).close()
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
        write_tasks,
    )
    from clarify_gym.files import check_output_folder
    from clarify_gym.masking import mask

    folder = Path(cfg.out or _default_out())
    tasks, spec = _check_settings(cfg)
    check_output_folder(folder, "--out")
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
            policy = env.unwrapped.mask_policy
        finally:
            env.close()
        write_tasks(folder, (mask(t, policy) for t in tasks))
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


@dataclass
class BenchOptions:
    """Options of ``clarify-gym bench`` that are not settings of a run."""

    summarize: str | None = field(default=None, metadata=flag(metavar="DIR"))
    """Only rebuild summary.md and the plots of an existing run folder."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``clarify-gym bench``: one flag per :class:`BenchConfig` and
    :class:`BenchOptions` field."""
    from clarify_agents.registry import valid_specs

    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = "agents:\n  " + "\n  ".join(valid_specs())
    add_dataclass_arguments(parser, BenchConfig)
    add_dataclass_arguments(parser, BenchOptions)


def run(args: argparse.Namespace) -> int:
    """Run ``clarify-gym bench``."""
    options = from_args(BenchOptions, args)
    if options.summarize and not Path(options.summarize).is_dir():
        raise BenchConfigError(
            f"--summarize {options.summarize}: no such run folder; pass the --out of a bench run"
        )
    if options.summarize:
        summarize_run(Path(options.summarize), plots=args.plots)
        return 0
    if args.resume and not args.out:
        raise BenchConfigError("--resume needs --out DIR (the run folder to continue)")
    cfg = from_args(BenchConfig, args)
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
