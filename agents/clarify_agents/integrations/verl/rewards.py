"""Per-question rewards on token positions, for the verl adapter (no verl import).

verl's AgentLoop output has one ``reward_score`` per trajectory, which verl places on the last
response token. ProactiveGather pays each question separately, so the AgentLoop records, for
every assistant turn, the index of its last generated token in the response
(``extra_fields["turn_ends"]``) and the env's reward for that turn
(``extra_fields["turn_rewards"]``); :func:`place_turn_rewards` then writes those rewards into
verl's ``rm_scores`` at those indices. Every index is a policy token (``response_mask`` 1), so
verl's GAE, which skips masked (user) tokens, sees each reward where the policy made the choice.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["last_policy_token", "place_turn_rewards", "turn_token_rewards"]


def last_policy_token(response_mask: Sequence[int]) -> int:
    """Index of the last policy token (mask 1) in the response so far.

    >>> last_policy_token([1, 1, 0, 0, 1, 1, 1, 0])
    6
    """
    for index in range(len(response_mask) - 1, -1, -1):
        if response_mask[index]:
            return index
    raise ValueError("the response has no policy token yet")


def turn_token_rewards(
    length: int, turn_ends: Sequence[int], turn_rewards: Sequence[float]
) -> list[float]:
    """Token rewards of one response of ``length`` tokens: each turn's reward on its last
    token. A turn that ends beyond ``length`` (the response was cut to verl's
    ``response_length``) pays on the last kept token, so the return is never lost.

    >>> turn_token_rewards(8, [2, 6], [0.5, 1.0])
    [0.0, 0.0, 0.5, 0.0, 0.0, 0.0, 1.0, 0.0]
    >>> turn_token_rewards(4, [2, 6], [0.5, 1.0])
    [0.0, 0.0, 0.5, 1.0]
    """
    if len(turn_ends) != len(turn_rewards):
        raise ValueError(f"{len(turn_ends)} turn ends for {len(turn_rewards)} turn rewards")
    out = [0.0] * length
    if length == 0:
        return out
    for end, reward in zip(turn_ends, turn_rewards, strict=True):
        out[min(int(end), length - 1)] += float(reward)
    return out


def place_turn_rewards(
    rm_scores: Any, response_lengths: Sequence[int], extra_fields: Sequence[dict[str, Any]]
) -> Any:
    """``rm_scores`` (B, T) with each row that carries ``turn_ends``/``turn_rewards`` in its
    extra fields rewritten to those per-turn rewards (rows without them keep verl's)."""
    import torch

    out = rm_scores.clone()
    for row, (length, extra) in enumerate(zip(response_lengths, extra_fields, strict=True)):
        if extra.get("turn_ends") is None:
            continue
        rewards = turn_token_rewards(int(length), extra["turn_ends"], extra["turn_rewards"])
        out[row] = 0.0
        out[row, : int(length)] = torch.tensor(rewards, dtype=out.dtype)
    return out
