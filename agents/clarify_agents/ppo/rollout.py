"""Whole multi-turn episodes as one token sequence each, with a mask of the policy's tokens.

An episode is the chat the benchmark agent sees (:mod:`clarify_agents.prompts`): the system prompt, the
visible task as the first user message, then ``[assistant question, user answer]*``, rendered
with the tokenizer's chat template. Turn by turn:

1. the policy samples a reply after the generation prompt (``<|im_start|>assistant\\n``), up to
   and including its end-of-turn token: these are the **policy tokens**;
2. the reply is parsed (:func:`clarify_agents.prompts.parse_reply`) into a question or STOP and the env
   steps; the step's reward lands on the reply's last token;
3. the rest of the chat template up to the next generation prompt (end of turn, the user's
   answer) is appended as **context tokens**, rendered from the env's next observation exactly
   as :func:`clarify_agents.prompts.observation_to_messages` does at benchmark time.

The incremental sequence equals the tokenization of the whole chat whenever the reply is the
canonical tokenization of the question the env received (tests check this on the tiny and the
real Qwen2.5 tokenizers); turns where it is not (extra text around a question, an unusual token
split) are counted in ``Episode.noncanonical_turns``.

``RolloutSettings.reply_prefix`` (a prefill such as ``"Question: What"``, empty by default)
ends every generation prompt as context tokens; the env receives prefix + sampled text.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import torch

from clarify_agents.decoding import NoRepeatNgram
from clarify_agents.ppo.config import RolloutSettings
from clarify_agents.prompts import observation_to_messages, parse_reply
from clarify_gym.env import EPISODE_METRICS

__all__ = [
    "Episode",
    "KVCache",
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
    sample_logprobs: list[float] = field(default_factory=list)
    """Per token: the sampler's log-probability of a policy token (NaN elsewhere, or unknown)."""
    final: dict[str, Any] = field(default_factory=dict)
    """The env's last info: the dialogue, cited ids, outline and checklist (for sample logs)."""

    def extend(self, tokens: Sequence[int], *, policy: bool) -> None:
        """Append tokens (policy-written or context)."""
        self.tokens.extend(tokens)
        self.policy_mask.extend([policy] * len(tokens))
        self.rewards.extend([0.0] * len(tokens))
        self.sample_logprobs.extend([math.nan] * len(tokens))


def render(tokenizer: Any, messages: list[dict[str, str]]) -> str:
    """The chat as text, ending with the generation prompt of the assistant's next turn."""
    return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


def encode(tokenizer: Any, text: str) -> list[int]:
    """Token ids of ``text`` (special tokens written in the text are recognised; no BOS added)."""
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


@dataclass
class KVCache:
    """A wave's KV cache, kept across turns (the chat so far is never prefilled twice).

    Row i holds the first ``fed[i]`` tokens of episode i's sequence; ``attention`` (B, L) is 1 at
    the cached positions that are real tokens and 0 at padding (each turn's new tokens are left
    padded to a common width, so padding also sits between turns). ``select`` drops the rows of
    finished episodes.
    """

    past: Any = None
    attention: torch.Tensor | None = None
    fed: list[int] = field(default_factory=list)

    def select(self, rows: Sequence[int]) -> None:
        """Keep only ``rows`` (in that order)."""
        if self.past is None or self.attention is None:
            return
        index = torch.tensor(list(rows), dtype=torch.long, device=self.attention.device)
        self.past.batch_select_indices(index)
        self.attention = self.attention[index]
        self.fed = [self.fed[i] for i in rows]


