"""The input holes of issue 11, each closed (every test here failed on main before the fix)."""

from __future__ import annotations

import gymnasium as gym
import pytest

from clarify_gym.env import ProactiveGatherEnv
from clarify_gym.registration import ENV_SPECS
from clarify_gym.tasks import Task
from clarify_gym.users import Answer

#: Ids whose env is the text env itself (the bank ids wrap it in features).
TEXT_IDS = [i for i, (entry, *_) in ENV_SPECS.items() if entry.endswith("ProactiveGatherEnv")]
PRIVILEGED = ("num_hidden", "elicited", "cited_ids", "new_hidden_ids")


def _task(**fields: str) -> Task:
    base = {
        "id": "t-1",
        "field": "Law",
        "objective": "Write a memo for the partner.",
        "procedure": "Read the contract first. Then check the 2019 amendment.",
        "input_spec": "* Facts: what happened",
        "output_spec": "* Issue: One sentence.\n* Advice: Two paragraphs.",
        "notes": "Use plain English.",
        "example_input": "**Input Sections**\n\n**Facts:** Dr. Lee sold 3.5 t of steel.",
    }
    return Task(**{**base, **fields})


def test_length_cap_applies_after_unicode_normalisation():
    env = ProactiveGatherEnv()
    env.reset(seed=0)
    action = "\ufdfa" * 100  # 100 characters that NFKC turns into 1,800
    for _ in range(5):
        obs, reward, terminated, truncated, info = env.step(action)
        assert info["invalid"] == "too_long" and reward == 0.0
        assert env.observation_space.contains(obs)


class _ExpandingUser:
    """A user whose answers NFKC-normalisation lengthens 18-fold."""

    def answer(self, question: str, state: object) -> Answer:
        return Answer("\ufdfa" * 3000, (), "nothing")


@pytest.mark.parametrize(
    "action",
    ["\ufdfa" * 2001, "\ufdfa" * 1999, "\ufdfa" * 27, "\ufb03" * 499 + "?", "x" * 501],
    ids=["over-4x", "under-4x", "fits-raw", "ligatures", "ascii"],
)
def test_every_path_keeps_the_observation_inside_its_space(action):
    """Issue 28: "\ufdfa" * 2001 was cut, then normalised to 9,006 characters; five of them
    made a 19,401-character observation against a 14,560 limit."""
    for user in ("faithful", _ExpandingUser()):
        env = ProactiveGatherEnv(user=user)
        obs, _ = env.reset(seed=0)
        for _ in range(env.max_questions):
            obs, reward, *_ = env.step(action)
            assert env.observation_space.contains(obs), len(obs)
            turn = env.state.turns[-1]
            assert len(turn.question) <= env.question_max_chars
            assert len(turn.answer) <= env.answer_max_chars


@pytest.mark.parametrize(
    "action", ["\uff33\uff34\uff2f\uff30", "STOP\u00a0", "S\u200bTOP", "\u200b stop."]
)
def test_stop_is_recognised_after_cleaning(action):
    env = ProactiveGatherEnv()
    env.reset(seed=0)
    obs, _, terminated, truncated, info = env.step(action)
    assert terminated and not truncated and info["env/questions"] == 0
    assert "Assistant:" not in obs


def test_other_scripts_are_unsupported_characters_not_no_words():
    env = ProactiveGatherEnv()
    env.reset(seed=0)
    for question in ("Какой длины должен быть отчёт?", "报告应该多长？"):
        _, _, _, _, info = env.step(question)
        assert info["invalid"] == "unsupported_characters"
        assert "characters" in info["answer"] and "no words" not in info["answer"]


def test_a_script_the_charset_allows_is_kept():
    task = _task(example_input="**Input Sections**\n\n**Facts:** Клиент Иванов продал сталь.")
    env = ProactiveGatherEnv(tasks=[task])  # a guard: the unsupported check keeps it
    env.reset(seed=0)
    obs, _, _, _, info = env.step("Кто продал сталь?")
    assert info["invalid"] is None and "Assistant: Кто продал сталь?" in obs


def test_charset_holds_no_character_that_only_hidden_fields_use():
    env = ProactiveGatherEnv(tasks=[_task(notes="Mark the Ж-class clauses.")])
    assert "Ж" not in env.charset and "Ж" not in env.observation_space.character_set


@pytest.mark.parametrize("env_id", TEXT_IDS[:2] + TEXT_IDS[-2:])
def test_nothing_before_the_end_reveals_h_or_sentence_ids(env_id):
    if "LLM" in env_id:
        pytest.skip("needs an endpoint")
    env = gym.make(env_id)
    _, info = env.reset(seed=1)
    assert not set(PRIVILEGED) & set(info)
    task = env.unwrapped.state.task
    visible = next(s for s in task.sentences if s.field == "example_input")
    questions = [visible.text, "What sections must the output contain?", "Tone?", "STOP"]
    for question in questions:
        _, _, terminated, truncated, info = env.step(question)
        if terminated or truncated:
            break
        assert not set(PRIVILEGED) & set(info), sorted(set(PRIVILEGED) & set(info))
    assert terminated and info["num_hidden"] == len(task.hidden_ids)
    assert len(info["cited_ids"]) == len(info["new_hidden_ids"]) == 3


def test_async_vector_env_default_says_what_to_pass_and_the_hint_works():
    with pytest.raises(ValueError) as raised:
        gym.make_vec("ProactiveGather-v1", num_envs=2, vectorization_mode="async")
    assert "shared_memory=False" in str(raised.value) + str(raised.value.__cause__)
    envs = gym.make_vec(
        "ProactiveGather-v1",
        num_envs=2,
        vectorization_mode="async",
        vector_kwargs={"shared_memory": False},
    )
    try:
        obs, _ = envs.reset(seed=0)
        assert all(o.startswith("## Task\n") for o in obs)
        obs, *_ = envs.step(["What sections must the output contain?"] * 2)
        assert all("Assistant: What sections" in o for o in obs)
    finally:
        envs.close()
