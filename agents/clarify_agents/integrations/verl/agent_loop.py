"""ProactiveGather as a verl AgentLoop (verl 0.9.1, ``verl.experimental.agent_loop``).

verl's rollout calls ``run(sampling_params, **row)`` once per dataset row whose ``agent_name``
is ``proactive_gather``. :class:`ProactiveGatherAgentLoop` plays that row's episode (task id and
seed from ``extra_info``, see :mod:`clarify_agents.integrations.dataset`):

1. reset the Gymnasium env; the first chat messages are the env's first observation as the
   benchmark's chat agents see it (:func:`clarify_agents.prompts.observation_to_messages`), tokenized
   with verl's Continuous Token builder (the prompt);
2. generate one reply through verl's server manager (token in, token out: the sampled ids are
   kept as they are, mask 1, with their log-probs);
3. read one question (or STOP) from the reply (:func:`clarify_agents.prompts.parse_reply`), step the env,
   and record the turn's reward and the index of the reply's last token;
4. unless the episode ended (STOP, question budget, or no room left in ``response_length``),
   append the user's answer as a user message (mask 0: the user's tokens are not trained on)
   and go to 2.

The output's ``reward_score`` is the episode return, which verl alone would put on the last
token; ``extra_fields`` carry ``turn_ends`` and ``turn_rewards``, and each question's reward is
placed on that question's last token
(:func:`clarify_agents.integrations.verl.rewards.turn_token_rewards`) by whichever trainer runs:

* verl 0.9.1's default trainer (``trainer.use_v1=true``) reads the token scores of
  ``AgentLoopOutput.as_dict()``; the loop returns a :class:`ProactiveGatherOutput`, whose
  ``as_dict`` writes the per-question ``rm_scores``. Nothing else to set.
* the legacy trainer (``trainer.use_v1=false``) pads and batches the outputs in its workers:
  :class:`ProactiveGatherAgentLoopManager` (``rollout.agent.agent_loop_manager_class``) runs
  workers that rewrite ``rm_scores`` the same way. Under ``use_v1=true`` that manager builds
  verl's own v1 manager instead, so the example command works with either trainer.

The episode metrics (``env/new_info``, ..., ``eval/checklist_score``) go to
``extra_fields["episode_metrics"]``. The loop stops (STOP, rewarded on the last question) as soon
as the response is full, after a reply or after a user's answer, so every question's reward
sits on a policy token inside ``response_length``.

Envs are pooled per worker process (verl builds one AgentLoop per trajectory); env steps run in
the event loop's executor, so the LLM env's HTTP calls do not block other trajectories.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any
from uuid import uuid4

from verl.experimental.agent_loop.agent_loop import (
    AgentLoopBase,
    AgentLoopManager,
    AgentLoopMetrics,
    AgentLoopOutput,
    AgentLoopWorker,
    register,
)
from verl.utils.profiler import simple_timer
from verl.utils.ray_utils import auto_await

from clarify_agents.integrations.dataset import AGENT_NAME, episode_settings
from clarify_agents.integrations.verl.rewards import (
    last_policy_token,
    place_turn_rewards,
    turn_token_rewards,
)

__all__ = [
    "ProactiveGatherAgentLoop",
    "ProactiveGatherAgentLoopManager",
    "ProactiveGatherAgentLoopWorker",
    "ProactiveGatherOutput",
    "uses_v1_trainer",
]

logger = logging.getLogger(__name__)

_POOL: dict[str, list[Any]] = {}
_POOL_LOCK = threading.Lock()


def _take_env(env_id: str, env_kwargs: dict[str, Any]) -> tuple[str, Any]:
    import gymnasium as gym

    import clarify_gym  # noqa: F401  (registers the env ids)

    key = json.dumps([env_id, env_kwargs], sort_keys=True, default=str)
    with _POOL_LOCK:
        free = _POOL.setdefault(key, [])
        if free:
            return key, free.pop()
    return key, gym.make(env_id, **env_kwargs)


def _give_env(key: str, env: Any) -> None:
    with _POOL_LOCK:
        _POOL.setdefault(key, []).append(env)


class ProactiveGatherOutput(AgentLoopOutput):
    """verl's ``AgentLoopOutput`` whose token scores put each question's reward on that
    question's last token: ``as_dict()`` (what verl's v1 trainer stores and reads as
    ``rm_scores``) holds :func:`turn_token_rewards` instead of the whole return on the last
    token. The sum is the same."""

    def as_dict(self) -> dict[str, Any]:
        import torch

        output = super().as_dict()
        turn_ends = self.extra_fields.get("turn_ends")
        if "rm_scores" in output and turn_ends is not None:
            rewards = turn_token_rewards(
                len(self.response_ids), turn_ends, self.extra_fields["turn_rewards"]
            )
            output["rm_scores"] = torch.tensor(rewards, dtype=torch.float32)
        return output


@register(AGENT_NAME)
class ProactiveGatherAgentLoop(AgentLoopBase):
    """One ProactiveGather episode through verl's server manager.

    Args (besides verl's): ``env_id`` and ``env_kwargs`` override the row's (set them in the
    agent-loop YAML, next to ``_target_``).
    """

    def __init__(
        self,
        *args: Any,
        env_id: str | None = None,
        env_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.env_id = env_id
        self.env_kwargs = dict(env_kwargs or {})
        self.response_length = self.rollout_config.response_length

    async def _env(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return await self.loop.run_in_executor(None, lambda: fn(*args, **kwargs))

    async def run(self, sampling_params: dict[str, Any], **kwargs: Any) -> AgentLoopOutput:
        from clarify_agents.prompts import observation_to_messages, parse_reply
        from clarify_gym.env import EPISODE_METRICS

        env_id, env_kwargs, task_id, seed = episode_settings(kwargs.get("extra_info"))
        env_id = self.env_id or env_id
        env_kwargs = {**env_kwargs, **self.env_kwargs}
        key, env = _take_env(env_id, env_kwargs)
        try:
            obs, _ = await self._env(env.reset, seed=seed, options={"task_id": task_id})
            messages = observation_to_messages(obs)
            prompt_ids = await self.ct_build_initial_tokens(messages)
            tokens = list(prompt_ids)
            mask: list[int] = []
            logprobs: list[float] | None = None
            turn_ends: list[int] = []
            turn_rewards: list[float] = []
            metrics: dict[str, Any] = {"generate_sequences": 0.0, "tool_calls": 0.0}
            request_id = uuid4().hex
            info: dict[str, Any] = {}
            while True:
                # 2. one reply, token in, token out
                with simple_timer("generate_sequences", metrics):
                    output = await self.server_manager.generate(
                        request_id=request_id, prompt_ids=tokens, sampling_params=sampling_params
                    )
                if output.log_probs and logprobs is None:
                    logprobs = [0.0] * len(mask)
                merged, mask, logprobs = await self.ct_merge_assistant_token(
                    tokens,
                    output.token_ids,
                    mask,
                    logprobs,
                    assistant_logprobs=output.log_probs or None,
                )
                tokens = merged.token_ids
                tokenizer: Any = self.tokenizer  # verl types it as the AutoTokenizer factory
                reply = tokenizer.decode(output.token_ids, skip_special_tokens=True)
                # 3. the env's answer and this turn's reward
                with simple_timer("tool_calls", metrics):
                    _, reward, terminated, truncated, info = await self._env(
                        env.step, parse_reply(reply)
                    )
                turn_ends.append(last_policy_token(mask))
                turn_rewards.append(float(reward))
                if terminated or truncated:
                    break
                if len(mask) >= self.response_length:  # no room for another question
                    _, reward, _, _, info = await self._env(env.step, "STOP")
                    turn_rewards[-1] += float(reward)
                    break
                # 4. the user's answer: context tokens, mask 0
                previous = [*messages, {"role": "assistant", "content": reply}]
                messages = [*previous, {"role": "user", "content": info["dialogue"][-1]["content"]}]
                merged, mask, logprobs = await self.ct_merge_context_msg(
                    previous, messages, tokens, mask, logprobs
                )
                tokens = merged.token_ids
                if len(mask) >= self.response_length:  # the answer filled the response: STOP
                    _, reward, _, _, info = await self._env(env.step, "STOP")
                    turn_rewards[-1] += float(reward)  # on the last question's own last token
                    break
        finally:
            _give_env(key, env)

        response_ids = tokens[len(tokens) - len(mask) :]
        limit = self.response_length
        return ProactiveGatherOutput(
            prompt_ids=tokens[: len(tokens) - len(mask)],
            response_ids=response_ids[:limit],
            response_mask=mask[:limit],
            response_logprobs=logprobs[:limit] if logprobs else None,
            reward_score=sum(turn_rewards),
            num_turns=2 * len(turn_ends) + 1,
            metrics=AgentLoopMetrics(**metrics),
            extra_fields={
                "turn_ends": turn_ends,
                "turn_rewards": turn_rewards,
                "turn_scores": turn_rewards,
                "tool_rewards": [],
                "episode_metrics": {k: float(info[k]) for k in EPISODE_METRICS if k in info},
                "task_id": task_id,
            },
        )


class ProactiveGatherAgentLoopWorker(AgentLoopWorker):
    """verl's AgentLoopWorker, with each question's reward on that question's last token."""

    def _postprocess(self, inputs: list[Any], *args: Any, **kwargs: Any) -> Any:
        output = super()._postprocess(inputs, *args, **kwargs)
        scores = output.batch.get("rm_scores", None)  # present when every trajectory has a score
        if scores is not None:
            prompt_length = output.batch["prompts"].size(1)
            lengths = output.batch["attention_mask"][:, prompt_length:].sum(dim=1).tolist()
            output.batch["rm_scores"] = place_turn_rewards(
                scores, lengths, [i.extra_fields for i in inputs]
            )
        return output


def uses_v1_trainer(config: Any) -> bool:
    """Whether verl's config selects its v1 trainer (``trainer.use_v1``, true by default in
    verl 0.9.1's ``ppo_trainer.yaml``)."""
    trainer = config.get("trainer") if hasattr(config, "get") else None
    return bool(trainer.get("use_v1", False)) if trainer is not None else False


class ProactiveGatherAgentLoopManager(AgentLoopManager):
    """verl's AgentLoopManager running :class:`ProactiveGatherAgentLoopWorker` workers (the
    legacy trainer, ``trainer.use_v1=false``). Under the v1 trainer :meth:`create` builds
    verl's own ``AgentLoopManagerTQ``: there the loop's :class:`ProactiveGatherOutput` already
    carries the per-question token scores."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        import ray

        self.agent_loop_workers_class = ray.remote(ProactiveGatherAgentLoopWorker)
        super().__init__(*args, **kwargs)

    @classmethod
    @auto_await
    async def create(cls, *args: Any, **kwargs: Any) -> Any:
        """The manager for the trainer the config selects (as verl's ``create``)."""
        config = kwargs["config"] if "config" in kwargs else args[0]
        if uses_v1_trainer(config):
            from verl.trainer.ppo.v1.agent_loop_tq import AgentLoopManagerTQ

            logger.info("trainer.use_v1: verl's AgentLoopManagerTQ, per-question scores")
            instance: AgentLoopManager = AgentLoopManagerTQ(*args, **kwargs)
        else:
            instance = cls(*args, **kwargs)
        await instance._init_agent_loop_workers()
        return instance
