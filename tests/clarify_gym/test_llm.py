"""The LLM client against the fake server: faults, retry bounds, JSON repair, cache, usage,
concurrency limit, secrets."""

from __future__ import annotations

import asyncio
import json
import logging
import multiprocessing
import pickle
import threading
import time

import pytest
from conftest import FAKE_LLM_KEY
from helpers import run_python

from clarify_gym.errors import LLMError, LLMReplyError
from clarify_gym.llm import LLMClient, LLMConfig, Usage, backoff_delay
from clarify_gym.llm.cache import ResponseCache, request_key

pytest.importorskip("openai")

HI = [{"role": "user", "content": "Ask me something."}]
TRANSPORT_FAULTS = [
    "rate_limit",
    "server_error",
    "hang",
    "invalid_body",
    "truncated_body",
    "disconnect",
]


def client(**overrides) -> LLMClient:
    """A client with test-sized timeouts and backoff, configured from the fake server's env."""
    settings = {"timeout": 0.4, "backoff_base": 0.01, "backoff_max": 0.5, "max_retries": 2}
    return LLMClient(**{**settings, **overrides})


def test_config_from_env_roles_and_defaults(monkeypatch):
    env = {
        "OPENAI_API_KEY": "sk-openai",
        "CLARIFY_GYM_LLM_BASE_URL": "http://localhost:11434/v1",
        "CLARIFY_GYM_JUDGE_BASE_URL": "http://localhost:8000/v1",
        "CLARIFY_GYM_JUDGE_MODEL": "Qwen/Qwen2.5-7B-Instruct",
        "CLARIFY_GYM_LLM_MODEL": "llama3.1:8b",
        "CLARIFY_GYM_LLM_CONCURRENCY": "7",
    }
    judge = LLMConfig(cache=False).resolve("judge", env)
    user = LLMConfig(cache=False).resolve("user", env)
    assert (judge.base_url, judge.model) == ("http://localhost:8000/v1", "Qwen/Qwen2.5-7B-Instruct")
    assert (user.base_url, user.model, user.max_concurrency) == (
        "http://localhost:11434/v1",
        "llama3.1:8b",
        7,
    )
    assert user.api_key == "not-needed"  # OPENAI_API_KEY goes only to api.openai.com
    explicit = LLMConfig(model="m", base_url="http://x/v1", cache=False).resolve("user", env)
    assert (explicit.model, explicit.base_url) == ("m", "http://x/v1")
    official = LLMConfig(cache=False).resolve(None, {})
    assert official.base_url == "https://api.openai.com/v1" and official.api_key is None
    assert "sk-openai" not in repr(user) and "api_key" not in user.describe()
    with pytest.raises(ValueError, match="unknown LLM role"):
        LLMConfig().resolve("critic", env)
    for name in (
        "OPENAI_API_KEY",
        "CLARIFY_GYM_LLM_API_KEY",
        "OPENAI_BASE_URL",
        "CLARIFY_GYM_LLM_BASE_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(LLMError, match="OPENAI_API_KEY"):
        LLMClient(cache=False, model="gpt-4o").complete(HI)


def test_backoff_grows_with_jitter_and_honours_retry_after():
    for attempt in range(6):
        full = min(8.0, 0.5 * 2**attempt)
        for rand in (0.0, 0.3, 0.99):
            assert full / 2 <= backoff_delay(attempt, base=0.5, cap=8.0, rand=rand) <= full
    assert backoff_delay(0, base=0.5, cap=8.0, retry_after=3.0, rand=0.0) == 3.0
    assert backoff_delay(0, base=0.5, cap=8.0, retry_after=300.0, rand=0.0) == 8.0


def test_completion_usage_and_model_from_v1_models(fake_llm, monkeypatch):
    monkeypatch.delenv("CLARIFY_GYM_LLM_MODEL")
    llm = client(cache=False)
    first = llm.complete(HI)
    assert llm.model() == "fake-model"  # the one model /v1/models lists
    assert first.text and not first.cached and first.usage.calls == 1
    assert first.usage.prompt_tokens == len(HI[0]["content"].split())
    assert first.usage.completion_tokens == len(first.text.split())
    llm.complete(HI)
    assert llm.usage.calls == 2 and llm.usage.total_tokens == 2 * first.usage.total_tokens


@pytest.mark.parametrize("fault", TRANSPORT_FAULTS)
def test_each_fault_once_is_recovered(fake_llm, fault):
    llm = client(cache=False)
    expected = llm.complete(HI).text
    fake_llm.reset_stats()
    fake_llm.inject(fault, seconds=1.0 if fault == "hang" else 0.01)
    assert llm.complete(HI).text == expected
    assert fake_llm.stats.requests == 2 and fake_llm.stats.faults[fault] == 1


@pytest.mark.parametrize("fault", TRANSPORT_FAULTS)
def test_persistent_fault_is_a_typed_error_within_the_retry_bound(fake_llm, fault):
    llm = client(cache=False, max_retries=2)
    fake_llm.inject(fault, times=10, seconds=1.0 if fault == "hang" else 0.01)
    start = time.perf_counter()
    with pytest.raises(LLMError, match="failed 3 times") as info:
        llm.complete(HI)
    assert fake_llm.stats.requests == 3, "one attempt plus max_retries, never more"
    assert time.perf_counter() - start < 3 * 0.4 + 2.0
    assert not isinstance(info.value, LLMReplyError)


def test_rate_limit_waits_retry_after(fake_llm):
    llm = client(cache=False)
    fake_llm.inject("rate_limit", seconds=0.3)
    start = time.perf_counter()
    llm.complete(HI)
    assert time.perf_counter() - start >= 0.3
    assert fake_llm.stats.faults["rate_limit"] == 1


def test_wrong_key_fails_at_once_and_never_shows_the_key(fake_llm):
    wrong = "sk-wrong-key-9f8e7d6c5b4a"
    llm = client(cache=False, api_key=wrong)
    with pytest.raises(LLMError, match="HTTP 401") as info:
        llm.complete(HI)
    assert fake_llm.stats.requests == 0  # 401 is answered before the chat is served
    assert wrong not in str(info.value) and "check the API key" in str(info.value)


def validate_answer(value):
    if not isinstance(value, dict) or not isinstance(value.get("n"), int):
        raise ValueError('expected {"n": <int>}')
    return value["n"]


@pytest.mark.parametrize("fault", ["malformed_json", "empty_reply"])
def test_json_reply_repaired_once_then_typed_error(fake_llm, monkeypatch, fault):
    monkeypatch.setattr(fake_llm.responder, "reply", lambda messages: ("judge", '{"n": 3}'))
    llm = client(cache=False)
    fake_llm.inject(fault)
    reply = llm.complete_json(HI, validate_answer)
    assert (reply.value, reply.repaired, reply.usage.calls) == (3, True, 2)
    assert fake_llm.stats.requests == 2

    fake_llm.reset_stats()
    fake_llm.inject(fault, times=2)
    with pytest.raises(LLMReplyError, match="even after a second request") as info:
        llm.complete_json(HI, validate_answer)
    assert fake_llm.stats.requests == 2 and info.value.usage["calls"] == 2


def test_cache_hit_makes_no_request_and_replays_usage(fake_llm, tmp_path):
    llm = client(cache=tmp_path / "c")
    first = llm.complete(HI)
    fake_llm.reset_stats()
    again = client(cache=tmp_path / "c").complete(HI)  # a new client, as in a re-run
    assert fake_llm.stats.requests == 0
    assert again.cached and again.text == first.text
    assert (again.usage.cache_hits, again.usage.prompt_tokens) == (1, first.usage.prompt_tokens)
    client(cache=tmp_path / "c").complete(HI, temperature=0.7)  # other sampling: a new request
    assert fake_llm.stats.requests == 1


def test_cache_is_safe_across_processes(tmp_path):
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_hammer_cache, args=(str(tmp_path), p)) for p in range(3)]
    for p in procs:
        p.start()
    cache = ResponseCache(tmp_path)
    seen = 0
    while any(p.is_alive() for p in procs):
        for k in range(20):
            record = cache.get(request_key("m", [{"role": "user", "content": str(k)}], {}))
            if record is not None:  # a reader sees a whole file or none
                assert record["text"].startswith(f"reply {k} from ")
                seen += 1
    for p in procs:
        p.join()
        assert p.exitcode == 0
    assert not list(tmp_path.rglob("*.tmp")), "no temporary file left behind"
    assert all(
        cache.get(request_key("m", [{"role": "user", "content": str(k)}], {})) for k in range(20)
    )


