"""ProactiveGatherEnv specifics beyond the shared conformance checks."""

from __future__ import annotations

import subprocess
import sys

import gymnasium as gym
import pytest
from helpers import good_question, last_turn

import clarify_gym as cg
from clarify_gym.env import ProactiveGatherEnv, is_stop


def test_make_without_import_in_a_fresh_interpreter():
    code = (
        "import gymnasium as gym; env = gym.make('clarify_gym:ProactiveGather-v0'); "
        "obs, info = env.reset(seed=0); print(info['task_id'], obs.startswith('## Task'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip().endswith("True")


def test_reset_options_pick_the_named_task():
    env = gym.make("ProactiveGather-v0")
    _, info = env.reset(options={"task_id": "cg-law-02"})
    assert info["task_id"] == "cg-law-02" and "num_hidden" not in info
    _, info = env.reset(options={"task_index": 0})
    assert info["task_id"] == env.unwrapped.tasks[0].id
    with pytest.raises(ValueError, match="unknown task_id"):
        env.reset(options={"task_id": "nope"})
    with pytest.raises(ValueError, match="task_index"):
        env.reset(options={"task_index": 999})


def test_observation_format_and_info_dialogue():
    env = gym.make("ProactiveGather-v0", split="test")
    obs, info = env.reset(seed=0)
    masked = env.unwrapped.state.task
    assert obs.startswith("## Task\n" + masked.visible_text)
    assert "## Conversation\n(no questions yet)" in obs and "Questions asked: 0 of 5" in obs
    q = good_question(env)
    obs, _, _, _, info = env.step(q)
    assert f"Assistant: {q}\nUser: {info['answer']}" in obs
    assert info["dialogue"] == [
        {"role": "assistant", "content": q},
        {"role": "user", "content": info["answer"]},
    ]
    new = last_turn(env).new_hidden_ids
    assert set(new) <= masked.hidden_ids and env.unwrapped.state.elicited == set(new)


def test_budget_end_is_truncation_and_carries_metrics():
    env = gym.make("ProactiveGather-v0", max_questions=2)
    env.reset(seed=0)
    _, _, terminated, truncated, info = env.step("Who is the audience?")
    assert not (terminated or truncated) and "outline" not in info
    _, _, terminated, truncated, info = env.step("What sections should the output have?")
    assert truncated and not terminated
    for key in (
        "env/new_info",
        "env/hidden_coverage",
        "env/paper_reward",
        "env/questions",
        "env/redundant_rate",
        "eval/checklist_score",
        "outline",
    ):
        assert key in info
    assert info["env/questions"] == 2


def test_render_modes(capsys):
    env = gym.make("ProactiveGather-v0", render_mode="ansi")
    env.reset(seed=0)
    env.step("Who is the audience?")
    env.step("STOP")
    text = env.render()
    assert "Assistant: Who is the audience?" in text and "## Outline" in text
    human = gym.make("ProactiveGather-v0", render_mode="human")
    human.reset(seed=0)
    assert human.render() is None
    assert "## Task" in capsys.readouterr().out
    with pytest.raises(ValueError, match="render_mode"):
        ProactiveGatherEnv(render_mode="rgb_array")


@pytest.mark.parametrize("env_id", ["ProactiveGather-v1", "ProactiveGatherPaper-v1"])
def test_render_shows_h_only_at_the_end(env_id):
    """Issue 28: render() printed "elicited 0/15 hidden sentences" from reset on."""
    env = gym.make(env_id, render_mode="ansi", max_questions=2)
    env.reset(seed=0)
    hidden = len(env.unwrapped.state.task.hidden_ids)
    texts = [env.render()]
    env.step("What sections must the output contain?")
    texts.append(env.render())
    for text in texts:
        assert f"/{hidden}" not in text and "hidden sentences" not in text
    env.step("What steps should I follow?")
    assert f"/{hidden} hidden sentences" in env.render()


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="max_questions"):
        ProactiveGatherEnv(max_questions=0)
    with pytest.raises(ValueError, match="question_cost"):
        ProactiveGatherEnv(question_cost=-1)
    with pytest.raises(ValueError, match="unknown user"):
        ProactiveGatherEnv(user="telepathic")
    with pytest.raises(ValueError, match="unknown reward"):
        ProactiveGatherEnv(reward="vibes")


def test_harder_mask_policy_hides_input_sections():
    task = cg.load_tasks("sample", split="test")[0]
    section = cg.masking.parse_input_sections(task.example_input)[0][0]
    env = ProactiveGatherEnv(
        tasks=[task], mask_policy=cg.MaskPolicy(hidden_input_sections=(section,))
    )
    obs, info = env.reset(seed=0)
    assert f"**{section}:**" not in obs
    assert len(env.state.task.hidden_ids) > len(cg.mask(task).hidden_ids)


def test_stop_forms():
    assert all(
        is_stop(a)
        for a in ["STOP", "stop", " Stop. ", "[STOP]", "<stop>", "`STOP`", "**STOP**", "STOP!"]
    )
    assert not any(is_stop(a) for a in ["STOP asking", "don't stop", "stopwatch?", ""])


@pytest.mark.parametrize("end", ["stop", "budget"], ids=str)
def test_final_info_carries_the_episode_return(end):
    env = gym.make("ProactiveGather-v0", checklist_weight=0.5, max_questions=2)
    env.reset(seed=3)
    actions = ["What steps should I follow?", "Which sections must the output have?"]
    if end == "stop":
        actions[1] = "STOP"
    total = 0.0
    for action in actions:
        _, reward, terminated, truncated, info = env.step(action)
        total += reward
    assert terminated or truncated
    assert info["episode_return"] == pytest.approx(total)
    assert info["episode_return"] == pytest.approx(env.unwrapped.state.episode_return)
    assert env.unwrapped.state.bonus == pytest.approx(0.5 * info["eval/checklist_score"])
