"""Reward terms: small pure functions, and an explicit weighted sum that reports every term.

* :func:`paper_binary` — Huang et al. (2025): r_t = 1 if A(q_t) ∩ H ≠ ∅ else 0. Pays a repeated
  question again and every relevant question the same.
* :func:`new_information` — clarify-gym's default: the (optionally weighted) share of H that a
  question elicits *for the first time*. An episode's return is then its hidden coverage, in
  [0, 1]; asking for what is already known earns 0.
* :func:`question_cost` — a constant charge per question (0 by default).
* the checklist score of the final outline, added at the end with a weight (0 by default).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Collection, Mapping
from dataclasses import dataclass, fields

__all__ = [
    "REWARD_PRESETS",
    "RewardWeights",
    "check_setting",
    "combine",
    "new_information",
    "paper_binary",
    "question_cost",
    "resolve_reward",
]


def paper_binary(cited: Collection[int], hidden: Collection[int]) -> float:
    """The paper's reward: 1 if the question cites any hidden sentence, else 0.

    >>> paper_binary([3, 9], {1, 3}), paper_binary([2], {1, 3}), paper_binary([], {1})
    (1.0, 0.0, 0.0)
    """
    hidden_set = hidden if isinstance(hidden, (set, frozenset)) else set(hidden)
    return 1.0 if any(i in hidden_set for i in cited) else 0.0


def new_information(
    cited: Collection[int],
    hidden: Collection[int],
    elicited_before: Collection[int],
    weights: Mapping[int, float] | None = None,
) -> float:
    """Share of the hidden set that ``cited`` reveals for the first time.

    With ``weights`` (sentence id -> importance, default 1 each) the share is weighted; it is
    always normalised by the total weight of H, so an episode sums to at most 1.

    >>> new_information([1, 2, 7], hidden={1, 2, 3, 4}, elicited_before={2})
    0.25
    >>> new_information([1, 2], hidden={1, 2, 3, 4}, elicited_before={1, 2})
    0.0
    >>> new_information([1], hidden={1, 2}, elicited_before=set(), weights={1: 3.0, 2: 1.0})
    0.75
    """
    if not hidden:
        return 0.0
    fresh = {i for i in cited if i in hidden and i not in elicited_before}
    if weights is None:
        return len(fresh) / len(hidden)
    total = sum(weights.get(i, 1.0) for i in hidden)
    return sum(weights.get(i, 1.0) for i in fresh) / total if total > 0 else 0.0


def check_setting(name: str, value: object) -> float:
    """``value`` as a float, if it is a finite, non-negative number; else a one-line
    ``ValueError`` naming the setting (a NaN or infinite cost or weight would make every
    reward NaN or infinite without a word).

    >>> check_setting("question_cost", 0.02)
    0.02
    >>> check_setting("question_cost", float("nan"))
    Traceback (most recent call last):
    ...
    ValueError: question_cost must be a finite number >= 0, got nan
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return number


def question_cost(cost: float) -> float:
    """The per-question term: ``-cost``.

    >>> question_cost(0.02)
    -0.02
    """
    return -float(cost)


@dataclass(frozen=True)
class RewardWeights:
    """Weights of the reward terms; the step reward is ``sum(weight * term)``.

    Attributes:
        new_info: weight of :func:`new_information` (per question).
        paper_binary: weight of :func:`paper_binary` (per question).
        question_cost: weight of :func:`question_cost` (per question, the cost itself is an env
            argument; keep this at 1.0 and set the cost).
        checklist: weight of the final checklist score, added on the last step.
    """

    new_info: float = 1.0
    paper_binary: float = 0.0
    question_cost: float = 1.0
    checklist: float = 0.0

    def __post_init__(self) -> None:
        for f in fields(self):
            check_setting(f"RewardWeights.{f.name}", getattr(self, f.name))


#: Named reward settings accepted by the env's ``reward`` argument.
REWARD_PRESETS: dict[str, RewardWeights] = {
    "new_info": RewardWeights(),
    "paper": RewardWeights(new_info=0.0, paper_binary=1.0),
}


def resolve_reward(reward: str | RewardWeights) -> RewardWeights:
    """A :class:`RewardWeights` from a preset name or itself.

    >>> resolve_reward("paper").paper_binary
    1.0
    """
    if isinstance(reward, RewardWeights):
        return reward
    if reward not in REWARD_PRESETS:
        raise ValueError(
            f"unknown reward {reward!r}; use one of {sorted(REWARD_PRESETS)} or a RewardWeights"
        )
    return REWARD_PRESETS[reward]


def combine(terms: Mapping[str, float], weights: RewardWeights) -> float:
    """The weighted sum of the terms present in ``terms``.

    >>> combine({"new_info": 0.25, "paper_binary": 1.0, "question_cost": -0.01}, RewardWeights())
    0.24
    """
    total = 0.0
    for name, value in terms.items():
        total += getattr(weights, name) * value
    return total
