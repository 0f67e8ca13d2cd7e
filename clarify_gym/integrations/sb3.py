"""Evaluate policies on ``ProactiveGatherBank-v0`` task by task: trained stable-baselines3 models
and the two reference bank policies.

A *bank policy* picks a discrete action (a bank question, or STOP = the last action) from the
feature observation; :func:`evaluate_bank_policy` plays one or more episodes on every task of
an env (e.g. the held-out ``test`` split) and returns one :class:`EpisodeResult` each.

* :class:`RandomBankPolicy` — uniform over ``Discrete(K + 1)`` (STOP included), seeded.
* :class:`GenericBankPolicy` — the generic agent through the bank: the questions of
  :data:`~clarify_gym.questions.TOP_GENERIC_QUESTIONS`, in order.
* :class:`SB3BankPolicy` — a trained stable-baselines3 model (``model.predict``).
* :func:`greedy_fixed_sequence` — the best fixed question sequence found greedily on some
  tasks (e.g. the train split), to play with :class:`GenericBankPolicy` on others.

>>> import gymnasium as gym
>>> env = gym.make("ProactiveGatherBank-v0", split="test")
>>> results = evaluate_bank_policy(env, GenericBankPolicy(env))
>>> len(results), results[0].questions, summarize(results)["env/new_info"] > 0
(12, 5, True)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import gymnasium as gym
import numpy as np

from clarify_gym.questions import TOP_GENERIC_QUESTIONS

__all__ = [
    "BankPolicy",
    "EpisodeResult",
    "GenericBankPolicy",
    "RandomBankPolicy",
    "SB3BankPolicy",
    "evaluate_bank_policy",
    "greedy_fixed_sequence",
    "summarize",
]


class BankPolicy(Protocol):
    """Anything that picks bank actions: ``reset(seed)`` per episode, then ``act(obs)``."""

    def reset(self, seed: int | None = None) -> None:
        """Start an episode."""
        ...

    def act(self, observation: np.ndarray) -> int:
        """A discrete action for a feature observation."""
        ...


def _bank(env: gym.Env) -> tuple[str, ...]:
    return tuple(env.get_wrapper_attr("bank"))


class RandomBankPolicy:
    """Uniform over every action of ``Discrete(K + 1)``, STOP included, from its own RNG."""

    def __init__(self, env: gym.Env, seed: int = 0) -> None:
        self.n = int(env.action_space.n)  # type: ignore[attr-defined]
        self.rng = np.random.default_rng(seed)

    def reset(self, seed: int | None = None) -> None:
        if seed is not None:
            self.rng = np.random.default_rng(seed)

    def act(self, observation: np.ndarray) -> int:
        return int(self.rng.integers(self.n))


class GenericBankPolicy:
    """Ask ``questions`` (default :data:`~clarify_gym.questions.TOP_GENERIC_QUESTIONS`) in
    order, whatever the task and the answers; STOP when they run out."""

    def __init__(self, env: gym.Env, questions: Sequence[str] = TOP_GENERIC_QUESTIONS) -> None:
        bank = _bank(env)
        missing = [q for q in questions if q not in bank]
        if missing:
            raise ValueError(f"questions not in the env's bank: {missing[:3]}")
        self.order = [bank.index(q) for q in questions]
        self.stop = len(bank)
        self._turn = 0

    def reset(self, seed: int | None = None) -> None:
        self._turn = 0

    def act(self, observation: np.ndarray) -> int:
        turn, self._turn = self._turn, self._turn + 1
        return self.order[turn] if turn < len(self.order) else self.stop


class SB3BankPolicy:
    """A stable-baselines3 model's action (``deterministic=True``: its most likely action)."""

    def __init__(self, model: Any, deterministic: bool = True) -> None:
        self.model = model
        self.deterministic = deterministic

    def reset(self, seed: int | None = None) -> None:
        if seed is not None and not self.deterministic:
            self.model.set_random_seed(seed)

    def act(self, observation: np.ndarray) -> int:
        action, _ = self.model.predict(observation, deterministic=self.deterministic)
        return int(action)


