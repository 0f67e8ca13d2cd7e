"""Whole multi-turn episodes as one token sequence each, with a mask of the policy's tokens.

An episode is the chat the benchmark agent sees (:mod:`agents.prompts`): the system prompt, the
visible task as the first user message, then ``[assistant question, user answer]*``, rendered
with the tokenizer's chat template. Turn by turn:

1. the policy samples a reply after the generation prompt (``<|im_start|>assistant\\n``), up to
   and including its end-of-turn token: these are the **policy tokens**;
2. the reply is parsed (:func:`agents.prompts.parse_reply`) into a question or STOP and the env
   steps; the step's reward lands on the reply's last token;
3. the rest of the chat template up to the next generation prompt (end of turn, the user's
   answer) is appended as **context tokens**, rendered from the env's next observation exactly
   as :func:`agents.prompts.observation_to_messages` does at benchmark time.

The incremental sequence equals the tokenization of the whole chat whenever the reply is the
canonical tokenization of the question the env received (tests check this on the tiny and the
real Qwen2.5 tokenizers); turns where it is not (extra text around a question, an unusual token
split) are counted in ``Episode.noncanonical_turns``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import torch

from agents.ppo.config import RolloutSettings
from agents.prompts import observation_to_messages, parse_reply
from clarify_gym.env import EPISODE_METRICS

__all__ = [
    "Episode",
    "RewardFn",
    "encode",
    "play_episodes",
    "render",
    "sample_tokens",
]

logger = logging.getLogger(__name__)

#: reward_fn(reply text, env reward, env info) -> the reward PPO uses for that reply.
RewardFn = Callable[[str, float, dict[str, Any]], float]


@dataclass
class Episode:
    """One played episode: its token sequence, which tokens the policy wrote, token rewards."""

    seed: int
    task_id: str
    tokens: list[int]
    policy_mask: list[bool]
    rewards: list[float]
    replies: list[str] = field(default_factory=list)
    env_return: float = 0.0
    metrics: dict[str, float] = field(default_factory=dict)
    noncanonical_turns: int = 0
    ended_by: str = ""
    """"stop" (the policy said STOP), "budget" (no questions left) or "tokens" (max length)."""

    def extend(self, tokens: Sequence[int], *, policy: bool) -> None:
        """Append tokens (policy-written or context)."""
        self.tokens.extend(tokens)
        self.policy_mask.extend([policy] * len(tokens))
        self.rewards.extend([0.0] * len(tokens))


def render(tokenizer: Any, messages: list[dict[str, str]]) -> str:
    """The chat as text, ending with the generation prompt of the assistant's next turn."""
    return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


def encode(tokenizer: Any, text: str) -> list[int]:
    """Token ids of ``text`` (special tokens written in the text are recognised; no BOS added)."""
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


@torch.no_grad()
def sample_tokens(
    model: torch.nn.Module,
    prompts: Sequence[Sequence[int]],
    *,
    max_new_tokens: int,
    temperature: float,
    stop_ids: Sequence[int],
    pad_id: int,
    generator: torch.Generator,
    device: torch.device | str = "cpu",
) -> list[list[int]]:
    """Sample one reply per prompt from ``softmax(logits / temperature)`` (no top-k/top-p, so
    PPO's log-probabilities are those of the sampling distribution), with a KV cache and left
    padding. ``model(ids, mask, position_ids=..., past_key_values=...)`` is a
    :class:`~agents.ppo.model.PolicyValueModel` generation step. A reply ends with its stop
    token, or after ``max_new_tokens``."""
    batch, width = len(prompts), max(len(p) for p in prompts)
    input_ids = torch.full((batch, width), pad_id, dtype=torch.long, device=device)  # (B, L)
    attention = torch.zeros((batch, width), dtype=torch.long, device=device)  # (B, L)
    for i, prompt in enumerate(prompts):
        input_ids[i, width - len(prompt) :] = torch.tensor(prompt, device=device)
        attention[i, width - len(prompt) :] = 1
    positions = (attention.cumsum(-1) - 1).clamp(min=0)  # (B, L)
    logits, cache = model(input_ids, attention, position_ids=positions)  # (B, V)
    stops = torch.tensor(list(stop_ids), device=device)
    done = torch.zeros(batch, dtype=torch.bool, device=device)
    out: list[torch.Tensor] = []
    for _ in range(max_new_tokens):
        probs = torch.softmax(logits.float() / temperature, dim=-1)  # (B, V)
        token = torch.multinomial(probs, 1, generator=generator).squeeze(-1)  # (B,)
        token = torch.where(done, torch.full_like(token, pad_id), token)
        out.append(token)
        was_done = done
        done = done | torch.isin(token, stops)
        if bool(done.all()):
            break
        attention = torch.cat([attention, (~was_done).long()[:, None]], dim=1)
        positions = positions[:, -1:] + 1
        logits, cache = model(
            token[:, None], attention, position_ids=positions, past_key_values=cache
        )
    sampled = torch.stack(out, dim=1).tolist()  # (B, new)
    replies = []
    for row in sampled:
        reply: list[int] = []
        for t in row:
            reply.append(t)
            if t in stop_ids:
                break
        replies.append(reply)
    return replies


