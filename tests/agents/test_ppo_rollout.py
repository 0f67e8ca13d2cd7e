"""Multi-turn episodes as one token sequence: the same tokens as the whole chat, masks, rewards."""

from __future__ import annotations

import gymnasium as gym
import pytest
import torch
from clarify_agents.models import load_tokenizer, resolve_base
from clarify_agents.ppo import rollout
from clarify_agents.ppo.config import LoraSettings, ModelSettings, RolloutSettings
from clarify_agents.ppo.model import build_policy_value_model
from clarify_agents.ppo.rollout import encode, play_episodes, render, sample_tokens
from clarify_agents.prompts import observation_to_messages
from ppo_helpers import one_thread, short_tasks

import clarify_gym  # noqa: F401
from clarify_gym.dialogue import format_observation

QUESTIONS = [
    "Which sections must the output contain, and in what order?",
    "What steps should I follow to do this task?",
    "Who is the audience, and what tone should I use?",
]


@pytest.fixture(scope="module", params=["tiny", "qwen2.5-tokenizer"])
def tokenizer(request):
    return load_tokenizer(resolve_base(request.param))


def scripted(tokenizer, replies):
    """Stands in for sample_tokens: turn k gives every episode ``replies[k]`` (+ <|im_end|>)."""
    turns = iter(replies)
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")

    def fake(model, prompts, **kwargs):
        reply = next(turns)
        return [[*encode(tokenizer, reply), im_end] for _ in prompts]

    return fake


def play(
    tokenizer, monkeypatch, replies, *, seeds=(0, 1), settings=None, reward_fn=None, **env_kwargs
):
    monkeypatch.setattr(rollout, "sample_tokens", scripted(tokenizer, replies))
    envs = [gym.make("ProactiveGather-v0", **env_kwargs) for _ in seeds]
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    settings = settings or RolloutSettings(max_new_tokens=64, max_episode_tokens=4096)
    episodes = play_episodes(
        None,
        tokenizer,
        envs,
        list(seeds),
        settings,
        stop_ids=[im_end],
        generator=None,
        reward_fn=reward_fn,
    )
    return episodes, envs


def test_incremental_tokens_equal_the_whole_chat(tokenizer, monkeypatch):
    episodes, envs = play(tokenizer, monkeypatch, QUESTIONS, max_questions=3)
    for episode, env in zip(episodes, envs, strict=True):
        state = env.unwrapped.state
        messages = observation_to_messages(format_observation(state))
        assert [m["role"] for m in messages] == ["system", "user"] + ["assistant", "user"] * 3
        whole = encode(tokenizer, tokenizer.apply_chat_template(messages[:-1], tokenize=False))
        # The episode stops after the last question: the whole chat only adds the final newline.
        assert whole[: len(episode.tokens)] == episode.tokens
        assert tokenizer.decode(whole[len(episode.tokens) :]) == "\n"
        first_prompt = tokenizer.apply_chat_template(messages[:2], add_generation_prompt=True)
        assert episode.tokens[: len(first_prompt["input_ids"])] == first_prompt["input_ids"]
        assert episode.noncanonical_turns == 0 and episode.ended_by == "budget"
        assert len(episode.replies) == 3 and episode.task_id == state.task.task.id


def test_policy_mask_marks_exactly_the_questions_and_rewards_sit_on_their_last_token(
    tokenizer, monkeypatch
):
    episodes, envs = play(tokenizer, monkeypatch, QUESTIONS, max_questions=3)
    episode, state = episodes[0], envs[0].unwrapped.state
    policy = [t for t, m in zip(episode.tokens, episode.policy_mask, strict=True) if m]
    assert tokenizer.decode(policy) == "".join(q + "<|im_end|>" for q in QUESTIONS)
    mask = episode.policy_mask
    ends = [i for i, m in enumerate(mask) if m and (i + 1 == len(mask) or not mask[i + 1])]
    assert len(ends) == 3
    assert [episode.rewards[i] for i in ends] == pytest.approx([t.reward for t in state.turns])
    off = [r for r, m in zip(episode.rewards, episode.policy_mask, strict=True) if not m]
    assert all(r == 0 for r in off)
    assert episode.env_return == pytest.approx(sum(t.reward for t in state.turns))
    assert episode.metrics["env/questions"] == 3


