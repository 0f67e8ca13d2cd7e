"""PPO loss details: the minibatch token mean, the log-ratio clamp and dual-clip."""

from __future__ import annotations

import math

import pytest
import torch
from clarify_agents.ppo.core import ppo_losses

ARGS = {"clip_ratio": 0.2, "clip_value": 0.2, "vf_coef": 0.5, "ent_coef": 0.01}


def _minibatch(seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    shape = (4, 7)
    mask = torch.rand(shape, generator=g) > 0.4
    mask[:, 0] = False
    mask[3, 1:] = False  # a row with no policy token at all
    mask[0, 1:] = True  # a long row: per-micro-batch means would weight its tokens less
    tensors = [torch.randn(shape, generator=g) for _ in range(7)]
    return [*tensors, mask]


def _grads(rows: list[list[int]], token_count: bool) -> tuple[torch.Tensor, torch.Tensor]:
    logp0, old, v0, old_v, adv, ret, ent, mask = _minibatch()
    logp, values = logp0.clone().requires_grad_(True), v0.clone().requires_grad_(True)
    total = mask.sum()
    for idx in rows:
        out = ppo_losses(
            logp[idx], old[idx], values[idx], old_v[idx], adv[idx], ret[idx], ent[idx], mask[idx],
            **ARGS, token_count=total if token_count else None,
        )  # fmt: skip
        (out.loss / (1 if token_count else len(rows))).backward()
    return logp.grad, values.grad


def test_minibatch_token_mean_does_not_depend_on_the_micro_batch_split():
    whole = _grads([[0, 1, 2, 3]], token_count=True)
    for split in ([[0, 1], [2, 3]], [[0], [1], [2], [3]], [[3, 0, 2], [1]]):
        parts = _grads(split, token_count=True)
        for a, b in zip(whole, parts, strict=True):
            assert torch.allclose(a, b, atol=1e-6), split
    # the mean of per-micro-batch token means is a different (length-biased) objective
    biased = _grads([[0], [1], [2], [3]], token_count=False)
    assert not torch.allclose(whole[0], biased[0], atol=1e-4)


def test_log_ratio_is_clamped_before_exp():
    mask = torch.tensor([[False, True]])
    logp = torch.tensor([[0.0, 0.0]])
    old = torch.tensor([[0.0, -500.0]])  # a stale log-prob: exp(500) overflows float32
    zeros = torch.zeros(1, 2)
    adv = torch.tensor([[0.0, -1.0]])
    out = ppo_losses(logp, old, zeros, zeros, adv, zeros, zeros, mask, **ARGS)
    assert math.isfinite(out.loss.item()) and out.policy.item() == pytest.approx(math.exp(20.0))
    tight = ppo_losses(logp, old, zeros, zeros, adv, zeros, zeros, mask, **ARGS, max_log_ratio=1)
    assert tight.policy.item() == pytest.approx(math.e)


def test_dual_clip_bounds_the_loss_of_negative_advantages_only():
    mask = torch.tensor([[False, True, True]])
    logp = torch.tensor([[0.0, math.log(5.0), math.log(5.0)]], requires_grad=True)
    zeros = torch.zeros(1, 3)
    adv = torch.tensor([[0.0, -1.0, 1.0]])
    plain = ppo_losses(logp, zeros, zeros, zeros, adv, zeros, zeros, mask, **ARGS)
    # A = -1, ratio 5: loss 5; A = +1: clipped at 1.2 -> -1.2
    assert plain.policy.item() == pytest.approx((5.0 - 1.2) / 2)
    dual = ppo_losses(logp, zeros, zeros, zeros, adv, zeros, zeros, mask, **ARGS, dual_clip=3.0)
    assert dual.policy.item() == pytest.approx((3.0 - 1.2) / 2)
    dual.loss.backward()
    assert logp.grad[0, 1].item() == 0.0  # the bounded token pushes no further
    with pytest.raises(ValueError, match="dual_clip"):
        ppo_losses(logp, zeros, zeros, zeros, adv, zeros, zeros, mask, **ARGS, dual_clip=1.0)