@dataclass
class _Live:
    env: gym.Env
    episode: Episode
    text: str  # the chat so far as text, ending with the generation prompt


def play_episodes(
    model: torch.nn.Module,
    tokenizer: Any,
    envs: Sequence[gym.Env],
    seeds: Sequence[int],
    settings: RolloutSettings,
    *,
    stop_ids: Sequence[int],
    generator: torch.Generator,
    device: torch.device | str = "cpu",
    reward_fn: RewardFn | None = None,
) -> list[Episode]:
    """Play one episode per seed, ``len(envs)`` at a time, with one batched generation per turn
    for every unfinished episode. Episodes come back in the order of ``seeds``."""
    pad_id = tokenizer.pad_token_id
    finished: list[Episode] = []
    for start in range(0, len(seeds), len(envs)):
        live: list[_Live] = []
        for env, seed in zip(envs, seeds[start : start + len(envs)], strict=False):
            obs, info = env.reset(seed=seed)
            text = render(tokenizer, observation_to_messages(obs))
            tokens = encode(tokenizer, text)
            if len(tokens) + settings.max_new_tokens > settings.max_episode_tokens:
                raise ValueError(
                    f"task {info['task_id']}: the prompt alone has {len(tokens)} tokens, too many "
                    f"for max_episode_tokens={settings.max_episode_tokens} with max_new_tokens="
                    f"{settings.max_new_tokens}; raise max_episode_tokens"
                )
            episode = Episode(seed, info["task_id"], [], [], [])
            episode.extend(tokens, policy=False)
            live.append(_Live(env, episode, text))
        while live:
            replies = sample_tokens(
                model,
                [s.episode.tokens for s in live],
                max_new_tokens=settings.max_new_tokens,
                temperature=settings.temperature,
                stop_ids=stop_ids,
                pad_id=pad_id,
                generator=generator,
                device=device,
            )
            still: list[_Live] = []
            for s, reply in zip(live, replies, strict=True):
                if _step(s, reply, tokenizer, settings, stop_ids, reward_fn):
                    still.append(s)
                else:
                    finished.append(s.episode)
            live = still
    return finished


def _step(
    s: _Live,
    reply: list[int],
    tokenizer: Any,
    settings: RolloutSettings,
    stop_ids: Sequence[int],
    reward_fn: RewardFn | None,
) -> bool:
    """Apply one sampled reply to a live episode; False when the episode has ended."""
    episode = s.episode
    episode.extend(reply, policy=True)
    ended_turn = reply[-1] in stop_ids
    content = reply[:-1] if ended_turn else reply
    text = tokenizer.decode(content, skip_special_tokens=True)
    episode.replies.append(text)
    obs, reward, terminated, truncated, info = s.env.step(parse_reply(text))
    reward = float(reward if reward_fn is None else reward_fn(text, float(reward), info))
    episode.rewards[-1] += reward
    episode.env_return += reward
    if terminated or truncated:
        return _finish(episode, info, "stop" if terminated else "budget")

    # The chat of the next turn, as the benchmark agent renders it from the observation.
    next_text = render(tokenizer, observation_to_messages(obs))
    question = info["dialogue"][-2]["content"]  # the question as the env recorded it
    delta = next_text[len(s.text) :]
    if not next_text.startswith(s.text) or not delta.startswith(question):
        raise RuntimeError(
            "the chat template re-renders earlier turns, so an episode cannot be tokenized "
            "incrementally; use a template whose output only grows turn by turn (ChatML)"
        )
    tail = delta[len(question) :]  # end of the assistant turn, the user's answer, next prompt
    canonical = content == encode(tokenizer, question)
    end_text = tokenizer.decode(reply[-1:]) if ended_turn else ""
    if ended_turn and tail.startswith(end_text):
        tail = tail[len(end_text) :]
    elif ended_turn:
        canonical = False  # the policy ended its turn with a token the template does not use
    episode.noncanonical_turns += not canonical
    context = encode(tokenizer, tail)
    if len(episode.tokens) + len(context) + settings.max_new_tokens > settings.max_episode_tokens:
        _, reward, _, _, info = s.env.step("STOP")  # no room for another question
        episode.rewards[-1] += float(reward)  # the reply's last token: the last policy token
        episode.env_return += float(reward)
        return _finish(episode, info, "tokens")
    episode.extend(context, policy=False)
    s.text = next_text
    return True


def _finish(episode: Episode, info: dict[str, Any], how: str) -> bool:
    episode.ended_by = how
    episode.metrics = {k: float(info[k]) for k in EPISODE_METRICS if k in info}
    return False
