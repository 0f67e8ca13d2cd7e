"""ChatAgent against the fake server, and parse_reply on what models really emit."""

from __future__ import annotations

import asyncio

import gymnasium as gym
import pytest
from clarify_agents.base import STOP
from clarify_agents.chat import ChatAgent, budget_spent, make_chat_agent
from clarify_agents.prompts import SYSTEM_PROMPT, parse_reply
from helpers import short_id

from clarify_gym.questions import TOP_GENERIC_QUESTIONS

pytest.importorskip("openai")


def play(env: gym.Env, agent: ChatAgent, seed: int) -> tuple[list[str], dict]:
    obs, info = env.reset(seed=seed)
    agent.reset(seed=seed)
    actions = []
    while True:
        action = agent.act(obs)
        actions.append(action)
        obs, _, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            return actions, info


@pytest.mark.parametrize("messy", [False, True], ids=short_id)
def test_chat_agent_plays_an_episode(fake_llm, messy):
    fake_llm.responder.messy_agent = messy
    agent = ChatAgent.from_spec("chat:fake-model")
    env = gym.make("ProactiveGather-v0", max_questions=4)
    actions, info = play(env, agent, seed=5)
    assert actions == list(TOP_GENERIC_QUESTIONS[:4]), "parsed from plain and messy replies alike"
    assert info["env/questions"] == 4 and info["env/new_info"] > 0
    assert agent.usage.calls == 4 and len(agent.replies) == 4
    assert fake_llm.stats.by_role == {"agent": 4}
    first = agent.messages(env.reset(seed=5)[0])
    assert first[0] == {"role": "system", "content": SYSTEM_PROMPT}
    assert "at most 4 questions" in first[1]["content"]


def test_agent_says_stop_when_the_model_does_and_against_the_llm_env(fake_llm):
    agent = make_chat_agent("fake-model", base_url=fake_llm.url)
    env = gym.make("ProactiveGather-LLM-v0", max_questions=12)
    actions, info = play(env, agent, seed=0)
    assert actions[-1] == STOP and len(actions) == len(TOP_GENERIC_QUESTIONS) + 1
    assert info["env/questions"] == len(TOP_GENERIC_QUESTIONS) and "outline" in info


def test_budget_spent_means_stop_without_a_request(fake_llm):
    agent = ChatAgent("fake-model")
    obs = "## Task\nWrite it.\n\n## Conversation\n(no questions yet)\n\n## Status\nQuestions asked: 5 of 5. No questions left."
    assert budget_spent(obs) and agent.act(obs) == STOP
    assert asyncio.run(agent.aact(obs)) == STOP
    assert fake_llm.stats.requests == 0


def test_async_and_batched_requests_run_concurrently(fake_llm):
    fake_llm.latency = 0.2
    env = gym.make("ProactiveGather-v0")
    observations = [env.reset(seed=s)[0] for s in range(8)]
    agent = ChatAgent("fake-model", cache=False)
    batch = agent.act_batch(observations)
    # Concurrency is read off the server (requests in flight at once), not off a wall clock.
    assert fake_llm.stats.max_in_flight >= 4 and batch == [TOP_GENERIC_QUESTIONS[0]] * 8

    async def all_at_once():
        clones = [agent.clone() for _ in observations]
        return await asyncio.gather(*(c.aact(o) for c, o in zip(clones, observations, strict=True)))

    fake_llm.reset_stats()
    assert asyncio.run(all_at_once()) == batch
    assert fake_llm.stats.max_in_flight >= 4 and fake_llm.stats.requests == 8


def test_seed_is_sent_only_when_sampling(fake_llm):
    env = gym.make("ProactiveGather-v0")
    obs = env.reset(seed=0)[0]
    greedy = ChatAgent("fake-model")
    for seed in (1, 2):
        greedy.reset(seed=seed)
        greedy.act(obs)
    assert fake_llm.stats.requests == 1, "temperature 0: one request, then the cache"
    sampling = ChatAgent("fake-model", temperature=0.8)
    for seed in (1, 2, 1):
        sampling.reset(seed=seed)
        sampling.act(obs)
    assert fake_llm.stats.requests == 3, "each seed its own request; the same seed replays"


def test_from_spec_forms():
    ollama = ChatAgent.from_spec("chat:llama3.1:8b@http://localhost:11434/v1", cache=False)
    assert (ollama.client.config.model, ollama.client.config.base_url) == (
        "llama3.1:8b",
        "http://localhost:11434/v1",
    )
    vllm = ChatAgent.from_spec(
        "chat:Qwen/Qwen2.5-7B-Instruct", base_url="http://localhost:8000/v1", cache=False
    )
    assert vllm.name == "chat:Qwen/Qwen2.5-7B-Instruct"
    assert vllm.clone().client is vllm.client
    with pytest.raises(ValueError, match="starts with 'chat:'"):
        ChatAgent.from_spec("gpt-4o")


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("Question: What sections do you need?", "What sections do you need?"),
        (
            "**Question 2:** Which method should I use? Also, anything else?",
            "Which method should I use?",
        ),
        ("1. Who is the audience?\n2. How long should it be?", "Who is the audience?"),
        ("- Who is the audience?", "Who is the audience?"),
        ("Sure! Here's my question: What is the audience?", "What is the audience?"),
        ("Thanks, that helps.\n\nWho will read the report?", "Who will read the report?"),
        ("<think>They want sections.</think>\nQuestion: Which sections?", "Which sections?"),
        ("<THINKING>\nlong\n</THINKING> What format?", "What format?"),
        ("The person left out the audience.</think>\n\nWho reads it?", "Who reads it?"),
        ("<think>cut off by max_tokens before any question", STOP),
        ("", STOP),
        ("   \n ", STOP),
        ("STOP", STOP),
        ("[STOP]", STOP),
        ("I have what I need. STOP.", STOP),
        ("I have enough information to start writing.", STOP),
        ('"What tone should I use?"', "What tone should I use?"),
        ("Q1: What is the deadline?", "What is the deadline?"),
        (
            "What format should it be in (e.g., PDF, Word)?",
            "What format should it be in (e.g., PDF, Word)?",
        ),
        (
            "What question types: multiple choice or open?",
            "What question types: multiple choice or open?",
        ),
    ],
    ids=short_id,
)
def test_parse_reply_on_what_models_emit(reply, expected):
    assert parse_reply(reply) == expected


def test_parse_reply_caps_length():
    assert len(parse_reply("Why " * 400 + "?", max_chars=120)) == 120
