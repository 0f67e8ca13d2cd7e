"""TRL adapter: reward a completion (one question) by the new hidden information it elicits.

A TRL ``GRPOTrainer`` user trains a first-question policy on the env's own reward in a few
lines::

    from trl import GRPOConfig, GRPOTrainer
    from clarify_agents.trl import build_prompt_dataset, reward_fn

    trainer = GRPOTrainer(
        model="Qwen/Qwen2.5-0.5B-Instruct",
        reward_funcs=reward_fn,
        train_dataset=build_prompt_dataset("sample", split="train"),
        args=GRPOConfig(output_dir="grpo-clarify", max_completion_length=48),
    )
    trainer.train()

* :func:`build_prompt_dataset` makes a ``datasets.Dataset`` with a ``prompt`` column (the
  env's first observation as chat messages — system prompt, then the visible task — exactly
  what :mod:`clarify_agents.prompts` gives every LLM agent; or as plain text ending in
  ``Assistant:``) and a ``task_id`` column, which TRL passes to the reward function.
* :func:`reward_fn` has TRL's reward-function signature ``(prompts, completions, **kwargs)``.
  It parses each completion into one question (:func:`clarify_agents.prompts.parse_reply`), resets a
  ProactiveGather env on the row's task, replays the assistant turns already in the prompt (if
  any), steps the question and returns the env's step reward: by default the share of the
  hidden sentences the question elicits for the first time. So the reward of a question here
  *is* the env's reward for it. :func:`reward_fn` scores the bundled sample tasks; for another
  task source or env setting, build one with :func:`make_reward_fn` (same arguments as the
  env) and pass the same source to :func:`build_prompt_dataset`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from clarify_agents.prompts import observation_to_messages, parse_reply
from clarify_gym.dialogue import parse_observation
from clarify_gym.env import ProactiveGatherEnv
from clarify_gym.errors import require
from clarify_gym.tasks import Task

__all__ = ["EnvReward", "build_prompt_dataset", "build_prompts", "make_reward_fn", "reward_fn"]

logger = logging.getLogger(__name__)

_CONVERSATION = "\n\n## Conversation\n"
_STATUS = "\n\n## Status\n"
#: Appended to a plain-text prompt: the completion continues the dialogue as the assistant.
PLAIN_SUFFIX = "\n\nAssistant:"


def build_prompts(
    tasks: str | Sequence[Task] = "sample",
    split: str | None = None,
    *,
    conversational: bool = True,
    **env_kwargs: Any,
) -> list[dict[str, Any]]:
    """One row ``{"prompt": ..., "task_id": ...}`` per task: the env's first observation for
    the task, as chat messages (``conversational=True``) or as plain text ending in
    ``Assistant:``. ``env_kwargs`` go to :class:`~clarify_gym.env.ProactiveGatherEnv` (e.g.
    ``max_questions``, ``mask_policy``); use the same ones for :func:`make_reward_fn`.

    >>> rows = build_prompts("sample", split="test")
    >>> len(rows), [m["role"] for m in rows[0]["prompt"]], rows[0]["task_id"]
    (12, ['system', 'user'], 'cg-medicine-03')
    >>> build_prompts("sample", split="test", conversational=False)[0]["prompt"][-30:]
    ' to start writing.\\n\\nAssistant:'
    """
    env = ProactiveGatherEnv(tasks=tasks, split=split, **env_kwargs)
    rows = []
    for task in env.tasks:
        obs, _ = env.reset(options={"task_id": task.id})
        prompt: Any = observation_to_messages(obs) if conversational else obs + PLAIN_SUFFIX
        rows.append({"prompt": prompt, "task_id": task.id})
    return rows


def build_prompt_dataset(
    tasks: str | Sequence[Task] = "sample",
    split: str | None = None,
    *,
    conversational: bool = True,
    **env_kwargs: Any,
) -> Any:
    """:func:`build_prompts` as a ``datasets.Dataset`` (columns ``prompt`` and ``task_id``)
    for TRL trainers; needs ``pip install "clarify-gym[trl]"``."""
    datasets = require("datasets", extra="trl", feature="The TRL prompt dataset")
    rows = build_prompts(tasks, split, conversational=conversational, **env_kwargs)
    return datasets.Dataset.from_list(rows)  # type: ignore[attr-defined]


def _completion_text(completion: Any) -> str:
    """The text of a plain-text or conversational completion (its assistant messages)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        return str(completion.get("content") or "")
    parts = [
        str(m.get("content") or "")
        for m in completion
        if isinstance(m, dict) and m.get("role", "assistant") == "assistant"
    ]
    return "\n".join(parts)