def test_chatter_around_a_question_is_kept_as_sampled_and_counted(monkeypatch):
    tokenizer = load_tokenizer(resolve_base("tiny"))
    replies = ["Thanks. Which sections must the output contain? Also, who reads it?", "STOP"]
    episodes, envs = play(tokenizer, monkeypatch, replies, seeds=(3,), max_questions=3)
    episode = episodes[0]
    assert envs[0].unwrapped.state.turns[0].question == "Which sections must the output contain?"
    assert episode.noncanonical_turns == 1 and episode.ended_by == "stop"
    policy = [t for t, m in zip(episode.tokens, episode.policy_mask, strict=True) if m]
    assert tokenizer.decode(policy) == replies[0] + "<|im_end|>STOP<|im_end|>"


def test_reward_fn_replaces_the_env_reward(monkeypatch):
    tokenizer = load_tokenizer(resolve_base("tiny"))
    seen = []

    def reward_fn(text, env_reward, info):
        seen.append((text, env_reward))
        return 10.0 if "tone" in text else -1.0

    episodes, _ = play(
        tokenizer, monkeypatch, QUESTIONS, seeds=(0,), reward_fn=reward_fn, max_questions=3
    )
    assert [text for text, _ in seen] == QUESTIONS
    assert episodes[0].env_return == pytest.approx(8.0)
    assert sorted(r for r in episodes[0].rewards if r) == [-1.0, -1.0, 10.0]


def test_episode_stops_before_the_token_limit_and_pays_the_final_reward(monkeypatch, tmp_path):
    tokenizer = load_tokenizer(resolve_base("tiny"))
    tasks = short_tasks(tmp_path)
    env = gym.make("ProactiveGather-v0", tasks=str(tasks), max_questions=5, checklist_weight=1.0)
    obs, _ = env.reset(seed=0)
    prompt = len(encode(tokenizer, render(tokenizer, observation_to_messages(obs))))
    settings = RolloutSettings(max_new_tokens=16, max_episode_tokens=prompt + 40)
    episodes, envs = play(
        tokenizer, monkeypatch, QUESTIONS, seeds=(0,), settings=settings,
        tasks=str(tasks), max_questions=5, checklist_weight=1.0,
    )  # fmt: skip
    episode = episodes[0]
    assert episode.ended_by == "tokens" and len(episode.replies) == 1
    assert len(episode.tokens) <= settings.max_episode_tokens
    assert episode.policy_mask[-1]  # no context after the last policy token
    checklist = episode.metrics["eval/checklist_score"]
    turn_reward = envs[0].unwrapped.state.turns[0].reward
    assert episode.rewards[-1] == pytest.approx(turn_reward + checklist)


def test_prompt_longer_than_the_limit_is_a_clear_error(monkeypatch):
    tokenizer = load_tokenizer(resolve_base("tiny"))
    with pytest.raises(ValueError, match="raise max_episode_tokens"):
        play(tokenizer, monkeypatch, QUESTIONS, seeds=(0,),
             settings=RolloutSettings(max_new_tokens=8, max_episode_tokens=64))  # fmt: skip


@pytest.fixture(scope="module")
def tiny_model():
    model, tokenizer, _ = build_policy_value_model(
        ModelSettings("tiny", None, "float32", False), LoraSettings(lora_r=4)
    )
    return model.eval(), tokenizer


def test_cached_sampling_matches_full_forward_decoding(tiny_model):
    model, tokenizer = tiny_model
    prompts = [
        encode(tokenizer, t) for t in ("Which sections", "What steps should I follow to do", "Who")
    ]
    with one_thread():
        greedy = sample_tokens(
            model, prompts, max_new_tokens=6, temperature=1e-4, stop_ids=[], pad_id=0,
            generator=torch.Generator().manual_seed(0),
        )  # fmt: skip
        for prompt, reply in zip(prompts, greedy, strict=True):
            ids = list(prompt)
            for _ in range(6):  # greedy decoding without a cache, one prompt at a time
                logits = model.causal_lm(input_ids=torch.tensor([ids])).logits[0, -1]
                ids.append(int(logits.argmax()))
            assert reply == ids[len(prompt) :]


def test_sampling_is_reproducible_and_stops_at_the_stop_token(tiny_model):
    model, tokenizer = tiny_model
    prompts = [encode(tokenizer, "Which sections must the output contain?")] * 6

    def draw(seed, stop_ids):
        with one_thread():
            return sample_tokens(
                model, prompts, max_new_tokens=12, temperature=1.0, stop_ids=stop_ids,
                pad_id=tokenizer.pad_token_id, generator=torch.Generator().manual_seed(seed),
            )  # fmt: skip

    first, again, other = draw(0, []), draw(0, []), draw(1, [])
    assert first == again and first != other
    stop = first[0][3]  # make the fourth token of the first reply a stop token
    stopped = draw(0, [stop])
    for full, reply in zip(first, stopped, strict=True):
        assert reply == (full[: full.index(stop) + 1] if stop in full else full)