def _left_padded(
    chunks: Sequence[Sequence[int]], starts: Sequence[int], pad_id: int, device: Any
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(ids, attention, positions)``, each (B, W): the chunks right-aligned, row i's real
    tokens at positions ``starts[i], starts[i] + 1, ...``."""
    batch, width = len(chunks), max(len(c) for c in chunks)
    ids = torch.full((batch, width), pad_id, dtype=torch.long)
    attention = torch.zeros((batch, width), dtype=torch.long)
    for i, chunk in enumerate(chunks):
        if chunk:
            ids[i, width - len(chunk) :] = torch.tensor(list(chunk))
            attention[i, width - len(chunk) :] = 1
    starts_t = torch.tensor(list(starts), dtype=torch.long)[:, None]
    positions = (starts_t + attention.cumsum(-1) - 1).clamp(min=0)
    return ids.to(device), attention.to(device), positions.to(device)


@torch.no_grad()
def sample_tokens(
    model: torch.nn.Module,
    prompts: Sequence[Sequence[int]],
    *,
    max_new_tokens: int,
    temperature: float,
    stop_ids: Sequence[int],
    pad_id: int,
    generator: torch.Generator | None,
    device: torch.device | str = "cpu",
    cache: KVCache | None = None,
    logprobs: list[list[float]] | None = None,
    no_repeat: Sequence[NoRepeatNgram] | None = None,
) -> list[list[int]]:
    """Sample one reply per prompt from ``softmax(logits / temperature)`` (no top-k/top-p, so
    PPO's log-probabilities are those of the sampling distribution; ``temperature=0`` is greedy
    decoding), with a KV cache and left padding. ``model(ids, mask, position_ids=...,
    past_key_values=...)`` is a :class:`~clarify_agents.ppo.model.PolicyValueModel` generation step. A
    reply ends with its stop token, or after ``max_new_tokens``.

    With ``cache`` (a :class:`KVCache` from the previous turn of the same episodes) only the
    tokens of each prompt that are not cached yet are fed; the cache is updated in place.
    ``logprobs``, if given, is filled with each sampled token's log-probability under the
    sampling distribution (float32 log-softmax). Stop checks read the device every token on a
    CPU (no transfer there) and every 8 tokens elsewhere, so a GPU never waits on the host per
    token. ``no_repeat`` (one :class:`~clarify_agents.decoding.NoRepeatNgram` per prompt, evaluation only) masks the
    tokens each rule bans before sampling, reading the sampled tokens every step.
    """
    device = torch.device(device)
    cache = cache if cache is not None else KVCache()
    if cache.past is not None and any(len(p) <= f for p, f in zip(prompts, cache.fed, strict=True)):
        cache.past = None  # a row has nothing new to feed: no logits to start from, prefill again
    if cache.past is None:
        cache.fed = [0] * len(prompts)
        cache.attention = None
    chunks = [list(p[f:]) for p, f in zip(prompts, cache.fed, strict=True)]
    ids, attention, positions = _left_padded(chunks, cache.fed, pad_id, device)
    if cache.attention is not None:
        attention = torch.cat([cache.attention, attention], dim=1)
    logits, past = model(ids, attention, position_ids=positions, past_key_values=cache.past)
    batch = len(prompts)
    positions = positions[:, -1:]
    stops = torch.tensor(list(stop_ids), dtype=torch.long, device=device)
    done = torch.zeros(batch, dtype=torch.bool, device=device)
    check_every = 1 if device.type == "cpu" else 8
    out: list[torch.Tensor] = []
    out_logp: list[torch.Tensor] = []
    feeds = 0
    stop_set = set(stop_ids)
    written: list[list[int]] = [list(p[len(p) - no_repeat[0].n + 1 :]) if no_repeat and
                                no_repeat[0].n > 1 else [] for p in prompts]  # fmt: skip
    for step in range(max_new_tokens):
        if no_repeat is not None:
            logits = logits.clone()
            for i, rule in enumerate(no_repeat):
                ban = sorted(rule.banned(written[i]) - stop_set)
                if ban:
                    logits[i, ban] = float("-inf")
        logp_all = torch.log_softmax(logits.float() / max(temperature, 1e-6), dim=-1)  # (B, V)
        if temperature == 0:
            token = logp_all.argmax(-1)
        else:
            token = torch.multinomial(logp_all.exp(), 1, generator=generator).squeeze(-1)  # (B,)
        token = torch.where(done, torch.full_like(token, pad_id), token)
        out.append(token)
        if no_repeat is not None:
            for i, t in enumerate(token.tolist()):
                if not bool(done[i]):
                    written[i].append(t)
                    no_repeat[i].add(written[i][-no_repeat[i].n :])
        out_logp.append(logp_all.gather(-1, token[:, None]).squeeze(-1))
        was_done = done
        done = done | torch.isin(token, stops)
        if step == max_new_tokens - 1 or (step % check_every == check_every - 1 and done.all()):
            break
        attention = torch.cat([attention, (~was_done).long()[:, None]], dim=1)
        positions = positions + 1
        logits, past = model(
            token[:, None], attention, position_ids=positions, past_key_values=past
        )
        feeds += 1
    sampled = torch.stack(out, dim=1).tolist()  # (B, new)
    sampled_logp = torch.stack(out_logp, dim=1).tolist()
    replies = []
    for i, row in enumerate(sampled):
        reply: list[int] = []
        for t in row:
            reply.append(t)
            if t in stop_ids:
                break
        replies.append(reply)
        if logprobs is not None:
            logprobs.append(sampled_logp[i][: len(reply)])
        cache.fed[i] = len(prompts[i]) + min(len(reply), feeds)
    cache.past, cache.attention = past, attention
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
    generator: torch.Generator | None,
    device: torch.device | str = "cpu",
    reward_fn: RewardFn | None = None,
    greedy: bool = False,
    reuse_cache: bool = True,
    task_ids: Sequence[str] | None = None,
    no_repeat_ngram: int = 0,
) -> list[Episode]:
    """Play one episode per seed, ``len(envs)`` at a time (a wave), with one batched generation
    per turn for every unfinished episode of the wave; the envs of a turn step concurrently (in
    threads, so an LLM user's requests overlap). The wave's KV cache is kept across turns
    (``reuse_cache=False`` prefills the whole chat every turn instead). ``greedy`` decodes with
    argmax (evaluation). ``task_ids`` (one per seed) picks each episode's task instead of the
    env's seeded draw. ``no_repeat_ngram`` n > 0 decodes under :class:`~clarify_agents.decoding.NoRepeatNgram` (n):
    the agent repeats no n-gram of its own replies (evaluation only; the recorded
    ``sample_logprobs`` are then those of the masked distribution). Episodes come back in the
    order of ``seeds``."""
    from concurrent.futures import ThreadPoolExecutor

    if task_ids is not None and len(task_ids) != len(seeds):
        raise ValueError(f"{len(task_ids)} task_ids for {len(seeds)} seeds: give one per seed")
    pad_id = tokenizer.pad_token_id
    finished: dict[int, Episode] = {}
    with ThreadPoolExecutor(max_workers=max(1, min(len(envs), 32))) as pool:
        for start in range(0, len(seeds), len(envs)):
            live: list[_Live] = []
            wave = list(seeds[start : start + len(envs)])
            tasks = task_ids[start : start + len(wave)] if task_ids else [None] * len(wave)
            for env, seed, task in zip(envs, wave, tasks, strict=False):
                live.append(_reset(env, seed, task, tokenizer, settings))
            index = {id(s): start + k for k, s in enumerate(live)}
            cache = KVCache()
            while live:
                sampled_logp: list[list[float]] = []
                replies = sample_tokens(
                    model,
                    [s.episode.tokens for s in live],
                    max_new_tokens=settings.max_new_tokens,
                    temperature=0.0 if greedy else settings.temperature,
                    stop_ids=stop_ids,
                    pad_id=pad_id,
                    generator=generator,
                    device=device,
                    cache=cache if reuse_cache else None,
                    logprobs=sampled_logp,
                    no_repeat=[
                        NoRepeatNgram.of_episode(
                            no_repeat_ngram, s.episode.tokens, s.episode.policy_mask
                        )
                        for s in live
                    ]
                    if no_repeat_ngram > 0
                    else None,
                )
                texts = [
                    _take_reply(s, r, tokenizer, stop_ids, settings.reply_prefix)
                    for s, r in zip(live, replies, strict=True)
                ]
                for s, reply, logp in zip(live, replies, sampled_logp, strict=False):
                    s.episode.sample_logprobs[-len(reply) :] = logp
                steps = list(pool.map(_env_step, [s.env for s in live], texts))
                keep: list[int] = []
                for k, (s, reply, text, result) in enumerate(
                    zip(live, replies, texts, steps, strict=True)
                ):
                    if _after_step(
                        s, reply, text, result, tokenizer, settings, stop_ids, reward_fn
                    ):
                        keep.append(k)
                    else:
                        finished[index[id(s)]] = s.episode
                live = [live[k] for k in keep]
                cache.select(keep)
    return [finished[i] for i in sorted(finished)]


def _env_step(env: gym.Env, text: str) -> tuple[Any, ...]:
    return env.step(parse_reply(text))


def _reset(
    env: gym.Env, seed: int, task_id: str | None, tokenizer: Any, settings: RolloutSettings
) -> _Live:
    obs, info = env.reset(seed=seed, options={"task_id": task_id} if task_id else None)
    text = render(tokenizer, observation_to_messages(obs)) + settings.reply_prefix
    tokens = encode(tokenizer, text)
    if len(tokens) + settings.max_new_tokens > settings.max_episode_tokens:
        raise ValueError(
            f"task {info['task_id']}: the prompt alone has {len(tokens)} tokens, too many "
            f"for max_episode_tokens={settings.max_episode_tokens} with max_new_tokens="
            f"{settings.max_new_tokens}; raise max_episode_tokens"
        )
    episode = Episode(seed, info["task_id"], [], [], [])
    episode.extend(tokens, policy=False)
    return _Live(env, episode, text)


def _take_reply(
    s: _Live, reply: list[int], tokenizer: Any, stop_ids: Sequence[int], prefix: str = ""
) -> str:
    """Append a sampled reply to the episode; its text (after the reply prefix, which the
    prompt already holds) without the end-of-turn token."""
    s.episode.extend(reply, policy=True)
    content = reply[:-1] if reply and reply[-1] in stop_ids else reply
    text = prefix + tokenizer.decode(content, skip_special_tokens=True)
    s.episode.replies.append(text)
    return text


def _after_step(
    s: _Live,
    reply: list[int],
    text: str,
    result: tuple[Any, ...],
    tokenizer: Any,
    settings: RolloutSettings,
    stop_ids: Sequence[int],
    reward_fn: RewardFn | None,
) -> bool:
    """Book the env's step for one reply; False when the episode has ended."""
    episode = s.episode
    obs, reward, terminated, truncated, info = result
    reward = float(reward if reward_fn is None else reward_fn(text, float(reward), info))
    episode.rewards[-1] += reward
    episode.env_return += reward
    if terminated or truncated:
        return _finish(episode, info, "stop" if terminated else "budget")

    # The chat of the next turn, as the benchmark agent renders it from the observation.
    ended_turn = reply[-1] in stop_ids
    content = reply[:-1] if ended_turn else reply
    # The prompt ended with the reply prefix; the re-rendered chat holds the parsed question.
    prefix = settings.reply_prefix
    before = s.text[: len(s.text) - len(prefix)]
    next_text = render(tokenizer, observation_to_messages(obs)) + prefix
    question = info["dialogue"][-2]["content"]  # the question as the env recorded it
    delta = next_text[len(before) :]
    if not next_text.startswith(before) or not delta.startswith(question):
        raise RuntimeError(
            "the chat template re-renders earlier turns, so an episode cannot be tokenized "
            "incrementally; use a template whose output only grows turn by turn (ChatML)"
        )
    tail = delta[len(question) :]  # end of the assistant turn, the user's answer, next prompt
    canonical = (
        prefix + tokenizer.decode(content, skip_special_tokens=True) == question
        if prefix
        else content == encode(tokenizer, question)
    )
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
    episode.final = info
    return False
