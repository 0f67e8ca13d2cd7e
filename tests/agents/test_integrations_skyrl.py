"""The SkyRL adapter: whole episodes through ``skyrl_gym``'s env API equal the Gymnasium env's."""

from __future__ import annotations

import gymnasium as gym
import pytest

pytest.importorskip("skyrl_gym", reason='SkyRL is optional: pip install "clarify-gym[skyrl]"')

import skyrl_gym
from clarify_agents.baselines import GenericAgent, OracleAgent, RandomAgent
from clarify_agents.integrations import skyrl
from clarify_agents.integrations.dataset import episode_rows, skyrl_row, write_parquet
from clarify_agents.prompts import observation_to_messages

import clarify_gym
from clarify_gym.env import EPISODE_METRICS

ENV_KWARGS = {"max_questions": 4}


def gym_episode(agent, task_id: str, seed: int):
    env = gym.make("ProactiveGather-v0", **ENV_KWARGS)
    obs, _ = env.reset(seed=seed, options={"task_id": task_id})
    agent.reset(seed=seed, task=env.unwrapped.state.task if agent.privileged else None)
    first, actions, rewards, dones = obs, [], [], []
    while True:
        action = agent.act(obs)
        obs, reward, terminated, truncated, info = env.step(action)
        actions.append(action)
        rewards.append(float(reward))
        dones.append(bool(terminated or truncated))
        if dones[-1]:
            return first, actions, rewards, dones, {k: float(info[k]) for k in EPISODE_METRICS}


@pytest.mark.parametrize(
    "agent_cls", [GenericAgent, RandomAgent, OracleAgent], ids=lambda cls: cls.__name__
)
def test_skyrl_episodes_equal_the_gymnasium_env(agent_cls, tmp_path):
    tasks = clarify_gym.load_tasks("sample", split="test")[:4]
    rows = [skyrl_row(r) for r in episode_rows(tasks, [0, 1], env_kwargs=ENV_KWARGS)]
    write_parquet(rows, tmp_path / "rows.parquet")  # the rows survive parquet
    all_metrics = []
    for row in rows:
        info = row["extra_info"]
        first, actions, rewards, dones, metrics = gym_episode(
            agent_cls(), info["task_id"], info["seed"]
        )
        extras = {k: v for k, v in row.items() if k not in ("prompt", "env_class")}
        env = skyrl_gym.make(row["env_class"], env_config={}, extras=extras)
        assert isinstance(env, skyrl.ProactiveGatherTextEnv)
        chat, _ = env.init(row["prompt"])
        assert chat == observation_to_messages(first) == row["prompt"]
        got_rewards, got_dones = [], []
        for action in actions:  # the agent's replies, replayed as the policy's text
            assert not env.get_metrics()
            out = env.step(action)
            got_rewards.append(out["reward"])
            got_dones.append(out["done"])
            if not out["done"]:
                assert [m["role"] for m in out["observations"]] == ["user"]
                chat += [{"role": "assistant", "content": action}, *out["observations"]]
            else:
                assert out["observations"] == []
        assert got_rewards == rewards and got_dones == dones and dones[-1]
        assert env.get_metrics() == metrics
        assert len(actions) <= env.max_turns == ENV_KWARGS["max_questions"] + 1
        with pytest.raises(RuntimeError, match="episode is over"):
            env.step("STOP")
        env.close()
        all_metrics.append(env.get_metrics())
    mean = skyrl.ProactiveGatherTextEnv.aggregate_metrics(all_metrics)
    assert mean["env/new_info"] == pytest.approx(
        sum(m["env/new_info"] for m in all_metrics) / len(all_metrics)
    )


def test_skyrl_env_reads_the_model_reply_and_config_overrides(tmp_path):
    row = skyrl_row(episode_rows(clarify_gym.load_tasks("sample", split="test")[:1], [3])[0])
    extras = {"extra_info": row["extra_info"]}
    env = skyrl_gym.make(
        "proactive_gather", env_config={"env_kwargs": {"max_questions": 1}}, extras=extras
    )
    env.init(row["prompt"])
    out = env.step(
        "<think>They left out the steps.</think>Question 1: What steps do experts follow?"
    )
    assert out["metadata"]["question"] == "What steps do experts follow?"
    assert out["done"] and env.max_turns == 2  # the budget of one question, from env_config
    with pytest.raises(KeyError, match=r"agents\.integrations\.dataset"):
        skyrl_gym.make("proactive_gather", extras={"extra_info": {}})
    skyrl.register()  # idempotent
