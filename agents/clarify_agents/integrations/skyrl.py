"""ProactiveGather as a SkyRL text env (``skyrl-gym``): train with SkyRL's critic PPO, LoRA on
policy and critic, each question's reward on that turn's last token.

:class:`ProactiveGatherTextEnv` is a ``skyrl_gym`` ``BaseTextEnv`` around the Gymnasium env
(``clarify_gym.DEFAULT_ENV_ID``, or ``ProactiveGather-LLM-v0`` for the LLM user, writer and judge). One
SkyRL env instance is one episode:

* ``init(prompt)`` resets the Gymnasium env on the row's task and seed and returns the first chat
  messages, exactly as the benchmark's chat agents see them
  (:func:`clarify_agents.prompts.observation_to_messages`); the row's own ``prompt`` (built the same way
  by :mod:`clarify_agents.integrations.dataset`) is only what SkyRL measures for its length filters.
* ``step(action)`` takes the model's whole reply, reads one question (or STOP) from it with
  :func:`clarify_agents.prompts.parse_reply`, steps the env, and returns the user's answer as the next
  user message, the env's reward for this turn, and ``done`` when the episode ended (STOP or the
  question budget). SkyRL puts each step's reward on that turn's last token.
* ``get_metrics()`` gives the episode metrics of the glossary (``env/new_info``, ...,
  ``eval/checklist_score``) once the episode is done; SkyRL averages them over a batch.

Importing this module registers the env with ``skyrl_gym`` as ``proactive_gather`` (the rows'
``env_class``). The episode settings come from the row's ``extra_info`` (task id, seed, env id,
env kwargs). SkyRL's own config has no section for a custom env ("Invalid fields"): run
:mod:`clarify_agents.integrations.skyrl_main`, whose config
(:class:`clarify_agents.integrations.skyrl_config.ProactiveGatherTrainConfig`) adds
``environment.skyrl_gym.proactive_gather.env_id`` and ``...env_kwargs``, which override the
rows'.

``generator.max_turns`` (SkyRL hands it to every env as ``extras["max_turns"]``) caps the model's
replies: at the last allowed reply the episode ends as if the model then said STOP (its reward
goes to that reply). Set it to at least ``max_questions + 1`` (the questions, then STOP) to let
the question budget end the episode; SkyRL's default, 1, allows a single question.

An example training command is in ``agents/clarify_agents/integrations/configs/skyrl_qwen2.5_7b_ppo_lora.sh``;
SkyRL registers the env in its entry point with ``register()`` (see
``docs/scaling_out.md``).
"""

from __future__ import annotations

from typing import Any

from clarify_agents.integrations.dataset import ENV_CLASS, episode_settings

try:
    from skyrl_gym.envs.base_text_env import BaseTextEnv, BaseTextEnvStepOutput
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        'clarify_agents.integrations.skyrl needs skyrl-gym: pip install "clarify-gym[skyrl]"'
    ) from exc

__all__ = ["ENTRY_POINT", "ProactiveGatherTextEnv", "env_config_dict", "register"]

ENTRY_POINT = "clarify_agents.integrations.skyrl:ProactiveGatherTextEnv"


