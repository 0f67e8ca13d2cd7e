from __future__ import annotations

import random

import gymnasium as gym
import numpy as np
import pytest
from clarify_agents.base import STOP, Agent
from clarify_agents.baselines import (
    GenericAgent,
    OracleAgent,
    PassiveAgent,
    RandomAgent,
    user_answers,
)

from clarify_gym.questions import GENERIC_QUESTIONS, TOP_GENERIC_QUESTIONS


@pytest.fixture
def env():
    return gym.make("ProactiveGather-v0", split="test")


def play(env, agent: Agent, task_id: str, seed: int = 0):
    """One scripted episode: the actions the agent took and the final info."""
    obs, _ = env.reset(seed=seed, options={"task_id": task_id})
    agent.reset(seed=seed, task=env.unwrapped.state.task)
    actions, infos = [], []
    while True:
        action = agent.act(obs)
        assert isinstance(action, str) and action
        actions.append(action)
        obs, _, terminated, truncated, info = env.step(action)
        infos.append(info)
        if terminated or truncated:
            return actions, infos


def test_passive_stops_at_once(env):
    actions, infos = play(env, PassiveAgent(), "cg-law-03")
    assert actions == [STOP]
    assert infos[-1]["env/questions"] == 0 and infos[-1]["eval/checklist_score"] == 0.0


def test_generic_asks_the_list_in_order_then_stops(env):
    actions, _ = play(env, GenericAgent(max_questions=2), "cg-law-03")
    assert actions == [*TOP_GENERIC_QUESTIONS[:2], STOP]
    actions, infos = play(env, GenericAgent(), "cg-law-03")  # the budget (5) ends it
    assert actions == list(TOP_GENERIC_QUESTIONS[:5]) and infos[-1]["env/questions"] == 5
    agent = GenericAgent(questions=["Who reads it?"])
    assert [agent.act("obs"), agent.act("obs")] == ["Who reads it?", STOP]
    agent.reset()
    assert agent.act("obs") == "Who reads it?"


def test_random_is_seeded_by_reset_and_leaves_global_rngs_alone(env):
    np_state, py_state = np.random.get_state()[1].copy(), random.getstate()
    agent = RandomAgent()
    first, _ = play(env, agent, "cg-law-03", seed=7)
    again, _ = play(env, agent, "cg-law-03", seed=7)
    other, _ = play(env, agent, "cg-law-03", seed=8)
    assert first == again != other
    assert len(set(first)) == len(first) == 5  # no repeats; the budget ends it
    assert set(first) <= set(GENERIC_QUESTIONS)
    assert (np.random.get_state()[1] == np_state).all() and random.getstate() == py_state
    short = RandomAgent(max_questions=1, seed=3)
    assert short.act("obs") in GENERIC_QUESTIONS and short.act("obs") == STOP


def test_oracle_needs_the_task_and_elicits_new_hidden_sentences_every_turn(env):
    with pytest.raises(ValueError, match="reads the hidden task"):
        OracleAgent().reset()
    assert OracleAgent.privileged and not PassiveAgent.privileged
    actions, infos = play(env, OracleAgent(), "cg-software-03")
    assert all("new_hidden_ids" not in i for i in infos[:-1])  # ids only at the end
    questions = infos[-1]["new_hidden_ids"]  # per question
    assert questions and all(questions)
    assert infos[-1]["env/hidden_coverage"] > 0.9
    # the checklist fields come first
    task = env.unwrapped.state.task
    first = {task.sentences[i].field for i in questions[0]}
    assert first <= {"output_spec", "notes"}


def test_oracle_stops_when_everything_is_elicited_and_skips_what_was_said():
    env = gym.make("ProactiveGather-v0", split="test", max_questions=20)
    actions, infos = play(env, OracleAgent(), "cg-law-03")
    assert actions[-1] == STOP and infos[-1]["env/hidden_coverage"] == 1.0
    assert len(actions) < 20

    # what the user already said (in the observation) is not asked about again
    obs, _ = env.reset(seed=0, options={"task_id": "cg-law-03"})
    task = env.unwrapped.state.task
    oracle = OracleAgent(sentences_per_question=1)
    oracle.reset(task=task)
    target = oracle.act(obs)
    said = oracle._queue[0]
    obs_with_answer = obs.replace("(no questions yet)", f"Assistant: {target}\nUser: {said.text}")
    oracle.reset(task=task)
    assert oracle.act(obs_with_answer) != target


def test_user_answers_reads_the_dialogue():
    env = gym.make("ProactiveGather-v0", split="test")
    obs, _ = env.reset(seed=0, options={"task_id": "cg-law-03"})
    assert user_answers(obs) == []
    obs, *_, info = env.step("What sections must the output contain?")
    assert user_answers(obs) == [info["answer"]]