def test_reply_prefix_ends_each_prompt_as_context_and_starts_each_question(monkeypatch):
    tokenizer = load_tokenizer(resolve_base("tiny"))
    prefix = "Question: What"
    tails = [" sections must the output contain?", " steps should I follow?"]
    settings = RolloutSettings(max_new_tokens=64, max_episode_tokens=4096, reply_prefix=prefix)
    episodes, envs = play(tokenizer, monkeypatch, tails, seeds=(0,), settings=settings,
                          max_questions=2)  # fmt: skip
    episode, state = episodes[0], envs[0].unwrapped.state
    # parse_reply drops the "Question:" lead-in; the env gets the prefill's "What" + the sample
    assert [t.question for t in state.turns] == ["What" + t for t in tails]
    assert episode.replies == [prefix + t for t in tails]
    policy = [t for t, m in zip(episode.tokens, episode.policy_mask, strict=True) if m]
    assert tokenizer.decode(policy) == "".join(t + "<|im_end|>" for t in tails)
    # every generation prompt ends with the prefix, which is context, not a policy token
    context = tokenizer.decode(episode.tokens)
    assert context.count("<|im_start|>assistant\n" + prefix) == 2
    first = render(tokenizer, observation_to_messages(format_observation(state)))
    assert tokenizer.decode(episode.tokens).startswith(first.split("<|im_start|>assistant")[0])


def _reply_ngrams(episode, n, stop_ids):
    """The n-grams of each reply, counted with the n - 1 prompt tokens before it, that do not
    end in a stop token (the rule never bans one)."""
    grams, start = [], None
    for i, policy in enumerate([*episode.policy_mask, False]):
        if policy and start is None:
            start = i
        elif not policy and start is not None:
            segment = episode.tokens[start - n + 1 : i]
            grams += [tuple(segment[k : k + n]) for k in range(len(segment) - n + 1)]
            start = None
    return [g for g in grams if g[-1] not in stop_ids]


class _Repeater(torch.nn.Module):
    """A generation step that ignores its input: it always prefers the lowest token id from 300
    on, so greedy decoding writes 300 300 300 ... in every reply."""

    def __init__(self, vocab):
        super().__init__()
        ids = torch.arange(vocab, dtype=torch.float32)
        self.register_buffer("scores", torch.where(ids >= 300, -ids, torch.tensor(-1e9)))

    def forward(self, ids, attention, position_ids=None, past_key_values=None):
        return self.scores.expand(ids.shape[0], -1).clone(), None


@pytest.mark.parametrize("n", [1, 2, 3])
def test_no_repeat_ngram_decoding_never_repeats_the_agents_own_ngrams(n):
    tokenizer = load_tokenizer(resolve_base("tiny"))
    model = _Repeater(len(tokenizer))
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    settings = RolloutSettings(max_new_tokens=6, max_episode_tokens=4096, reply_prefix="Q: What")

    def run(rule):
        envs = [gym.make("ProactiveGather-v0", max_questions=4) for _ in range(2)]
        return play_episodes(model, tokenizer, envs, [0, 1], settings, stop_ids=[im_end],
                             generator=None, greedy=True, no_repeat_ngram=rule)  # fmt: skip

    plain, ruled = run(0), run(n)
    assert all(len(set(e.replies)) == 1 for e in plain)  # plain greedy: one reply four times
    for episode in ruled:
        grams = _reply_ngrams(episode, n, [im_end])
        assert len(grams) == len(set(grams)) and len(grams) == 4 * 6
        assert len(set(episode.replies)) == 4
    # the rule masks the distribution it samples from: the chosen tokens' log-probs are finite
    assert all(p > float("-inf") for e in ruled for p, m in
               zip(e.sample_logprobs, e.policy_mask, strict=True) if m)  # fmt: skip


def test_no_repeat_rule_of_an_episode_reads_its_replies_with_their_context():
    from clarify_agents.decoding import NoRepeatNgram

    tokens = [9, 5, 1, 2, 7, 5, 3, 8]
    mask = [False, False, True, True, False, False, True, False]
    rule = NoRepeatNgram.of_episode(2, tokens, mask)
    assert rule.banned([5]) == {1, 3} and rule.banned([1]) == {2} and rule.banned([7]) == set()
    assert rule.banned([9]) == set()  # (9, 5) is context only
    with pytest.raises(ValueError, match="must be >= 1"):
        NoRepeatNgram(0)
