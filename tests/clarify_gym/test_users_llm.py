"""The LLM user oracle (user="llm") against the fake server."""

from __future__ import annotations

import json

import gymnasium as gym
import pytest
from helpers import last_turn

import clarify_gym as cg
from clarify_gym.dialogue import EpisodeState
from clarify_gym.errors import LLMError
from clarify_gym.llm import LLMClient
from clarify_gym.users import RetrievalUser, make_user
from clarify_gym.users.llm import ERROR_ANSWER, LLMUser, oracle_messages

pytest.importorskip("openai")

TASK = cg.mask(next(t for t in cg.load_tasks("sample") if t.id == "cg-software-02"))
QUESTION = "Which severity scale do you use, SEV1 to SEV4?"


def state() -> EpisodeState:
    return EpisodeState(task=TASK, max_questions=5)


def test_oracle_sees_the_numbered_document_and_answers_with_citations(fake_llm):
    user = make_user("llm", k=3)
    assert isinstance(user, LLMUser) and user.k == 3
    answer = user.answer(QUESTION, state())
    offline = RetrievalUser(k=3).answer(QUESTION, state())
    assert answer.kind == "answer" and answer.cited_ids == offline.cited_ids
    assert 2 in answer.cited_ids and "SEV1 to SEV4" in answer.text
    assert answer.usage["calls"] == 1 and answer.error is None
    prompt = oracle_messages(TASK, QUESTION, [], 3)[1]["content"]
    assert TASK.numbered_document() in prompt and "(procedure, hidden)" in prompt


def test_model_named_in_the_spec_is_used(fake_llm):
    user = make_user("llm:my-oracle", k=2)
    user.answer(QUESTION, state())
    assert user.client.model() == "my-oracle"


def test_unknown_ids_dropped_and_at_most_k_kept_by_user_and_env(fake_llm, monkeypatch):
    reply = {"answer": "Everything!", "cited": [999, -1, "2", 2, 5, 6, 7, 8, "x"]}
    monkeypatch.setattr(fake_llm.responder, "reply", lambda messages: ("user", json.dumps(reply)))
    answer = LLMUser(k=3).answer("Tell me everything.", state())
    assert answer.cited_ids == (2, 5, 6)
    env = gym.make("ProactiveGather-v0", tasks=[TASK.task], user="llm", answer_max_sentences=2)
    env.reset(seed=0)
    *_, info = env.step("Tell me everything.")
    assert last_turn(env).cited_ids == (2, 5) and info["user_error"] is None


def test_malformed_reply_repaired_once(fake_llm):
    fake_llm.inject("malformed_json", role="user")
    answer = LLMUser(k=3).answer(QUESTION, state())
    assert answer.kind == "answer" and 2 in answer.cited_ids
    assert answer.usage["calls"] == 2 and fake_llm.stats.by_role["user"] == 2


def test_unparseable_after_repair_is_an_error_turn_that_earns_nothing(fake_llm):
    env = gym.make("ProactiveGather-v0", tasks=[TASK.task], user="llm")
    env.reset(seed=0)
    fake_llm.inject("malformed_json", times=2, role="user")
    obs, reward, terminated, truncated, info = env.step(QUESTION)
    assert info["user_error"] and "repair" in info["user_error"]
    assert reward == 0.0 and last_turn(env).cited_ids == () and info["answer"] == ERROR_ANSWER
    assert info["questions_left"] == 4 and not (terminated or truncated)
    assert info["user_usage"]["calls"] == 2
    *_, info = env.step(QUESTION)  # the next turn works again
    assert info["user_error"] is None and 2 in last_turn(env).cited_ids


def test_endpoint_down_raises_a_typed_error_within_the_bound(fake_llm):
    client = LLMClient(role="user", max_retries=1, backoff_base=0.01, cache=False)
    env = gym.make("ProactiveGather-v0", tasks=[TASK.task], user=LLMUser(k=3, client=client))
    env.reset(seed=0)
    fake_llm.inject("server_error", times=5)
    with pytest.raises(LLMError, match="failed 2 times"):
        env.step(QUESTION)
    assert fake_llm.stats.requests == 2


def test_validation():
    with pytest.raises(ValueError, match=">= 1"):
        LLMUser(k=0, client=LLMClient(base_url="http://127.0.0.1:9/v1", model="m", cache=False))
    with pytest.raises(ValueError, match="unknown user"):
        make_user("llm-ish", k=3)
