"""Running episodes for the benchmark harness (:mod:`clarify_bench.harness.evaluate`).

One episode is one (agent, task, seed). :func:`run_episode` plays one with an unbatched agent;
:func:`run_unbatched` runs many on one agent, or on worker threads each with its own agent and
env (``--concurrency``); :func:`run_batched` advances ``batch_size`` episodes in lock step
through one batched agent's ``act_batch``. Each finished episode becomes a row
(:func:`episode_row`) handed to ``emit`` at once.
"""

from __future__ import annotations

import argparse
import logging
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from functools import partial
from typing import Any

from clarify_gym.errors import ClarifyGymError

__all__ = [
    "MAX_EARLY_FAILURES",
    "MAX_SEEDS",
    "AgentGaveUp",
    "Episode",
    "Failures",
    "SeedsError",
    "agent_llm_counts",
    "episode_row",
    "parse_seeds",
    "plan_episodes",
    "run_batched",
    "run_episode",
    "run_unbatched",
]

logger = logging.getLogger(__name__)

#: Consecutive failed episodes (and no success yet) after which an agent is given up on.
MAX_EARLY_FAILURES = 5


@dataclass(frozen=True)
class Episode:
    """One (agent, task, seed) to run."""

    agent: str
    task_id: str
    seed: int

    @property
    def agent_seed(self) -> int:
        """The agent's seed for this episode, derived from (seed, task id) so a random agent
        does not replay the same draws on every task."""
        return (self.seed * 1_000_003 + zlib.crc32(self.task_id.encode())) % 2**31


def plan_episodes(
    agents: Sequence[str], task_ids: Sequence[str], seeds: Sequence[int], limit: int | None
) -> list[Episode]:
    """Every episode of the run, agent by agent, seed-major within an agent.

    >>> [(e.agent, e.task_id, e.seed) for e in plan_episodes(["a"], ["t1", "t2"], [0, 1], 3)]
    [('a', 't1', 0), ('a', 't2', 0), ('a', 't1', 1)]
    """
    out = []
    for agent in agents:
        grid = [Episode(agent, t, s) for s in seeds for t in task_ids]
        out.extend(grid[:limit] if limit is not None else grid)
    return out


#: The most seeds one run may list (a typo like ``0-99999999`` would otherwise exhaust memory).
MAX_SEEDS = 10_000


class SeedsError(argparse.ArgumentTypeError, ValueError):
    """A ``--seeds`` value argparse reports as its own error (``ValueError`` for Python callers)."""