@dataclass(frozen=True)
class EpisodeResult:
    """One evaluated episode."""

    task_id: str
    #: The discrete actions taken, in order (the last is STOP if the policy stopped).
    actions: tuple[int, ...]
    #: Hidden sentences elicited for the first time (``env/new_info``).
    new_info: int
    #: Elicited hidden sentences / |H| (``env/hidden_coverage``).
    hidden_coverage: float
    #: Questions asked (``env/questions``).
    questions: int
    #: Share of questions that elicited nothing new (``env/redundant_rate``).
    redundant_rate: float
    #: The judge's checklist score of the final outline (``eval/checklist_score``).
    checklist_score: float
    #: Sum of the env's rewards.
    episode_return: float

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        out = asdict(self)
        out["actions"] = list(self.actions)
        return out


def run_episode(
    env: gym.Env, policy: BankPolicy, *, task_id: str, seed: int | None = None
) -> EpisodeResult:
    """Play one episode of ``policy`` on task ``task_id``."""
    obs, _ = env.reset(seed=seed, options={"task_id": task_id})
    policy.reset(seed)
    actions: list[int] = []
    total = 0.0
    while True:
        action = policy.act(obs)
        actions.append(action)
        obs, reward, terminated, truncated, info = env.step(action)
        total += float(reward)
        if terminated or truncated:
            break
    return EpisodeResult(
        task_id=task_id,
        actions=tuple(actions),
        new_info=int(info["env/new_info"]),
        hidden_coverage=float(info["env/hidden_coverage"]),
        questions=int(info["env/questions"]),
        redundant_rate=float(info["env/redundant_rate"]),
        checklist_score=float(info["eval/checklist_score"]),
        episode_return=total,
    )


def evaluate_bank_policy(
    env: gym.Env, policy: BankPolicy, *, episodes_per_task: int = 1, seed: int = 0
) -> list[EpisodeResult]:
    """Play ``episodes_per_task`` episodes on every task of ``env`` (in task order); episode
    ``j`` of task ``i`` uses seed ``seed + i * episodes_per_task + j``."""
    results = []
    for i, task in enumerate(env.unwrapped.tasks):  # type: ignore[attr-defined]
        for j in range(episodes_per_task):
            s = seed + i * episodes_per_task + j
            results.append(run_episode(env, policy, task_id=task.id, seed=s))
    return results


def greedy_fixed_sequence(env: gym.Env, length: int | None = None) -> tuple[str, ...]:
    """The fixed question sequence built greedily on the tasks of ``env``: at each position, the
    bank question that most raises the mean ``env/new_info`` over every task (ties: the earlier
    bank question). It ignores the task and the answers, so it is the reference a policy has to
    beat by conditioning on them. ``length`` defaults to the env's ``max_questions``.

    >>> import gymnasium as gym
    >>> seq = greedy_fixed_sequence(gym.make("ProactiveGatherBank-v0", split="train"), 2)
    >>> len(seq), len(set(seq))
    (2, 2)
    """
    bank = _bank(env)
    length = int(env.get_wrapper_attr("max_questions")) if length is None else length
    chosen: list[str] = []
    for _ in range(length):
        scores = [
            summarize(evaluate_bank_policy(env, GenericBankPolicy(env, [*chosen, q])))[
                "env/new_info"
            ]
            for q in bank
        ]
        chosen.append(bank[int(np.argmax(scores))])
    return tuple(chosen)


def summarize(results: Sequence[EpisodeResult]) -> dict[str, float]:
    """Means of the episode metrics, under their glossary names.

    >>> r = EpisodeResult("t", (1, 2), 4, 0.25, 2, 0.5, 0.4, 0.25)
    >>> summarize([r, r])["env/new_info"], summarize([r])["episodes"]
    (4.0, 1.0)
    """
    if not results:
        raise ValueError("no episodes to summarize")
    return {
        "env/new_info": float(np.mean([r.new_info for r in results])),
        "env/hidden_coverage": float(np.mean([r.hidden_coverage for r in results])),
        "env/questions": float(np.mean([r.questions for r in results])),
        "env/redundant_rate": float(np.mean([r.redundant_rate for r in results])),
        "eval/checklist_score": float(np.mean([r.checklist_score for r in results])),
        "episodes": float(len(results)),
    }
