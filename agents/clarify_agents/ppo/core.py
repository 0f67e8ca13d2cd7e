"""Pure PPO maths over token sequences with a mask of policy tokens.

Every tensor here is ``(B, T)``: B episodes, T token positions. ``mask`` is True where the
policy wrote the token; prompt, user-answer and padding positions are False and never carry a
reward, an advantage or a loss. Functions are NaN-safe outside the mask (``torch.where``, not
multiplication), so garbage in context positions cannot leak into the loss.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

__all__ = [
    "AdaptiveKLController",
    "PPOLosses",
    "compute_gae",
    "explained_variance",
    "masked_mean",
    "masked_var",
    "masked_whiten",
    "ppo_losses",
    "token_rewards",
]


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean of ``x`` where ``mask`` is True (over everything, or along ``dim``).

    >>> masked_mean(torch.tensor([1.0, float("nan"), 3.0]), torch.tensor([True, False, True]))
    tensor(2.)
    """
    mask = mask.bool()
    total = torch.where(mask, x, torch.zeros_like(x))
    if dim is None:
        return total.sum() / mask.sum().clamp(min=1)
    return total.sum(dim) / mask.sum(dim).clamp(min=1)


def masked_var(x: torch.Tensor, mask: torch.Tensor, unbiased: bool = True) -> torch.Tensor:
    """Variance of ``x`` where ``mask`` is True (Bessel-corrected unless ``unbiased=False``).

    >>> masked_var(torch.tensor([1.0, 5.0, 3.0, 9.0]), torch.tensor([True, False, True, False]))
    tensor(2.)
    """
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    n = mask.bool().sum()
    if unbiased:
        if n < 2:
            raise ValueError("masked_var needs at least two unmasked values to be unbiased")
        var = var * n / (n - 1)
    return var


