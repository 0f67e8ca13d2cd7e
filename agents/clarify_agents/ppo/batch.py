"""A rollout as padded tensors, and scoring it without gradients in chosen row groups.

Shapes: B episodes, T tokens (right-padded).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from clarify_agents.ppo.rollout import Episode

__all__ = ["Batch", "rows", "score"]


@dataclass
class Batch:
    """One rollout, right-padded; every tensor is ``(B, T)`` on the training device."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    policy_mask: torch.Tensor
    env_rewards: torch.Tensor
    sample_logprobs: torch.Tensor
    """The sampler's log-prob of each policy token (NaN elsewhere, or where it is unknown)."""

    @classmethod
    def collate(cls, episodes: list[Episode], pad_id: int, device: torch.device) -> Batch:
        """Pad the episodes' token sequences on the right into one batch."""
        width = max(len(e.tokens) for e in episodes)

        def pad(rows: list[list[Any]], value: Any, dtype: torch.dtype) -> torch.Tensor:
            full = [row + [value] * (width - len(row)) for row in rows]
            return torch.tensor(full, dtype=dtype, device=device)

        return cls(
            input_ids=pad([e.tokens for e in episodes], pad_id, torch.long),
            attention_mask=pad([[1] * len(e.tokens) for e in episodes], 0, torch.long),
            policy_mask=pad([e.policy_mask for e in episodes], False, torch.bool),
            env_rewards=pad([e.rewards for e in episodes], 0.0, torch.float32),
            sample_logprobs=pad(
                [_fit(e.sample_logprobs, len(e.tokens)) for e in episodes], math.nan, torch.float32
            ),
        )


def _fit(values: list[float], length: int) -> list[float]:
    """``values`` cut or NaN-padded to ``length``."""
    return values[:length] + [math.nan] * (length - len(values))


def rows(
    tensors: list[torch.Tensor], attention: torch.Tensor, idx: torch.Tensor
) -> list[torch.Tensor]:
    """The rows ``idx`` of each (B, T) tensor, cut to the longest of those rows."""
    width = int(attention[idx].sum(1).max())
    return [t[idx, :width] for t in tensors]


@torch.no_grad()
def score(
    model: Any, batch: Batch, groups: list[torch.Tensor], temperature: float
) -> tuple[torch.Tensor, ...]:
    """``(logprobs, values, entropy)``, each (B, T), in no-grad passes over the row ``groups``.

    Give the micro-batches of the first training epoch as ``groups``: every row is then scored
    in the very batch shape (rows, width) the first training pass sees, so in bf16 the "old"
    log-probs equal that pass's bit for bit and the first ratio is exactly 1."""
    outs = [torch.zeros(batch.input_ids.shape, device=batch.input_ids.device) for _ in range(3)]
    for idx in groups:
        ids, attn, mask = rows(
            [batch.input_ids, batch.attention_mask, batch.policy_mask], batch.attention_mask, idx
        )
        for out, part in zip(outs, model(ids, attn, mask, temperature=temperature), strict=True):
            out[idx, : ids.shape[1]] = part.float()
    return tuple(outs)
