"""Evaluating bank policies task by task, and the SB3 training benchmark (tiny budgets)."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest
from clarify_agents.baselines import GenericAgent
from clarify_bench.cli import main

from clarify_gym.env import ProactiveGatherEnv
from clarify_gym.integrations.sb3 import (
    GenericBankPolicy,
    RandomBankPolicy,
    SB3BankPolicy,
    evaluate_bank_policy,
    summarize,
)
from clarify_gym.questions import GENERIC_QUESTIONS, TOP_GENERIC_QUESTIONS


@pytest.fixture
def test_env():
    return gym.make("ProactiveGatherBank-v0", split="test")


def test_random_policy_is_uniform_seeded_and_may_stop(test_env):
    a = evaluate_bank_policy(test_env, RandomBankPolicy(test_env, seed=0), episodes_per_task=5)
    b = evaluate_bank_policy(test_env, RandomBankPolicy(test_env, seed=123), episodes_per_task=5)
    assert a == b, "episodes are seeded by the evaluation, not by the policy's first seed"
    c = evaluate_bank_policy(
        test_env, RandomBankPolicy(test_env, seed=0), episodes_per_task=5, seed=1
    )
    assert a != c
    assert len(a) == 60 and {r.task_id for r in a} == {t.id for t in test_env.unwrapped.tasks}
    actions = np.concatenate([r.actions for r in a])
    assert actions.min() >= 0 and actions.max() <= len(GENERIC_QUESTIONS)
    assert len(set(actions.tolist())) > 20, "uniform over the bank"
    assert any(r.actions[-1] == len(GENERIC_QUESTIONS) for r in a), "STOP is one of the actions"


def test_generic_policy_is_the_generic_agent_through_the_bank(test_env):
    results = evaluate_bank_policy(test_env, GenericBankPolicy(test_env))
    order = [GENERIC_QUESTIONS.index(q) for q in TOP_GENERIC_QUESTIONS[:5]]
    assert all(list(r.actions) == order for r in results)
    text_env = ProactiveGatherEnv(split="test")
    agent = GenericAgent()
    for r in results:
        obs, _ = text_env.reset(options={"task_id": r.task_id})
        agent.reset()
        done = False
        while not done:
            obs, _, terminated, truncated, info = text_env.step(agent.act(obs))
            done = terminated or truncated
        assert [m["content"] for m in info["dialogue"][::2]] == list(TOP_GENERIC_QUESTIONS[:5])
        assert r.new_info == info["env/new_info"]
        assert r.checklist_score == info["eval/checklist_score"]


def test_summary_means_match_the_episodes(test_env):
    results = evaluate_bank_policy(test_env, GenericBankPolicy(test_env))
    summary = summarize(results)
    assert summary["env/new_info"] == pytest.approx(np.mean([r.new_info for r in results]))
    assert summary["env/questions"] == 5.0 and summary["episodes"] == 12
    with pytest.raises(ValueError, match="no episodes"):
        summarize([])


@pytest.mark.reseeds_global_rng
def test_sb3_policy_acts_in_the_action_space(test_env):
    from stable_baselines3 import PPO

    model = PPO("MlpPolicy", test_env, n_steps=64, batch_size=64, seed=0, device="cpu")
    results = evaluate_bank_policy(test_env, SB3BankPolicy(model))
    assert all(test_env.action_space.contains(a) for r in results for a in r.actions)
    assert evaluate_bank_policy(test_env, SB3BankPolicy(model)) == results, "deterministic"


@pytest.mark.reseeds_global_rng
def test_train_sb3_cli_writes_results_curve_and_resumes(tmp_path, capsys):
    args = [
        "train-sb3",
        "--algos",
        "ppo",
        "--seeds",
        "0",
        "--timesteps",
        "256",
        "--n-envs",
        "2",
        "--eval-every",
        "256",
        "--random-episodes",
        "2",
        "--out",
        str(tmp_path),
    ]
    assert main(args) == 0
    printed = json.loads(capsys.readouterr().out)
    saved = json.loads((tmp_path / "sb3.json").read_text())
    random_test = saved["baselines"]["random"]["test"]["env/new_info"]
    ppo_test = saved["algos"]["ppo"]["test/new_info_mean"]
    assert saved["ppo_vs_random"] == pytest.approx(ppo_test / random_test)
    assert printed["ppo_vs_random"] == saved["ppo_vs_random"]
    assert printed["algos"]["ppo"]["seeds"] == [0]
    assert len(saved["baselines"]["random"]["test"]["per_episode"]) == 12 * 2
    [run] = saved["algos"]["ppo"]["runs"]
    assert run["timesteps"] >= 256 and run["curve"][0]["timesteps"] == 0
    [row] = [json.loads(line) for line in (tmp_path / "sb3_runs.jsonl").read_text().splitlines()]
    assert len(row["test"]["per_episode"]) == 12
    assert row["test"]["env/new_info"] == run["test"]["env/new_info"] == ppo_test
    assert (tmp_path / "sb3_learning_curve.png").stat().st_size > 10_000
    # a second invocation with the same settings reuses the saved run
    assert main(args) == 0
    capsys.readouterr()
    assert len((tmp_path / "sb3_runs.jsonl").read_text().splitlines()) == 1
    again = json.loads((tmp_path / "sb3.json").read_text())
    assert again["algos"]["ppo"]["runs"] == saved["algos"]["ppo"]["runs"]


def test_train_sb3_refuses_unknown_algorithms(tmp_path):
    from clarify_agents.sb3 import SB3TrainConfig

    with pytest.raises(ValueError, match="unknown algorithm"):
        SB3TrainConfig(algos=("sac",), out=str(tmp_path))
