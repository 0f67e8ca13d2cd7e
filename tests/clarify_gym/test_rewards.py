from __future__ import annotations

import gymnasium as gym
import pytest
from helpers import good_question

from clarify_gym.rewards import (
    RewardWeights,
    combine,
    new_information,
    paper_binary,
    resolve_reward,
)


def test_terms_and_composite():
    assert paper_binary([1], {1}) == 1.0 and paper_binary([], {1}) == 0.0
    assert new_information([1, 2], {1, 2, 3, 4}, set()) == 0.5
    assert new_information([1, 2], {1, 2, 3, 4}, {1, 2}) == 0.0
    terms = {"new_info": 0.5, "paper_binary": 1.0, "question_cost": -0.1}
    assert combine(terms, RewardWeights(new_info=2.0, paper_binary=0.5)) == pytest.approx(1.4)
    with pytest.raises(ValueError, match="unknown reward"):
        resolve_reward("bonus")


def test_env_reports_every_term_and_weights_apply():
    env = gym.make("ProactiveGather-v0", question_cost=0.01, checklist_weight=0.5)
    env.reset(seed=3)
    _, reward, *_, info = env.step(good_question(env))
    terms = info["reward_terms"]
    assert set(terms) == {"new_info", "paper_binary", "question_cost"}
    assert reward == pytest.approx(terms["new_info"] - 0.01)
    _, reward, terminated, _, info = env.step("STOP")
    assert terminated and reward == pytest.approx(0.5 * info["eval/checklist_score"])


def test_sentence_weights_change_new_info_share():
    plain = gym.make("ProactiveGather-v0")
    weighted = gym.make("ProactiveGather-v0", sentence_weights={"output_spec": 3.0})
    for env in (plain, weighted):
        env.reset(options={"task_id": "cg-software-02"})
    q = "What goes in the timeline table and the action items table?"
    r_plain = plain.step(q)[1]
    r_weighted = weighted.step(q)[1]
    assert r_weighted > r_plain  # output-spec sentences weigh more
    with pytest.raises(ValueError, match="unknown field"):
        gym.make("ProactiveGather-v0", sentence_weights={"vibes": 1.0})
