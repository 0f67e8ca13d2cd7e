"""Structured outputs, reply lengths, the retry protocol, served models, model listing and the
key rule, against the fake OpenAI-compatible server."""

from __future__ import annotations

import logging
import socket

import gymnasium as gym
import pytest

from clarify_gym.errors import LLMError
from clarify_gym.llm import LLMClient, LLMConfig
from clarify_gym.llm import client as client_module
from clarify_gym.llm.reply import ECHO_CHARS, LENGTH_PROMPT, Completion, Usage, json_exchange
from clarify_gym.llm.schemas import judge_max_tokens, verdict_schema
from clarify_gym.testing import FakeLLMServer
from clarify_gym.writing.llm import judge_messages

QUESTION = "What sections must the document have?"


def play_llm_env(questions: int = 1) -> dict:
    env = gym.make("ProactiveGather-LLM-v0", max_questions=questions)
    env.reset(seed=0)
    info = {}
    for _ in range(questions):
        info = env.step(QUESTION)[-1]
    return info


def requests_of(server: FakeLLMServer, system_start: str) -> list[dict]:
    return [r for r in server.requests if r["messages"][0]["content"].startswith(system_start)]


def test_oracle_and_judge_send_schemas_with_role_lengths(fake_llm):
    info = play_llm_env()
    assert info["user_error"] is None and info["judge_error"] is None
    oracle = requests_of(fake_llm, "You are the person")[-1]
    judge = requests_of(fake_llm, "You are a strict grader")[-1]
    writer = requests_of(fake_llm, "You write the outline")[-1]
    schema = oracle["response_format"]["json_schema"]
    assert oracle["response_format"]["type"] == "json_schema" and schema["strict"] is True
    assert schema["schema"]["properties"]["answer"]["maxLength"] == 400
    assert schema["schema"]["properties"]["cited"]["maxItems"] == 3
    assert oracle["max_tokens"] == 256
    met = judge["response_format"]["json_schema"]["schema"]["properties"]["met"]
    n = len(info["checklist_met"])
    assert met["minItems"] == met["maxItems"] == n and judge["max_tokens"] == judge_max_tokens(n)
    assert "response_format" not in writer and writer["max_tokens"] == 1500


def test_json_mode_and_max_tokens_from_env_and_per_role(fake_llm, monkeypatch):
    monkeypatch.setenv("CLARIFY_GYM_LLM_JSON", "object")
    monkeypatch.setenv("CLARIFY_GYM_JUDGE_JSON", "off")
    monkeypatch.setenv("CLARIFY_GYM_LLM_MAX_TOKENS", "300")
    monkeypatch.setenv("CLARIFY_GYM_USER_MAX_TOKENS", "120")
    play_llm_env()
    oracle = requests_of(fake_llm, "You are the person")[-1]
    judge = requests_of(fake_llm, "You are a strict grader")[-1]
    writer = requests_of(fake_llm, "You write the outline")[-1]
    assert oracle["response_format"] == {"type": "json_object"} and oracle["max_tokens"] == 120
    assert "response_format" not in judge and judge["max_tokens"] == 300
    assert writer["max_tokens"] == 300
    monkeypatch.setenv("CLARIFY_GYM_LLM_JSON", "grammar")
    with pytest.raises(ValueError, match="use schema, object or off"):
        LLMConfig().resolve("user")


def test_server_rejecting_response_format_falls_back_once_with_a_warning(caplog, tmp_path):
    with FakeLLMServer() as server:
        server.inject("reject_format", times=1)
        llm = LLMClient(base_url=server.url, model="fake-model", cache=tmp_path)
        caplog.set_level(logging.WARNING, logger="clarify_gym.llm.client")
        try:
            for outline in ("# A", "# B", "# C"):
                messages = judge_messages(["Has a title."], outline)
                got = llm.complete_json(messages, dict, schema=verdict_schema(1))
                assert got.retry is None and len(got.value["met"]) == 1
            warnings = [
                r for r in caplog.records if "does not support response_format" in r.message
            ]
            assert len(warnings) == 1 and server.stats.faults["reject_format"] == 1
            assert server.stats.formats == {"json_schema": 1, "none": 3}  # 400, then plain
            described = llm.describe()
            assert described["json_fallback"] is True and described["requests"]["fallbacks"] == 1
        finally:
            client_module._FORMAT_REJECTED.clear()


