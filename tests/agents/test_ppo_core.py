"""PPO maths against hand-computed cases: masked statistics, GAE over policy tokens only, losses."""

from __future__ import annotations

import math

import pytest
import torch
from clarify_agents.ppo.core import (
    AdaptiveKLController,
    compute_gae,
    masked_mean,
    masked_var,
    masked_whiten,
    ppo_losses,
    token_rewards,
)

NAN = float("nan")


def test_masked_whiten_hand_computed_and_ignores_unmasked_garbage():
    x = torch.tensor([[1.0, 2.0, NAN, 4.0]])
    mask = torch.tensor([[True, True, False, True]])
    # values 1, 2, 4: mean 7/3, unbiased variance 7/3
    assert masked_mean(x, mask).item() == pytest.approx(7 / 3)
    assert masked_var(x, mask).item() == pytest.approx(7 / 3)
    std = math.sqrt(7 / 3)
    expected = [(1 - 7 / 3) / std, (2 - 7 / 3) / std, 0.0, (4 - 7 / 3) / std]
    assert masked_whiten(x, mask)[0].tolist() == pytest.approx(expected, abs=1e-6)
    unshifted = masked_whiten(x, mask, shift_mean=False)[0]
    assert unshifted[0].item() == pytest.approx(expected[0] + 7 / 3, abs=1e-6)
    assert masked_mean(x, mask, dim=1).tolist() == pytest.approx([7 / 3])


def test_masked_var_needs_two_values():
    with pytest.raises(ValueError, match="at least two"):
        masked_var(torch.tensor([1.0, 2.0]), torch.tensor([True, False]))


def test_gae_skips_environment_tokens_hand_computed():
    # Row 0: [prompt, q1 token, q1 last token, answer, answer, q2 last token, padding]
    # Row 1: [prompt, q1 last token, padding...]; 99 marks values that must be ignored.
    mask = torch.tensor(
        [
            [False, True, True, False, False, True, False],
            [False, True, False, False, False, False, False],
        ]
    )
    rewards = torch.tensor([[0.0, 0.1, 1.0, 0.0, 0.0, 0.5, 0.0], [0.0, 2.0, 0, 0, 0, 0, 0]])
    values = torch.tensor([[99, 0.2, 0.4, 99, 99, 0.3, 99], [99, 0.5, 99, 99, 99, 99, 99]])
    adv, ret = compute_gae(rewards, values, mask, gamma=0.9, lam=0.8)
    # t=5: 0.5 - 0.3 = 0.2
    # t=2: delta = 1.0 + 0.9 * 0.3 - 0.4 = 0.87; A = 0.87 + 0.72 * 0.2 = 1.014
    # t=1: delta = 0.1 + 0.9 * 0.4 - 0.2 = 0.26; A = 0.26 + 0.72 * 1.014 = 0.99008
    assert adv[0].tolist() == pytest.approx([0, 0.99008, 1.014, 0, 0, 0.2, 0], abs=1e-6)
    assert ret[0].tolist() == pytest.approx([0, 1.19008, 1.414, 0, 0, 0.5, 0], abs=1e-6)
    assert adv[1].tolist() == pytest.approx([0, 1.5, 0, 0, 0, 0, 0])
    assert ret[1].tolist() == pytest.approx([0, 2.0, 0, 0, 0, 0, 0])


def test_gae_equals_textbook_gae_on_the_policy_tokens_alone():
    torch.manual_seed(0)
    mask = torch.rand(3, 40) < 0.4
    mask[:, 0] = False
    rewards = torch.where(mask, torch.randn(3, 40), torch.zeros(3, 40))
    values = torch.randn(3, 40)
    adv, ret = compute_gae(rewards, values, mask, gamma=0.97, lam=0.9)
    for row in range(3):
        r, v = rewards[row][mask[row]].tolist(), values[row][mask[row]].tolist()
        expected, gae = [0.0] * len(r), 0.0
        for t in reversed(range(len(r))):
            next_v = v[t + 1] if t + 1 < len(r) else 0.0
            gae = r[t] + 0.97 * next_v - v[t] + 0.97 * 0.9 * gae
            expected[t] = gae
        assert adv[row][mask[row]].tolist() == pytest.approx(expected, abs=1e-5)
        assert (adv[row][~mask[row]] == 0).all() and (ret[row][~mask[row]] == 0).all()