def masked_whiten(
    x: torch.Tensor,
    mask: torch.Tensor,
    shift_mean: bool = True,
    *,
    all_reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """``x`` normalised to mean 0 (unless ``shift_mean=False``) and unit variance over the
    masked values; 0 outside the mask. ``all_reduce`` sums a tensor over processes (e.g.
    ``lambda t: accelerator.reduce(t, "sum")``): the statistics are then those of the masked
    values of every process's ``x``, as if the batches were one.

    >>> masked_whiten(torch.tensor([1.0, 7.0, 3.0]), torch.tensor([True, False, True]))
    tensor([-0.7071,  0.0000,  0.7071])
    """
    mask = mask.bool()
    total = all_reduce or (lambda t: t)
    zero = torch.zeros_like(x)
    n = total(mask.sum().to(x.dtype))
    mean = total(torch.where(mask, x, zero).sum()) / n.clamp(min=1)
    if n < 2:
        raise ValueError("masked_whiten needs at least two unmasked values")
    var = total(torch.where(mask, (x - mean) ** 2, zero).sum()) / (n - 1)  # Bessel-corrected
    whitened = (x - mean) * torch.rsqrt(var + 1e-8)
    if not shift_mean:
        whitened = whitened + mean
    return torch.where(mask, whitened, zero)


def token_rewards(
    env_rewards: torch.Tensor,
    logprobs: torch.Tensor,
    ref_logprobs: torch.Tensor,
    mask: torch.Tensor,
    kl_coef: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token rewards ``env_rewards - kl_coef * (logprobs - ref_logprobs)`` on policy tokens
    (0 elsewhere), and the per-token KL estimate itself.

    >>> r, kl = token_rewards(torch.tensor([[0.0, 0.0, 1.0]]), torch.tensor([[0.0, -1.0, -2.0]]),
    ...                       torch.tensor([[0.0, -1.5, -2.0]]), torch.tensor([[False, True, True]]), 0.1)
    >>> r, kl
    (tensor([[ 0.0000, -0.0500,  1.0000]]), tensor([[0.0000, 0.5000, 0.0000]]))
    """
    mask = mask.bool()
    kl = torch.where(mask, logprobs - ref_logprobs, torch.zeros_like(logprobs))
    rewards = torch.where(mask, env_rewards - kl_coef * kl, torch.zeros_like(kl))
    return rewards, kl


def compute_gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    mask: torch.Tensor,
    gamma: float,
    lam: float,
    turn_gamma: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over the policy tokens of each episode.

    Positions outside ``mask`` (prompt, the user's answers, padding) are skipped: the policy
    token before an answer bootstraps from the value of the next policy token after it, as if
    the environment's tokens were part of one transition, discounted by ``gamma * turn_gamma``
    (``turn_gamma`` = 0: each reply is credited with its own rewards only). The value after the
    last policy token is 0 (the episode is over). Returns ``(advantages, returns)``, 0 outside
    the mask.

    >>> adv, ret = compute_gae(torch.tensor([[0.0, 9.0, 1.0]]), torch.tensor([[0.5, 9.0, 0.2]]),
    ...                        torch.tensor([[True, False, True]]), gamma=1.0, lam=1.0)
    >>> adv, ret
    (tensor([[0.5000, 0.0000, 0.8000]]), tensor([[1., 0., 1.]]))
    >>> adv, ret = compute_gae(torch.tensor([[0.0, 9.0, 1.0]]), torch.tensor([[0.5, 9.0, 0.2]]),
    ...                        torch.tensor([[True, False, True]]), 1.0, 1.0, turn_gamma=0.0)
    >>> adv, ret
    (tensor([[-0.5000,  0.0000,  0.8000]]), tensor([[0., 0., 1.]]))
    """
    mask = mask.bool()
    batch, length = rewards.shape
    advantages = torch.zeros_like(rewards)
    last_gae = rewards.new_zeros(batch)
    next_value = rewards.new_zeros(batch)
    next_is_policy = torch.zeros(batch, dtype=torch.bool, device=mask.device)  # is t + 1 in mask
    for t in reversed(range(length)):
        m = mask[:, t]
        g = torch.where(next_is_policy, gamma, gamma * turn_gamma).to(rewards.dtype)  # (B,)
        delta = rewards[:, t] + g * next_value - values[:, t]
        gae = delta + g * lam * last_gae
        last_gae = torch.where(m, gae, last_gae)
        next_value = torch.where(m, values[:, t], next_value)
        advantages[:, t] = torch.where(m, gae, torch.zeros_like(gae))
        next_is_policy = m
    returns = torch.where(mask, advantages + values, torch.zeros_like(values))
    return advantages, returns


@dataclass
class PPOLosses:
    """The terms of one minibatch's PPO loss (scalars)."""

    loss: torch.Tensor
    policy: torch.Tensor
    value: torch.Tensor
    entropy: torch.Tensor
    approx_kl: torch.Tensor
    clipfrac: torch.Tensor
    value_clipfrac: torch.Tensor


def ppo_losses(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    values: torch.Tensor,
    old_values: torch.Tensor,
    advantages: torch.Tensor,
    returns: torch.Tensor,
    entropy: torch.Tensor,
    mask: torch.Tensor,
    *,
    clip_ratio: float,
    clip_value: float,
    vf_coef: float,
    ent_coef: float,
    max_log_ratio: float = 20.0,
    dual_clip: float | None = None,
    token_count: float | torch.Tensor | None = None,
) -> PPOLosses:
    """Clipped policy loss, clipped value loss and entropy bonus over the policy tokens.

    ``loss = policy + vf_coef * value - ent_coef * entropy``. Each term is a token mean: the sum
    over this batch's policy tokens divided by ``token_count`` (default: their number). Pass the
    policy-token count of the whole minibatch when this batch is one micro-batch of it, so that
    the accumulated gradient is the minibatch's token mean however it is split. The log-ratio is
    clamped to ``[-max_log_ratio, max_log_ratio]`` before ``exp`` (a stale or mismatched
    log-prob cannot overflow the ratio); ``dual_clip = c > 1`` bounds the loss of a token with a
    negative advantage by ``-c * advantage`` (Ye et al. 2020). ``approx_kl`` is the k3 estimate
    of KL(old || new), ``clipfrac`` the share of tokens whose ratio left [1 - eps, 1 + eps]
    (the diagnostics are plain means over this batch's tokens).

    >>> t = torch.tensor([[0.0, -1.0]]); m = torch.tensor([[False, True]])
    >>> out = ppo_losses(t, t, t, t, torch.tensor([[5.0, 2.0]]), t, t, m,
    ...                  clip_ratio=0.2, clip_value=0.2, vf_coef=0.5, ent_coef=0.0)
    >>> float(out.policy), float(out.approx_kl), float(out.clipfrac)
    (-2.0, 0.0, 0.0)
    >>> float(ppo_losses(t, t, t, t, torch.tensor([[5.0, 2.0]]), t, t, m, clip_ratio=0.2,
    ...                  clip_value=0.2, vf_coef=0.5, ent_coef=0.0, token_count=4).policy)
    -0.5
    """
    mask = mask.bool()
    if dual_clip is not None and dual_clip <= 1:
        raise ValueError(f"dual_clip must be > 1 (or None), got {dual_clip}")
    zero = torch.zeros_like(logprobs)
    n_tokens = mask.sum() if token_count is None else token_count
    n_tokens = torch.as_tensor(n_tokens, dtype=logprobs.dtype, device=logprobs.device).clamp(min=1)

    def token_mean(x: torch.Tensor) -> torch.Tensor:
        return torch.where(mask, x, zero).sum() / n_tokens

    log_ratio = torch.where(mask, logprobs - old_logprobs, zero)
    log_ratio = log_ratio.clamp(-max_log_ratio, max_log_ratio)
    ratio = torch.exp(log_ratio)
    adv = torch.where(mask, advantages, zero)
    policy_loss = torch.max(-adv * ratio, -adv * ratio.clamp(1 - clip_ratio, 1 + clip_ratio))
    if dual_clip is not None:
        policy_loss = torch.where(adv < 0, torch.min(policy_loss, -adv * dual_clip), policy_loss)
    policy = token_mean(policy_loss)

    v_old = torch.where(mask, old_values, zero)
    ret = torch.where(mask, returns, zero)
    v_clipped = v_old + (values - v_old).clamp(-clip_value, clip_value)
    value_losses = torch.max((values - ret) ** 2, (v_clipped - ret) ** 2)
    value = 0.5 * token_mean(value_losses)

    ent = token_mean(entropy)
    loss = policy + vf_coef * value - ent_coef * ent
    with torch.no_grad():
        approx_kl = masked_mean((ratio - 1) - log_ratio, mask)
        clipfrac = masked_mean(((ratio - 1).abs() > clip_ratio).float(), mask)
        value_clipfrac = masked_mean(((values - v_old).abs() > clip_value).float(), mask)
    return PPOLosses(loss, policy, value, ent, approx_kl, clipfrac, value_clipfrac)


def explained_variance(values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor) -> float:
    """1 - Var(returns - values) / Var(returns) over the masked tokens (nan if Var(returns) = 0).

    >>> explained_variance(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([1.0, 2.0, 3.0]), torch.ones(3))
    1.0
    """
    var_returns = masked_var(returns, mask, unbiased=False)
    if float(var_returns) == 0.0:
        return float("nan")
    return float(1 - masked_var(returns - values, mask, unbiased=False) / var_returns)


class AdaptiveKLController:
    """The KL coefficient beta; adaptive (Ziegler et al. 2019) or fixed.

    With ``target`` set, beta grows when the observed per-episode KL exceeds the target and
    shrinks when it is below, by at most 20 % of ``episodes / horizon`` per update.

    >>> ctl = AdaptiveKLController(0.1, target=6.0, horizon=100)
    >>> ctl.update(kl=12.0, episodes=10); round(ctl.value, 4)
    0.102
    >>> fixed = AdaptiveKLController(0.1); fixed.update(kl=99.0, episodes=10); fixed.value
    0.1
    """

    def __init__(self, init: float, target: float | None = None, horizon: int = 10000) -> None:
        self.value = init
        self.target = target
        self.horizon = horizon

    def update(self, kl: float, episodes: int) -> None:
        """Move beta after a batch whose mean per-episode KL was ``kl``."""
        if self.target is None:
            return
        error = min(max(kl / self.target - 1.0, -0.2), 0.2)
        self.value *= 1.0 + error * episodes / self.horizon