def test_context_overflow_400_leaves_structured_output_on(fake_llm):
    """A 400 for a prompt longer than the server's context is not the server refusing the
    schema: the request fails (a failed episode, retried by --resume), and once the server has
    room again every request still carries the schema (it used to be dropped for the whole
    process, and every oracle reply then ended as a user_error)."""
    fake_llm.requests.clear()
    fake_llm.inject("context_overflow", times=1, role="user")
    with pytest.raises(LLMError, match="exceeds the available context size"):
        play_llm_env()
    user = LLMClient(role="user")
    assert not user.describe(resolve=False)["json_fallback"]
    info = play_llm_env(questions=2)
    assert info["user_error"] is None and info["llm/user/fallbacks"] == 0
    assert info["llm/user/parsed_first_try"] == info["llm/user/json_replies"] == 2
    oracle = requests_of(fake_llm, "You are the person")
    assert len(oracle) == 3 and all(r["response_format"]["type"] == "json_schema" for r in oracle)
    assert fake_llm.stats.faults == {"context_overflow": 1}


def test_format_fallback_is_per_role(fake_llm, caplog):
    """A server refusing the judge's schema costs the judge its schema, not the user."""
    fake_llm.requests.clear()
    fake_llm.inject("reject_format", times=1, role="judge")
    caplog.set_level(logging.WARNING, logger="clarify_gym.llm.client")
    first = play_llm_env()
    second = play_llm_env()
    assert first["llm/judge/fallbacks"] == 1 and second["llm/judge/fallbacks"] == 0
    judge = requests_of(fake_llm, "You are a strict grader")
    assert [("response_format" in r) for r in judge] == [True, False]  # then from the cache
    oracle = requests_of(fake_llm, "You are the person")
    assert all(r["response_format"]["type"] == "json_schema" for r in oracle)
    assert sum("does not support response_format" in r.message for r in caplog.records) == 1
    assert LLMClient(role="judge").describe(resolve=False)["json_fallback"] is True
    assert LLMClient(role="user").describe(resolve=False)["json_fallback"] is False


def test_episode_info_counts_parses_repairs_retries_and_timeouts_per_role(fake_llm, monkeypatch):
    monkeypatch.setenv("CLARIFY_GYM_LLM_TIMEOUT", "0.5")
    fake_llm.inject("server_error", times=1, role="user")
    fake_llm.inject("malformed_json", times=1, role="user")
    fake_llm.inject("hang", times=1, seconds=2.0, role="writer")
    fake_llm.inject("cut_for_length", times=1, role="judge")
    info = play_llm_env(questions=2)
    got = {k: v for k, v in info.items() if k.startswith("llm/") and k.count("/") == 2}
    assert got == {
        **{f"llm/user/{k}": v for k, v in USER.items()},
        **{f"llm/writer/{k}": v for k, v in WRITER.items()},
        **{f"llm/judge/{k}": v for k, v in JUDGE.items()},
    }


_ZERO = dict.fromkeys(
    ("json_replies", "parsed_first_try", "repairs", "length_retries", "parse_failures",
     "retries", "timeouts", "fallbacks"), 0,
)  # fmt: skip
# two answers: the first hit a 500 (retried), then a malformed reply (repaired)
USER = {**_ZERO, "calls": 3, "json_replies": 2, "parsed_first_try": 1, "repairs": 1,
        "retries": 1, "served_model": "fake-model"}  # fmt: skip
WRITER = {**_ZERO, "calls": 1, "retries": 1, "timeouts": 1, "served_model": "fake-model"}
JUDGE = {**_ZERO, "calls": 2, "json_replies": 1, "length_retries": 1, "served_model": "fake-model"}


def drive(exchange, completions):
    """Run a json_exchange over scripted completions; returns (requests sent, result)."""
    sent = [next(exchange)]
    try:
        for completion in completions:
            sent.append(exchange.send(completion))
    except StopIteration as done:
        return sent, done.value
    raise AssertionError("the exchange asked for more requests than scripted")


def reply(text: str, finish: str = "stop") -> Completion:
    return Completion(text, Usage(10, 5, calls=1), "m", finish_reason=finish)


