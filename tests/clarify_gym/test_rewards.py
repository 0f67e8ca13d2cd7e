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


def test_env_reports_paid_terms_and_weights_apply():
    env = gym.make("ProactiveGather-v0", question_cost=0.01, checklist_weight=0.5)
    env.reset(seed=3)
    _, reward, *_, info = env.step(good_question(env))
    terms = info["reward_terms"]
    assert set(terms) == {"new_info", "question_cost"}  # paper_binary is not paid
    assert reward == pytest.approx(terms["new_info"] - 0.01)
    _, reward, terminated, _, info = env.step("STOP")
    assert terminated and reward == pytest.approx(0.5 * info["eval/checklist_score"])


@pytest.mark.parametrize("env_id", ["ProactiveGatherPaper-v0", "ProactiveGatherPaper-v1"])
def test_paper_reward_reports_no_new_info_share_before_the_end(env_id):
    """Issue 28: under the paper reward, one new_info share gave |H| exactly (1 / share)."""
    env = gym.make(env_id, max_questions=2)
    env.reset(seed=3)
    _, reward, terminated, truncated, info = env.step(good_question(env))
    assert not (terminated or truncated) and reward == 1.0
    assert set(info["reward_terms"]) == {"paper_binary", "question_cost"}
    _, _, _, truncated, info = env.step("What steps should I follow?")
    assert truncated and set(info["reward_terms"]) >= {"new_info", "paper_binary", "checklist"}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"question_cost": float("nan")},
        {"question_cost": float("inf")},
        {"question_cost": -0.1},
        {"checklist_weight": float("nan")},
        {"checklist_weight": -1.0},
        {"sentence_weights": {"notes": float("nan")}},
        {"sentence_weights": {"notes": -2.0}},
        {"sentence_weights": {"notes": float("inf")}},
    ],
    ids=str,
)
def test_reward_settings_must_be_finite_and_non_negative(kwargs):
    with pytest.raises(ValueError, match=r"must be a finite number >= 0") as raised:
        gym.make("ProactiveGather-v1", **kwargs)
    assert "\n" not in str(raised.value)
    with pytest.raises(ValueError, match=r"RewardWeights.new_info must be a finite number >= 0"):
        RewardWeights(new_info=float("nan"))


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