def test_turn_gamma_discounts_only_across_the_users_answers():
    # [prompt, q1, q1 last, answer, answer, q2, q2 last, padding]: two replies of two tokens
    mask = torch.tensor([[False, True, True, False, False, True, True, False]])
    rewards = torch.tensor([[0.0, -0.1, 1.0, 0.0, 0.0, -0.1, 0.5, 0.0]])
    values = torch.tensor([[9.0, 0.2, 0.4, 9.0, 9.0, 0.3, 0.1, 9.0]])
    same = compute_gae(rewards, values, mask, gamma=1.0, lam=1.0, turn_gamma=1.0)
    default = compute_gae(rewards, values, mask, 1.0, 1.0)
    assert all(torch.equal(a, b) for a, b in zip(same, default, strict=True))
    adv, ret = compute_gae(rewards, values, mask, gamma=1.0, lam=1.0, turn_gamma=0.0)
    # each reply's return is its own rewards: q1 -0.1 + 1.0, q2 -0.1 + 0.5
    assert ret[0].tolist() == pytest.approx([0, 0.9, 1.0, 0, 0, 0.4, 0.5, 0], abs=1e-6)
    assert adv[0].tolist() == pytest.approx([0, 0.7, 0.6, 0, 0, 0.1, 0.4, 0], abs=1e-6)
    half = compute_gae(rewards, values, mask, gamma=1.0, lam=1.0, turn_gamma=0.5)[1]
    assert half[0, 2].item() == pytest.approx(1.0 + 0.5 * 0.4)  # the next reply's return, halved
    assert half[0, 1].item() == pytest.approx(-0.1 + 1.0 + 0.5 * 0.4)


def test_token_rewards_kl_penalty_only_on_policy_tokens():
    env = torch.tensor([[0.0, 0.0, 1.0, 0.0]])
    logp = torch.tensor([[-1.0, -2.0, -1.0, NAN]])
    ref = torch.tensor([[-3.0, -2.5, -1.5, NAN]])
    mask = torch.tensor([[False, True, True, False]])
    rewards, kl = token_rewards(env, logp, ref, mask, kl_coef=0.2)
    assert kl[0].tolist() == pytest.approx([0.0, 0.5, 0.5, 0.0])
    assert rewards[0].tolist() == pytest.approx([0.0, -0.1, 0.9, 0.0])


def _losses(logp, old, values, old_values, adv, ret, mask, **kw):
    ent = torch.zeros_like(logp)
    args = {"clip_ratio": 0.2, "clip_value": 0.2, "vf_coef": 0.5, "ent_coef": 0.0, **kw}
    return ppo_losses(logp, old, values, old_values, adv, ret, ent, mask, **args)


def test_policy_loss_is_clipped_pessimistically():
    old = torch.zeros(1, 3)
    logp = torch.tensor([[0.0, math.log(1.5), math.log(1.5)]], requires_grad=True)
    adv = torch.tensor([[0.0, 1.0, -1.0]])
    mask = torch.tensor([[False, True, True]])
    zeros = torch.zeros(1, 3)
    out = _losses(logp, old, zeros, zeros, adv, zeros, mask)
    # token 1: A = +1, ratio 1.5 -> min(1.5, 1.2) = 1.2 (clipped); token 2: A = -1 -> -1.5
    assert out.policy.item() == pytest.approx((-1.2 + 1.5) / 2)
    assert out.clipfrac.item() == pytest.approx(1.0)
    out.loss.backward()
    assert logp.grad[0, 1].item() == 0.0  # the clipped branch carries no gradient
    assert logp.grad[0, 2].item() == pytest.approx(1.5 / 2)


def test_value_loss_is_clipped():
    zeros, mask = torch.zeros(1, 2), torch.tensor([[False, True]])
    values = torch.tensor([[0.0, 1.0]])
    ret = torch.tensor([[0.0, 1.0]])
    out = _losses(zeros, zeros, values, zeros, zeros, ret, mask)
    # unclipped error 0, clipped value 0.2 -> error 0.64; max -> 0.5 * 0.64
    assert out.value.item() == pytest.approx(0.32)
    assert out.value_clipfrac.item() == 1.0


def test_only_policy_tokens_carry_loss():
    torch.manual_seed(1)
    mask = torch.tensor([[False, True, True, False, True, False]])
    base = [torch.randn(1, 6) for _ in range(6)]
    logp = base[0].clone().requires_grad_(True)
    values = base[2].clone().requires_grad_(True)
    out = _losses(logp, base[1], values, base[3], base[4], base[5], mask, ent_coef=0.1)
    out.loss.backward()
    assert (logp.grad[~mask] == 0).all() and (values.grad[~mask] == 0).all()
    assert (logp.grad[mask] != 0).any()
    garbage = [torch.where(mask, b, torch.full_like(b, 1e6)) for b in base]
    garbage[1] = torch.where(mask, base[1], torch.full_like(base[1], NAN))
    again = _losses(
        garbage[0], garbage[1], garbage[2], garbage[3], garbage[4], garbage[5], mask, ent_coef=0.1
    )
    assert again.loss.item() == pytest.approx(out.loss.item())
    assert math.isfinite(again.approx_kl.item())


def test_adaptive_kl_moves_towards_target():
    ctl = AdaptiveKLController(0.1, target=1.0, horizon=10)
    ctl.update(kl=5.0, episodes=5)  # too much KL: beta up by 20 % x 5/10
    assert ctl.value == pytest.approx(0.11)
    ctl.update(kl=0.0, episodes=5)  # too little: down
    assert ctl.value == pytest.approx(0.11 * 0.9)