class ProactiveGatherTextEnv(BaseTextEnv):
    """One ProactiveGather episode behind SkyRL's text-env API.

    Args:
        env_config: SkyRL's ``environment.skyrl_gym.proactive_gather`` (optional keys
            ``env_id`` and ``env_kwargs``, which override the row's).
        extras: The dataset row's other columns; ``extras["extra_info"]`` names the episode
            (see :func:`clarify_agents.integrations.dataset.episode_settings`).
    """

    def __init__(self, env_config: Any = None, extras: dict[str, Any] | None = None) -> None:
        super().__init__()
        import gymnasium as gym

        import clarify_gym  # noqa: F401  (registers the env ids)
        from clarify_gym.env import ProactiveGatherEnv

        extras = dict(extras or {})
        env_id, env_kwargs, self.task_id, self.seed = episode_settings(extras.get("extra_info"))
        config = env_config_dict(env_config)
        env_id = str(config.get("env_id") or env_id)
        env_kwargs = {**env_kwargs, **dict(config.get("env_kwargs") or {})}
        self.env = gym.make(env_id, **env_kwargs)
        game = self.env.unwrapped
        assert isinstance(game, ProactiveGatherEnv), f"{env_id} is not a ProactiveGather env"
        budget = game.max_questions + 1  # the questions, then STOP
        given = extras.get("max_turns")  # SkyRL's generator.max_turns
        if given is not None and int(given) < 1:
            raise ValueError(f"max_turns must be >= 1, got {given}")
        self.max_turns = budget if given is None else min(int(given), budget)
        self.done = False
        self.final_info: dict[str, Any] = {}

    def init(self, prompt: list[dict[str, str]]) -> tuple[list[dict[str, str]], dict[str, Any]]:
        """Reset on the row's task and seed; the first messages and the task id."""
        from clarify_agents.prompts import observation_to_messages

        obs, _ = self.env.reset(seed=self.seed, options={"task_id": self.task_id})
        self.turns, self.done, self.final_info = 0, False, {}
        return observation_to_messages(obs), {"task_id": self.task_id}

    def step(self, action: str) -> BaseTextEnvStepOutput:
        """One model reply: the user's answer, this turn's reward, and whether it ended."""
        from clarify_agents.prompts import parse_reply

        if self.done:
            raise RuntimeError("the episode is over: SkyRL makes a new env per trajectory")
        self.turns += 1
        question = parse_reply(action)
        _, reward, terminated, truncated, info = self.env.step(question)
        self.done = bool(terminated or truncated)
        if not self.done and self.turns >= self.max_turns:  # SkyRL's turn cap: STOP here
            _, stop_reward, terminated, truncated, info = self.env.step("STOP")
            reward, self.done = float(reward) + float(stop_reward), True
        observations: list[dict[str, str]] = []
        if self.done:
            self.final_info = info
        else:
            observations = [{"role": "user", "content": info["dialogue"][-1]["content"]}]
        return BaseTextEnvStepOutput(
            observations=observations,
            reward=float(reward),
            done=self.done,
            metadata={"question": question, "terminated": bool(terminated)},
        )

    def get_metrics(self) -> dict[str, Any]:
        """The glossary's episode metrics (empty until the episode is done)."""
        from clarify_gym.env import EPISODE_METRICS

        return {k: float(self.final_info[k]) for k in EPISODE_METRICS if k in self.final_info}

    def close(self) -> None:
        self.env.close()


def env_config_dict(env_config: Any) -> dict[str, Any]:
    """SkyRL's per-env config as a dict: ``None``, a dict, an OmegaConf ``DictConfig`` or the
    dataclass :mod:`~clarify_agents.integrations.skyrl_config` adds to SkyRL's config.

    >>> env_config_dict(None), env_config_dict({"env_id": "E-v0"})
    ({}, {'env_id': 'E-v0'})
    """
    import dataclasses

    if env_config is None:
        return {}
    if dataclasses.is_dataclass(env_config) and not isinstance(env_config, type):
        return dataclasses.asdict(env_config)
    if hasattr(env_config, "items"):
        return {str(k): v for k, v in env_config.items()}
    raise TypeError(f"env_config must be a mapping or a dataclass, got {type(env_config).__name__}")


def register(env_class: str = ENV_CLASS) -> None:
    """Register :class:`ProactiveGatherTextEnv` with ``skyrl_gym`` (again is a no-op)."""
    from skyrl_gym.envs.registration import register as skyrl_register
    from skyrl_gym.envs.registration import registry

    if env_class not in registry:
        skyrl_register(id=env_class, entry_point=ENTRY_POINT)


register()
