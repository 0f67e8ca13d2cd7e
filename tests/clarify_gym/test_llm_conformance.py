"""What only ProactiveGather-LLM-v0 has: the reply cache, token usage, the nondeterministic flag.
The conformance checks every id passes, this one included, are in test_conformance.py."""

from __future__ import annotations

import gymnasium as gym
import pytest
from helpers import QUESTIONS, rollout, run_python

from clarify_gym.llm.cache import llm_cache_dir

pytest.importorskip("openai")
pytestmark = pytest.mark.usefixtures("fake_llm")

LLM_ID = "ProactiveGather-LLM-v0"


@pytest.mark.parametrize("action", ["", "?!?!"], ids=["empty", "punctuation"])
def test_rejected_input_never_reaches_the_oracle(action, fake_llm):
    env = gym.make(LLM_ID)
    env.reset(seed=4)
    assert env.step(action)[-1]["invalid"] in {"empty", "no_words"}
    assert fake_llm.stats.by_role.get("user", 0) == 0


def test_replay_from_the_cache_is_exact_and_makes_no_request(fake_llm):
    first = rollout(gym.make(LLM_ID), 3, QUESTIONS)
    assert fake_llm.stats.by_role == {"user": 5, "writer": 1, "judge": 1}
    fake_llm.reset_stats()
    second = rollout(gym.make(LLM_ID), 3, QUESTIONS)
    assert fake_llm.stats.requests == 0
    assert first == second
    assert second[-1][-1]["llm/calls"] == 7


def test_episode_usage_sums_user_writer_and_judge():
    env = gym.make(LLM_ID)
    steps = rollout(env, 1, [*QUESTIONS[:2], "STOP"])
    info = steps[-1][-1]
    user_calls = sum(s[-1]["user_usage"]["calls"] for s in steps[1:-1])
    user_tokens = sum(s[-1]["user_usage"]["prompt_tokens"] for s in steps[1:-1])
    assert user_calls == 2 and info["llm/calls"] == 4  # two answers, the writer, the judge
    assert info["llm/prompt_tokens"] > user_tokens > 0 and info["llm/completion_tokens"] > 0


def test_registered_nondeterministic_flag_follows_the_cache_at_import():
    assert gym.spec(LLM_ID).nondeterministic is (llm_cache_dir() is None)
    code = "import gymnasium as gym, clarify_gym; print(gym.spec('ProactiveGather-LLM-v0').nondeterministic)"
    for setting, expected in (("off", "True"), ("/tmp/somewhere", "False")):
        out = run_python(code, CLARIFY_GYM_LLM_CACHE=setting)
        assert out.stdout.strip() == expected, out.stderr