def _seed(text: str, whole: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise SeedsError(f"{whole!r} is not a seed list: use e.g. 0,1,2 or 0-4") from None
    if value < 0:
        raise SeedsError(f"seeds must be >= 0, got {value} (gymnasium rejects negative seeds)")
    return value


def parse_seeds(text: str) -> tuple[int, ...]:
    """``"0,1,2"``, ``"0-4"`` (inclusive) or a mix: at most :data:`MAX_SEEDS` seeds, all >= 0.

    >>> parse_seeds("0-2,7")
    (0, 1, 2, 7)
    >>> parse_seeds("0-99999999")
    Traceback (most recent call last):
    ...
    clarify_bench.harness.episodes.SeedsError: '0-99999999' lists 100000000 seeds; at most 10000 per run
    """
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        lo, dash, hi = part.partition("-")
        if dash and lo:
            first, last = _seed(lo, text), _seed(hi, text)
            if last < first:
                raise SeedsError(f"seed range {part!r} is empty; write it low-high, e.g. 0-4")
            if last - first + 1 + len(seeds) > MAX_SEEDS:
                raise SeedsError(
                    f"{text!r} lists {last - first + 1 + len(seeds)} seeds; at most {MAX_SEEDS} per run"
                )
            seeds.extend(range(first, last + 1))
        else:
            seeds.append(_seed(part, text))
    if not seeds:
        raise SeedsError(f"no seeds in {text!r}; use e.g. 0,1,2 or 0-4")
    if len(seeds) > MAX_SEEDS:
        raise SeedsError(f"{text!r} lists {len(seeds)} seeds; at most {MAX_SEEDS} per run")
    return tuple(dict.fromkeys(seeds))


def episode_row(
    episode: Episode,
    env: Any,
    info: dict[str, Any],
    terminated: bool,
    elapsed: float,
    steps: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """The results.jsonl row of a finished episode (from the env's final info and state).

    ``steps`` are the infos of the episode's steps, in order: each question's ``reward_terms``
    and ``answer_kind`` go into the row (``clarify-gym view`` shows them turn by turn)."""
    from clarify_bench.harness.summary import METRICS

    state = env.unwrapped.state
    turns = state.turns
    asked = [s for s in steps if "answer_kind" in s]  # question steps (not the STOP step)
    per_turn: dict[str, Any] = (
        {
            "reward_terms": [dict(s.get("reward_terms") or {}) for s in asked],
            "answer_kinds": [s["answer_kind"] for s in asked],
        }
        if len(asked) == len(turns)
        else {}
    )
    return {
        "agent": episode.agent,
        "task_id": episode.task_id,
        "seed": episode.seed,
        "agent_seed": episode.agent_seed,
        "field": state.task.task.field,
        "num_hidden": len(state.task.hidden_ids),
        **{m: info[m] for m in METRICS},
        "return": info["episode_return"],
        "stopped": bool(terminated),
        "dialogue": [{"question": t.question, "answer": t.answer} for t in turns],
        "rewards": [t.reward for t in turns],
        "cited_ids": [list(t.cited_ids) for t in turns],
        "new_hidden_ids": [list(t.new_hidden_ids) for t in turns],
        "invalid": [t.invalid for t in turns],
        "user_errors": [t.user_error for t in turns],
        **per_turn,
        "judge_error": info.get("judge_error"),
        **{k: v for k, v in info.items() if k.startswith("llm/")},
        "outline": info["outline"],
        "checklist_met": list(info["checklist_met"]),
        **({"checklist_items": list(info["checklist_items"])} if "checklist_items" in info else {}),
        "elapsed_s": round(elapsed, 4),
    }


def _reset(env: Any, episode: Episode, agent: Any | None) -> str:
    obs, _ = env.reset(seed=episode.seed, options={"task_id": episode.task_id})
    if agent is not None:
        task = env.unwrapped.state.task if agent.privileged else None
        agent.reset(seed=episode.agent_seed, task=task)
    return obs


def agent_llm_counts(agent: Any) -> dict[str, Any]:
    """``llm/agent/...`` of an agent that talks to an LLM endpoint (the ``chat:`` agent: its
    ``usage`` of this episode and the model its server named), as the env reports its own LLM
    parts; ``{}`` for any other agent."""
    from clarify_gym.llm.reply import COUNTS, Usage

    usage = getattr(agent, "usage", None)
    if not isinstance(usage, Usage):
        return {}
    counts = {f"llm/agent/{k}": getattr(usage, k) for k in ("calls", *COUNTS)}
    client = getattr(agent, "client", None)
    return {**counts, "llm/agent/served_model": getattr(client, "served_model", None)}


def run_episode(episode: Episode, env: Any, agent: Any) -> dict[str, Any]:
    """Play one episode with an unbatched agent; return its row."""
    start = time.perf_counter()
    obs = _reset(env, episode, agent)
    steps = []
    while True:
        obs, _, terminated, truncated, info = env.step(agent.act(obs))
        steps.append(info)
        if terminated or truncated:
            row = episode_row(episode, env, info, terminated, time.perf_counter() - start, steps)
            row.update(agent_llm_counts(agent))
            return row


class AgentGaveUp(ClarifyGymError, RuntimeError):
    """An agent failed its first :data:`MAX_EARLY_FAILURES` episodes; the run moves on without it."""


class Failures:
    """Counts failed episodes (in total and per agent); gives up on an agent that fails its
    first few episodes (:class:`AgentGaveUp`)."""

    def __init__(self) -> None:
        self.count = 0
        self.by_agent: dict[str, int] = {}
        self.first: str | None = None
        self.succeeded: set[str] = set()
        self.early: dict[str, int] = {}
        self.traced = False
        self.first_by_agent: dict[str, str] = {}

    def success(self, agent: str) -> None:
        self.succeeded.add(agent)

    def settle(
        self,
        episode: Episode,
        produce: Callable[[], dict[str, Any]],
        emit: Callable[[dict[str, Any]], None],
    ) -> None:
        """Emit the row ``produce()`` returns, or record the exception it raises."""
        try:
            row = produce()
        except Exception as exc:
            self.failure(episode, exc)
            return
        self.success(episode.agent)
        emit(row)

    def failure(self, episode: Episode, exc: BaseException) -> None:
        """Count and log (one line) a failed episode. A traceback is logged only for the first
        failure that is not a :class:`~clarify_gym.errors.ClarifyGymError` (a bug, not an
        endpoint or input problem)."""
        self.count += 1
        self.by_agent[episode.agent] = self.by_agent.get(episode.agent, 0) + 1
        message = f"{episode.agent} on {episode.task_id} (seed {episode.seed}): {type(exc).__name__}: {exc}"
        self.first = self.first or message
        self.first_by_agent.setdefault(episode.agent, message)
        bug = not isinstance(exc, ClarifyGymError) and not self.traced
        self.traced = self.traced or bug
        logger.error("episode failed: %s", message, exc_info=bug)
        if episode.agent not in self.succeeded:
            self.early[episode.agent] = self.early.get(episode.agent, 0) + 1
            if self.early[episode.agent] >= MAX_EARLY_FAILURES:
                raise AgentGaveUp(
                    f"agent {episode.agent!r} failed its first {MAX_EARLY_FAILURES} episodes; "
                    f"giving up on it (first error: {self.first_by_agent[episode.agent]})"
                ) from exc


def run_unbatched(
    episodes: list[Episode],
    first_agent: Any,
    make_agent: Callable[[], Any],
    make_env: Callable[[], Any],
    concurrency: int,
    emit: Callable[[dict[str, Any]], None],
    failures: Failures,
) -> None:
    if concurrency == 1:
        env = make_env()
        try:
            for episode in episodes:
                failures.settle(episode, partial(run_episode, episode, env, first_agent), emit)
        finally:
            env.close()
        return

    local = threading.local()
    spare = [first_agent]
    lock = threading.Lock()
    envs: list[Any] = []

    def work(episode: Episode) -> dict[str, Any]:
        if not hasattr(local, "agent"):
            with lock:
                local.agent = spare.pop() if spare else None
            if local.agent is None:
                local.agent = make_agent()
            local.env = make_env()
            with lock:
                envs.append(local.env)
        return run_episode(episode, local.env, local.agent)

    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="episode")
    pending = deque(episodes)
    running: dict[Future[dict[str, Any]], Episode] = {}
    try:
        while pending or running:
            while pending and len(running) < 2 * concurrency:  # a short queue: Ctrl-C stops soon
                episode = pending.popleft()
                running[pool.submit(work, episode)] = episode
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                failures.settle(running.pop(future), future.result, emit)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        for env in envs:
            env.close()


def run_batched(
    episodes: list[Episode],
    agent: Any,
    make_env: Callable[[], Any],
    batch_size: int,
    emit: Callable[[dict[str, Any]], None],
) -> None:
    """Episodes advance in lock step, ``batch_size`` at a time; a finished slot takes the next."""
    agent.reset()
    pending = deque(episodes)
    free = [make_env() for _ in range(min(batch_size, len(episodes)))]
    envs = list(free)
    slots: list[tuple[Episode, Any, str, float, list[dict[str, Any]]]] = []
    try:
        while pending or slots:
            while pending and free:
                episode, env = pending.popleft(), free.pop()
                slots.append((episode, env, _reset(env, episode, None), time.perf_counter(), []))
            actions = agent.act_batch([s[2] for s in slots], seeds=[s[0].agent_seed for s in slots])
            if len(actions) != len(slots):
                raise RuntimeError(
                    f"{type(agent).__name__}.act_batch returned {len(actions)} actions for {len(slots)} observations"
                )
            still = []
            for (episode, env, _, start, steps), action in zip(slots, actions, strict=True):
                obs, _, terminated, truncated, info = env.step(action)
                steps.append(info)
                if terminated or truncated:
                    elapsed = time.perf_counter() - start
                    emit(episode_row(episode, env, info, terminated, elapsed, steps))
                    free.append(env)
                else:
                    still.append((episode, env, obs, start, steps))
            slots = still
    finally:
        for env in envs:
            env.close()
