"""ProactiveGather-LLM-v0 (LLM user, writer and judge) against the fake server passes the same
conformance checks as the offline ids: the checks of test_conformance.py, called with the LLM id."""

from __future__ import annotations

import gymnasium as gym
import pytest
import test_conformance as conformance
from helpers import rollout, run_python

from clarify_gym.llm.cache import llm_cache_dir

pytest.importorskip("openai")
pytestmark = pytest.mark.usefixtures("fake_llm")

LLM_ID = "ProactiveGather-LLM-v0"


def test_check_env():
    conformance.test_check_env(LLM_ID)


@pytest.mark.parametrize("seed", [0, 7])
def test_same_seed_same_actions_same_everything(seed):
    conformance.test_same_seed_same_actions_same_everything(LLM_ID, seed)


def test_seed_picks_task_with_env_rng():
    conformance.test_seed_picks_task_with_env_rng(LLM_ID)


def test_stop_at_once_returns_zero():
    conformance.test_stop_at_once_returns_zero(LLM_ID)


def test_same_good_question_twice_earns_nothing_new():
    conformance.test_same_good_question_twice_earns_nothing_new(LLM_ID)


def test_twenty_thousand_char_action_is_a_wasted_turn_without_asking_the_user():
    conformance.test_twenty_thousand_char_action_is_a_wasted_turn_without_asking_the_user(LLM_ID)


@pytest.mark.parametrize("action", ["", "   \n\t ", "?!?!", "\x00\x01"])
def test_rejected_input_changes_nothing_but_the_turn(action, fake_llm):
    conformance.test_rejected_input_changes_nothing_but_the_turn(LLM_ID, action)
    assert fake_llm.stats.by_role["user"] == 0, "a rejected question never reaches the oracle"


def test_non_string_action_and_step_after_end():
    conformance.test_non_string_action_and_step_after_end(LLM_ID)


def test_pickle_round_trip_mid_episode():
    conformance.test_pickle_round_trip_mid_episode(LLM_ID)


def test_replay_from_the_cache_is_exact_and_makes_no_request(fake_llm):
    first = rollout(gym.make(LLM_ID), 3, conformance.QUESTIONS)
    assert fake_llm.stats.by_role == {"user": 5, "writer": 1, "judge": 1}
    fake_llm.reset_stats()
    second = rollout(gym.make(LLM_ID), 3, conformance.QUESTIONS)
    assert fake_llm.stats.requests == 0
    assert first == second
    assert second[-1][-1]["llm/calls"] == 7


def test_episode_usage_sums_user_writer_and_judge():
    env = gym.make(LLM_ID)
    steps = rollout(env, 1, [*conformance.QUESTIONS[:2], "STOP"])
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
