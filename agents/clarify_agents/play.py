"""Play ProactiveGather in the terminal (``clarify-gym play``).

* ``clarify-gym play``: you are the assistant. You see the visible task, type one question per
  turn (the offline user answers) and ``STOP`` when ready; then you see the outline the writer
  drafted from the answers, the checklist and your scores. Rewards and cited sentences are
  shown only then: each reward would reveal a share of the hidden set.
* ``clarify-gym play --as user --agent generic``: you are the person. You see the whole task,
  hidden part included (what you know but did not say), and answer the agent's questions.
  You cite nothing, so rewards are estimates: your answer is matched to the task sentences by
  BM25 (see :mod:`clarify_gym.human`).

End of input counts as ``STOP`` (assistant) or an empty answer (user).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any, Literal

from clarify_gym.cli import (
    add_dataclass_arguments,
    flag,
    make_text_env,
    nonnegative_int,
    task_by_id,
)
from clarify_gym.env import EPISODE_METRICS
from clarify_gym.registration import DEFAULT_ENV_ID

__all__ = ["PlayOptions", "add_arguments", "run"]


@dataclass
class PlayOptions:
    """Options of ``clarify-gym play``."""

    role: Literal["assistant", "user"] = field(default="assistant", metadata=flag(name="--as"))
    """Your role."""
    agent: str = "generic"
    """The agent asking you questions with --as user (an agent spec, see `clarify-gym bench --help`)."""
    task: str | None = None
    """Task id (default: one drawn with --seed; see `clarify-gym tasks list`)."""
    tasks: str = "sample"
    """Task source: 'sample', a DOLOMITES .jsonl/.zip path, 'hf:cmalaviya/dolomites'."""
    split: str | None = None
    """Keep one split."""
    seed: int = field(default=0, metadata=flag(parse=nonnegative_int))
    """Seed of the episode (and of the task drawn without --task), >= 0."""
    env_id: str = DEFAULT_ENV_ID
    """Gymnasium env id."""
    env_kwargs: dict[str, Any] = field(default_factory=dict, metadata=flag(metavar="JSON"))
    """JSON keyword arguments for gym.make, e.g. '{"max_questions": 3}'."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``clarify-gym play``: one flag per :class:`PlayOptions` field."""
    add_dataclass_arguments(parser, PlayOptions)


def _metrics(info: dict[str, Any]) -> str:
    keys = EPISODE_METRICS
    return "\n".join(
        f"  {k:<22} {info[k]:.3f}" if isinstance(info[k], float) else f"  {k:<22} {info[k]}"
        for k in keys
    )


def _finish(env: Any, info: dict[str, Any], estimated: bool) -> None:
    task = env.unwrapped.state.task
    print("\n## Outline the writer drafted\n")
    print(info["outline"])
    print("\n## Checklist (hidden output sections and notes)\n")
    for item, met in zip(task.checklist, info["checklist_met"], strict=True):
        print(f"  [{'x' if met else ' '}] {item.text}")
    note = " (estimated: your answers were matched to the task sentences)" if estimated else ""
    print(f"\n## Scores{note}\n")
    print(_metrics(info))
    turns = env.unwrapped.state.turns
    if turns:
        print("\n## Reward of each question\n")
        for i, turn in enumerate(turns, 1):
            cited = ", ".join(map(str, turn.cited_ids)) or "-"
            print(f"  {i}. {turn.reward:.3f}  (cited sentences: {cited})  {turn.question[:70]}")


def _read(prompt: str) -> str | None:
    try:
        return input(prompt)
    except EOFError:
        return None


def run(args: argparse.Namespace) -> int:
    """Run ``clarify-gym play``."""
    import clarify_gym
    from clarify_gym.human import HumanUser

    if args.role == "user":  # a bad agent spec fails before the task is shown
        from clarify_agents.registry import check_agent

        check_agent(args.agent)
    tasks = clarify_gym.load_tasks(args.tasks, split=args.split)
    if args.task:
        task_by_id(tasks, args.task, args.tasks)
    kwargs = dict(args.env_kwargs)
    if args.role == "user":
        kwargs["user"] = HumanUser(k=kwargs.get("answer_max_sentences", 3))
    env = make_text_env(args.env_id, tasks=tasks, **kwargs)
    options = {"task_id": args.task} if args.task else None
    obs, info = env.reset(seed=args.seed, options=options)
    task = env.unwrapped.state.task
    max_q = env.unwrapped.max_questions

    if args.role == "assistant":
        print(f"# Task {task.task.id} ({task.task.field}): you are the assistant\n")
        print(task.visible_text)
        print(
            f"\nAsk up to {max_q} questions, one per line; type STOP to have the outline written."
        )
        while True:
            line = _read(f"\nQuestion {info['questions_asked'] + 1} of {max_q}> ")
            action = "STOP" if line is None else line
            obs, reward, terminated, truncated, info = env.step(action)
            if "answer" in info:  # rewards wait for the end: each would reveal a share of H
                print(f"User: {info['answer']}")
            if terminated or truncated:
                break
        _finish(env, info, estimated=False)
        return 0

    from clarify_agents.registry import make_agent

    agent = make_agent(args.agent)
    agent.reset(seed=args.seed, task=task if agent.privileged else None)
    print(f"# Task {task.task.id} ({task.task.field}): you are the person, {args.agent} asks\n")
    print("## What you sent the assistant\n")
    print(task.visible_text)
    print("\n## What you know but did not say (answer from this)\n")
    for s in task.hidden_sentences:
        print(f"- ({s.field}) {s.text}")
    print("\nAnswer each question in one line (an empty line: no answer).")
    while True:
        obs, reward, terminated, truncated, info = env.step(agent.act(obs))
        if terminated:
            print(f"\nAssistant: STOP (after {info['questions_asked']} questions)")
        elif "answer" in info:
            print(f"  (estimated reward {float(reward):.3f})")
        if terminated or truncated:
            break
    _finish(env, info, estimated=True)
    return 0
