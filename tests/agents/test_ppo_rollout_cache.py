"""Rollout speed paths: the KV cache kept across turns decodes exactly what a full re-prefill does."""

from __future__ import annotations

import math

import gymnasium as gym
import pytest
import torch
from clarify_agents.models import stop_token_ids
from clarify_agents.ppo.config import LoraSettings, ModelSettings, RolloutSettings
from clarify_agents.ppo.model import build_policy_value_model
from clarify_agents.ppo.rollout import play_episodes
from clarify_agents.ppo.trainer import Batch
from ppo_helpers import one_thread, short_tasks

import clarify_gym  # noqa: F401


@pytest.fixture(scope="module")
def tiny():
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model, tokenizer, _ = build_policy_value_model(
            ModelSettings("tiny", None, "float32", False), LoraSettings(lora_r=4)
        )
        for name, p in model.named_parameters():  # a non-identity adapter: the policy != base
            if "lora_B" in name:
                p.data.normal_(0, 0.05)
    return model.eval(), tokenizer


def _play(tiny, tmp_path, *, greedy, reuse_cache, seeds=(0, 1, 2, 3, 4)):
    model, tokenizer = tiny
    tasks = str(short_tasks(tmp_path))
    envs = [gym.make("ProactiveGather-v0", tasks=tasks, max_questions=3) for _ in range(3)]
    settings = RolloutSettings(max_new_tokens=12, max_episode_tokens=4096)
    with one_thread():
        return play_episodes(
            model, tokenizer, envs, list(seeds), settings,
            stop_ids=stop_token_ids(tokenizer, model.causal_lm),
            generator=torch.Generator().manual_seed(0), greedy=greedy, reuse_cache=reuse_cache,
        )  # fmt: skip


def test_kv_reuse_across_turns_gives_the_tokens_of_a_full_reprefill(tiny, tmp_path):
    cached = _play(tiny, tmp_path, greedy=True, reuse_cache=True)
    full = _play(tiny, tmp_path, greedy=True, reuse_cache=False)
    assert [e.seed for e in cached] == [0, 1, 2, 3, 4]  # the order of the seeds
    assert max(len(e.replies) for e in cached) >= 2  # several turns, so the cache was reused
    for a, b in zip(cached, full, strict=True):
        assert a.tokens == b.tokens and a.policy_mask == b.policy_mask
        assert a.replies == b.replies and a.env_return == b.env_return


def test_sampler_log_probs_are_recorded_on_policy_tokens_and_match_the_scorer(tiny, tmp_path):
    model, tokenizer = tiny
    episodes = _play(tiny, tmp_path, greedy=False, reuse_cache=True)
    for e in episodes:
        assert len(e.sample_logprobs) == len(e.tokens)
        for logp, m in zip(e.sample_logprobs, e.policy_mask, strict=True):
            assert math.isfinite(logp) == m and (not m or logp <= 0)
    batch = Batch.collate(episodes, tokenizer.pad_token_id, torch.device("cpu"))
    with torch.no_grad(), one_thread():
        scored, _, _ = model(batch.input_ids, batch.attention_mask, batch.policy_mask)
    gap = (scored - batch.sample_logprobs).abs()[batch.policy_mask]
    assert gap.max() < 1e-3  # float32: the cached sampler and the scorer agree