def test_repair_echoes_only_a_short_prefix_and_length_cut_retries_without_echo():
    messages = [{"role": "user", "content": "Give JSON"}]
    rambling = "Let me think about this. " * 200
    sent, result = drive(json_exchange(messages, dict, None), [reply(rambling), reply('{"a": 1}')])
    echo = sent[1][1]
    assert echo["role"] == "assistant" and len(echo["content"]) <= ECHO_CHARS + 4
    assert result.retry == "repair" and result.usage.calls == 2
    cut = '{"answer": "The steps are: first read the' + " very" * 100
    sent, result = drive(json_exchange(messages, dict, None), [reply(cut, "length"), reply("{}")])
    assert sent[1] == [*messages, {"role": "user", "content": LENGTH_PROMPT}]
    assert result.retry == "length" and result.value == {}


def test_cut_reply_from_the_server_is_retried_for_length(fake_llm):
    fake_llm.inject("cut_for_length", times=1, role="user")
    info = play_llm_env()
    assert info["user_error"] is None
    retry = requests_of(fake_llm, "You are the person")[-1]
    assert retry["messages"][-1]["content"] == LENGTH_PROMPT
    assert all(m["role"] != "assistant" for m in retry["messages"])


def test_served_model_is_recorded_and_a_mismatch_warns(caplog, tmp_path):
    with FakeLLMServer(served_model="smollm2-served") as server:
        llm = LLMClient(base_url=server.url, model="qwen-typo", cache=tmp_path)
        caplog.set_level(logging.WARNING, logger="clarify_gym.llm.client")
        first = llm.complete([{"role": "user", "content": "Hi"}])
        again = llm.complete([{"role": "user", "content": "Hi"}])
    assert first.served_model == "smollm2-served" and llm.served_model == "smollm2-served"
    assert again.cached and again.served_model == "smollm2-served"  # kept in the cache record
    assert sum("answered as model 'smollm2-served'" in r.message for r in caplog.records) == 1
    assert llm.describe()["served_model"] == "smollm2-served"


def test_model_listing_is_retried_and_errors_name_the_cause(tmp_path):
    with FakeLLMServer(model="the-one") as server:
        server.inject("server_error", times=2, role="models")
        llm = LLMClient(base_url=server.url, cache=False, backoff_base=0.01, max_retries=3)
        assert llm.model() == "the-one" and server.stats.faults["server_error"] == 2
        assert server.stats.requests == 0  # no chat request was needed
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        dead_url = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    down = LLMClient(base_url=dead_url, cache=False, backoff_base=0.01, max_retries=1)
    with pytest.raises(
        LLMError, match=r"listing the models of .* failed 2 times.*is a server running"
    ):
        down.model()
    with FakeLLMServer(api_key="sk-right-key-123456") as server:
        keyless = LLMClient(base_url=server.url, cache=False)
        with pytest.raises(LLMError, match=r"HTTP 401.*no key was sent") as info:
            keyless.model()
    assert "CLARIFY_GYM_LLM_MODEL" not in str(info.value)


def test_a_key_is_sent_only_to_the_url_it_is_set_for(monkeypatch, tmp_path):
    for name in (
        "CLARIFY_GYM_LLM_BASE_URL",
        "CLARIFY_GYM_LLM_API_KEY",
        "CLARIFY_GYM_USER_BASE_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    with FakeLLMServer() as server:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-secret-1")
        monkeypatch.setenv("OPENAI_BASE_URL", server.url)
        LLMClient(role="user", model="m", cache=False).complete([{"role": "user", "content": "Hi"}])
        assert "sk-openai-secret-1" not in server.stats.keys
        monkeypatch.setenv("CLARIFY_GYM_LLM_API_KEY", "sk-for-llm-url-2")
        monkeypatch.setenv("CLARIFY_GYM_USER_BASE_URL", "http://127.0.0.1:9/v1")  # its own URL
        user = LLMClient(role="user", model="m", cache=False)
        assert user.config.key_source is None  # the LLM-level key is for OPENAI_BASE_URL's chain
        monkeypatch.delenv("CLARIFY_GYM_USER_BASE_URL")
        judge = LLMClient(role="judge", model="m", cache=False)
        judge.complete([{"role": "user", "content": "Hi"}])
        assert server.stats.keys["sk-for-llm-url-2"] == 1
        assert judge.config.key_source == "CLARIFY_GYM_LLM_API_KEY"
        agent = LLMClient(role="agent", model="m", cache=False, base_url="http://127.0.0.1:9/v1")
        assert agent.config.api_key == "not-needed"  # another URL: no key of ours
        assert "sk-for-llm-url-2" not in repr(judge.describe())
