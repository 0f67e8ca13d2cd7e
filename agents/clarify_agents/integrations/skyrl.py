"""ProactiveGather as a SkyRL text env (``skyrl-gym``): train with SkyRL's critic PPO, LoRA on
policy and critic, each question's reward on that turn's last token.

:class:`ProactiveGatherTextEnv` is a ``skyrl_gym`` ``BaseTextEnv`` around the Gymnasium env
(``ProactiveGather-v0``, or ``ProactiveGather-LLM-v0`` for the LLM user, writer and judge). One
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
env kwargs); ``environment.skyrl_gym.proactive_gather`` in SkyRL's config, when set, overrides the
env id and kwargs. Set ``generator.max_turns`` to at least ``max_questions + 1`` (the STOP turn).

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

__all__ = ["ENTRY_POINT", "ProactiveGatherTextEnv", "register"]

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
        config = dict(env_config or {})
        env_id = str(config.get("env_id") or env_id)
        env_kwargs = {**env_kwargs, **dict(config.get("env_kwargs") or {})}
        self.env = gym.make(env_id, **env_kwargs)
        game = self.env.unwrapped
        assert isinstance(game, ProactiveGatherEnv), f"{env_id} is not a ProactiveGather env"
        self.max_turns = game.max_questions + 1  # the questions, then STOP
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


def register(env_class: str = ENV_CLASS) -> None:
    """Register :class:`ProactiveGatherTextEnv` with ``skyrl_gym`` (again is a no-op)."""
    from skyrl_gym.envs.registration import register as skyrl_register
    from skyrl_gym.envs.registration import registry

    if env_class not in registry:
        skyrl_register(id=env_class, entry_point=ENTRY_POINT)


register()
