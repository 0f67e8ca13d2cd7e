"""The SkyRL adapter: whole episodes through ``skyrl_gym``'s env API equal the Gymnasium env's;
the example command and the env section go through SkyRL's own config loader
(``SkyRLTrainConfig.from_cli_overrides``) and reach the env as SkyRL's generator hands them over;
``generator.max_turns`` (SkyRL's ``extras["max_turns"]``) is honoured."""

from __future__ import annotations

import shlex
import sys
import typing
from importlib.util import find_spec
from pathlib import Path

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
    env = gym.make(clarify_gym.DEFAULT_ENV_ID, **ENV_KWARGS)
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


def test_max_turns_from_skyrl_caps_the_replies():
    """SkyRL passes generator.max_turns to every env as extras["max_turns"] (its default is
    1); the env used to ignore it. At the last allowed reply the episode ends as if the model
    then said STOP, and that reward goes to the reply."""
    row = skyrl_row(episode_rows(clarify_gym.load_tasks("sample", split="test")[:1], [0])[0])
    info = row["extra_info"]
    agent = GenericAgent()
    _, actions, _, _, _ = gym_episode(agent, info["task_id"], info["seed"])
    env = skyrl_gym.make(
        "proactive_gather", env_config={}, extras={"extra_info": info, "max_turns": 2}
    )
    env.init(row["prompt"])
    first, second = env.step(actions[0]), env.step(actions[1])
    assert not first["done"] and second["done"] and env.max_turns == 2
    reference = gym.make(clarify_gym.DEFAULT_ENV_ID)
    reference.reset(seed=info["seed"], options={"task_id": info["task_id"]})
    expected = [float(reference.step(a)[1]) for a in (actions[0], actions[1], "STOP")]
    assert [first["reward"], second["reward"]] == pytest.approx([expected[0], sum(expected[1:])])
    assert env.get_metrics()["env/questions"] == 2
    wide = skyrl_gym.make("proactive_gather", extras={"extra_info": info, "max_turns": 50})
    assert wide.max_turns == 5 + 1  # the question budget still ends the episode
    with pytest.raises(ValueError, match="max_turns must be >= 1"):
        skyrl_gym.make("proactive_gather", extras={"extra_info": info, "max_turns": 0})


# ---- SkyRL's config loader (skyrl, the trainer package) ----------------------------------------

needs_skyrl = pytest.mark.skipif(
    find_spec("skyrl") is None, reason="SkyRL's trainer package is optional (scripts/setup)"
)
SCRIPT = (
    Path(__file__).resolve().parents[2]
    / "agents/clarify_agents/integrations/configs/skyrl_qwen2.5_7b_ppo_lora.sh"
)


@pytest.fixture(scope="module")
def skyrl_config():
    """SkyRL's config module. skyrl 0.3.0 declares Python >= 3.11, but on 3.11 pydantic refuses
    the ``typing.TypedDict`` of ``skyrl.tinker.types``, which SkyRL's config imports when it
    builds a config; Python 3.12's ``typing.TypedDict`` is what ``typing_extensions`` provides,
    so it stands in while SkyRL is imported."""
    import typing_extensions

    saved = typing.TypedDict
    if sys.version_info < (3, 12):
        typing.TypedDict = typing_extensions.TypedDict  # type: ignore[misc]
    try:
        from skyrl.train.config import SkyRLTrainConfig

        SkyRLTrainConfig.from_cli_overrides([])  # imports what building a config needs
        from clarify_agents.integrations import skyrl_config
    finally:
        typing.TypedDict = saved
    return SkyRLTrainConfig, skyrl_config.ProactiveGatherTrainConfig


def script_overrides() -> list[str]:
    text = SCRIPT.read_text()
    command = text[text.index("python -m clarify_agents.integrations.skyrl_main") :]
    command = command.replace('"$@"', "").replace("$data", "/data").replace("$gpus", "8")
    command = command.replace("$HOME", "/home/u")
    return shlex.split(command.replace("\\\n", " "))[3:]


@needs_skyrl
def test_example_command_and_env_section_go_through_skyrls_config_loader(skyrl_config, tmp_path):
    """The env section SkyRL's own config rejects ("Invalid fields") is accepted by ours, and
    reaches the env the way SkyRL's generator hands it over (getattr(skyrl_gym_cfg, env_class)
    and extras["max_turns"] = generator.max_turns, skyrl/train/generators/skyrl_gym_generator.py)."""
    base, ours = skyrl_config
    section = [
        f"environment.skyrl_gym.proactive_gather.env_id={clarify_gym.DEFAULT_ENV_ID}",
        "environment.skyrl_gym.proactive_gather.env_kwargs.max_questions=2",
    ]
    with pytest.raises(ValueError, match="Invalid fields"):
        base.from_cli_overrides(section)
    overrides = script_overrides()
    assert len(overrides) > 40 and "generator.max_turns=6" in overrides
    cfg = ours.from_cli_overrides([*overrides, *section])
    assert cfg.environment.env_class == "proactive_gather" and cfg.generator.max_turns == 6
    assert cfg.trainer.algorithm.advantage_estimator == "gae"
    assert cfg.trainer.policy.model.lora.rank == 32 == cfg.trainer.critic.model.lora.rank
    assert cfg.data.train_data == ["/data/train.parquet"]

    row = skyrl_row(episode_rows(clarify_gym.load_tasks("sample", split="test")[:1], [1])[0])
    env_extras = {k: v for k, v in row.items() if k not in ("prompt", "env_class")}
    env_extras["max_turns"] = cfg.generator.max_turns  # as SkyRL's generator does
    env_config = getattr(cfg.environment.skyrl_gym, row["env_class"], dict())
    env = skyrl_gym.make(row["env_class"], env_config=env_config, extras=env_extras)
    env.init(row["prompt"])
    assert env.env.unwrapped.max_questions == 2 and env.max_turns == 3
    dones = [env.step(q)["done"] for q in ("What steps?", "What format?")]
    assert dones == [False, True]  # the budget of the config's env section