def _hammer_cache(directory: str, proc: int) -> None:
    cache = ResponseCache(directory)
    for _ in range(15):
        for k in range(20):
            key = request_key("m", [{"role": "user", "content": str(k)}], {})
            cache.put(key, {"text": f"reply {k} from {proc} " + "x" * 2000})


def test_concurrency_limit_is_respected_threads_and_asyncio(fake_llm):
    fake_llm.latency = 0.1
    llm = client(cache=False, max_concurrency=3, timeout=5.0)
    threads = [
        threading.Thread(target=llm.complete, args=([{"role": "user", "content": f"t{i}"}],))
        for i in range(9)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert fake_llm.stats.max_in_flight == 3 and fake_llm.stats.requests == 9

    fake_llm.reset_stats()

    async def many() -> list[str]:
        calls = [llm.acomplete([{"role": "user", "content": f"a{i}"}]) for i in range(9)]
        return [c.text for c in await asyncio.gather(*calls)]

    start = time.perf_counter()
    assert len(asyncio.run(many())) == 9
    assert fake_llm.stats.max_in_flight == 3
    assert time.perf_counter() - start >= 0.3  # three waves of 0.1 s


def test_async_path_retries_and_validates(fake_llm, monkeypatch):
    monkeypatch.setattr(fake_llm.responder, "reply", lambda messages: ("judge", '{"n": 3}'))
    llm = client(cache=False)
    fake_llm.inject("server_error")
    fake_llm.inject("malformed_json", role="user")

    async def run():
        return await llm.acomplete(HI), await llm.acomplete_json(HI, lambda v: v)

    plain, parsed = asyncio.run(run())
    assert plain.text and parsed.value == json.loads(parsed.text) and parsed.repaired is False
    assert fake_llm.stats.faults == {"server_error": 1}  # the user-role fault never matched


def test_api_key_never_in_logs_cache_pickles_or_errors(fake_llm, caplog, tmp_path):
    import gymnasium as gym

    caplog.set_level(logging.DEBUG)  # openai's and httpx's debug logs too
    fake_llm.inject("server_error")
    fake_llm.inject("rate_limit", seconds=0.01)
    env = gym.make("ProactiveGather-LLM-v0")
    infos = [env.reset(seed=0)[1]]
    for question in ("What steps should I follow?", "Who is the audience?", "STOP"):
        infos.append(env.step(question)[-1])
    assert fake_llm.stats.faults["server_error"] == 1, "the faults were served and logged"
    with pytest.raises(LLMError) as failed:
        client(
            cache=False, max_retries=0, api_key=FAKE_LLM_KEY, base_url=fake_llm.url + "/nowhere"
        ).complete(HI)

    assert FAKE_LLM_KEY not in caplog.text
    assert "retry 1 of" in caplog.text
    cache_files = list((tmp_path / "llm-cache").rglob("*.json"))
    assert cache_files
    for path in cache_files:
        assert FAKE_LLM_KEY not in path.read_text(encoding="utf-8")
    assert FAKE_LLM_KEY not in json.dumps(infos, default=str)  # what a results file holds
    user = env.unwrapped.user
    assert FAKE_LLM_KEY not in repr(user) and FAKE_LLM_KEY not in repr(user.client.config)
    assert FAKE_LLM_KEY.encode() not in pickle.dumps(user)
    assert FAKE_LLM_KEY not in str(failed.value)


def test_pickled_client_reads_the_key_from_the_environment_again(fake_llm):
    llm = client(cache=False)
    clone = pickle.loads(pickle.dumps(llm))
    assert clone.complete(HI).text == llm.complete(HI).text


def test_clarify_gym_imports_without_openai_and_says_how_to_install(tmp_path):
    code = (
        "import sys; sys.modules['openai'] = None\n"
        "import clarify_gym, clarify_gym.llm, clarify_gym.users.llm, clarify_gym.writing.llm\n"
        "import clarify_gym.testing\n"
        "from clarify_gym.llm import LLMClient\n"
        "try:\n"
        "    LLMClient(base_url='http://127.0.0.1:9/v1', model='m', cache=False).complete([{'role': 'user', 'content': 'x'}])\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    out = run_python(code)
    assert out.returncode == 0, out.stderr
    assert 'pip install "clarify-gym[llm]"' in out.stdout


def test_usage_adds_dicts_and_objects():
    total = Usage().add(Usage(3, 4, 1)).add({"prompt_tokens": 1, "calls": 1, "cache_hits": 1})
    assert (total.prompt_tokens, total.completion_tokens, total.calls, total.cache_hits) == (
        4,
        4,
        2,
        1,
    )
    assert total.as_dict() == {
        "prompt_tokens": 4,
        "completion_tokens": 4,
        "total_tokens": 8,
        "calls": 2,
    }