def _history(prompt: Any) -> list[str]:
    """The assistant questions already asked in a prompt (chat messages or plain text)."""
    if isinstance(prompt, str):
        return list(parse_observation(prompt).questions)
    return [str(m.get("content") or "") for m in prompt if m.get("role") == "assistant"]


class EnvReward:
    """A TRL reward function backed by a ProactiveGather env (see the module docstring).

    Args:
        tasks, split: The task source, as for the env; the dataset's ``task_id`` values must
            be among its tasks.
        env_kwargs: Any other :class:`~clarify_gym.env.ProactiveGatherEnv` argument (``user``,
            ``reward``, ``question_cost``, ``max_questions``, ...).
    """

    def __init__(
        self, tasks: str | Sequence[Task] = "sample", split: str | None = None, **env_kwargs: Any
    ) -> None:
        self.env = ProactiveGatherEnv(tasks=tasks, split=split, **env_kwargs)
        self.__name__ = "clarify_gym_new_info"  # the name TRL logs the reward under

    def score(self, task_id: str, question: str, history: Sequence[str] = ()) -> float:
        """The env's reward for asking ``question`` on task ``task_id`` after ``history``."""
        env = self.env
        env.reset(options={"task_id": task_id})
        if len(history) >= env.max_questions:
            raise ValueError(
                f"the prompt for task {task_id!r} already holds {len(history)} questions, the "
                f"env's whole budget (max_questions={env.max_questions}); build prompts and the "
                "reward with the same max_questions"
            )
        for earlier in history:
            env.step(earlier)
        _, reward, _, _, _ = env.step(question)
        return float(reward)

    def __call__(
        self,
        prompts: Sequence[Any],
        completions: Sequence[Any],
        task_id: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> list[float]:
        if task_id is None:
            raise ValueError(
                "the reward needs each row's task id: build the dataset with "
                "clarify_agents.trl.build_prompt_dataset (it has a 'task_id' column, "
                "which TRL passes to reward functions)"
            )
        if not len(prompts) == len(completions) == len(task_id):
            raise ValueError(
                f"got {len(prompts)} prompts, {len(completions)} completions and "
                f"{len(task_id)} task ids; they must match one to one"
            )
        max_chars = self.env.question_max_chars
        rewards = []
        for prompt, completion, tid in zip(prompts, completions, task_id, strict=True):
            question = parse_reply(_completion_text(completion), max_chars=max_chars)
            rewards.append(self.score(str(tid), question, _history(prompt)))
        return rewards


def make_reward_fn(
    tasks: str | Sequence[Task] = "sample", split: str | None = None, **env_kwargs: Any
) -> EnvReward:
    """A reward function for TRL over ``tasks`` (see :class:`EnvReward`)."""
    return EnvReward(tasks, split, **env_kwargs)


_DEFAULT: EnvReward | None = None


def reward_fn(prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any) -> list[float]:
    """TRL reward function over the bundled sample tasks, with the env's default reward (the
    share of hidden sentences a question elicits for the first time). Needs the ``task_id``
    column of :func:`build_prompt_dataset`.

    >>> rows = build_prompts("sample", split="test")[:1]
    >>> reward_fn([rows[0]["prompt"]] * 2,
    ...           [[{"role": "assistant", "content": "What sections must the output contain?"}],
    ...            [{"role": "assistant", "content": "STOP"}]],
    ...           task_id=[rows[0]["task_id"]] * 2)
    [0.2, 0.0]
    """
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = EnvReward("sample")
    return _DEFAULT(prompts, completions, **kwargs)
