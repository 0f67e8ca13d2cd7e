"""ChatAgent: any OpenAI-compatible chat model (OpenAI, vLLM, Ollama, ...) as a ProactiveGather
agent, through the project's one LLM client (:class:`clarify_gym.llm.LLMClient`).

Each turn the env's observation becomes chat messages (:func:`clarify_agents.prompts.observation_to_messages`:
the shared system prompt, the task, the dialogue so far), the model's reply is parsed into one
question or STOP (:func:`clarify_agents.prompts.parse_reply`), and when the observation says no
questions are left the agent says STOP without calling the model.

Build one from a spec, as the benchmark registry does::

    agent = ChatAgent.from_spec("chat:gpt-4o-mini")                    # endpoint from env vars
    agent = ChatAgent.from_spec("chat:Qwen/Qwen2.5-7B-Instruct@http://localhost:8000/v1")
    agent = make_chat_agent("llama3.1:8b", base_url="http://localhost:11434/v1")

Endpoint, key and model come from the arguments, else ``CLARIFY_GYM_AGENT_*``, else
``CLARIFY_GYM_LLM_*`` / ``OPENAI_*`` (see :mod:`clarify_gym.llm`). Replies are cached like every
LLM call; with ``temperature > 0`` the episode seed given to :meth:`reset` is sent as the
request's ``seed`` (and so is part of the cache key), so different seeds sample differently and
the same seed replays.

Concurrency: :meth:`act` and :meth:`aact` are thread-/task-safe and depend only on the
observation and the seed. The per-episode state (``usage``, ``replies``) belongs to one episode,
so for episodes run at the same time give each its own :meth:`clone` (cheap: the clone shares
the client, its connection pool, concurrency limit and cache), or use :meth:`act_batch`, which
asks for several observations at once on threads.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from clarify_agents.base import STOP, Agent
from clarify_agents.prompts import SYSTEM_PROMPT, observation_to_messages, parse_reply
from clarify_gym.dialogue import parse_observation
from clarify_gym.llm import Completion, LLMClient, Usage
from clarify_gym.llm.schemas import AGENT_MAX_TOKENS
from clarify_gym.masking import MaskedTask

__all__ = ["ChatAgent", "budget_spent", "make_chat_agent"]

SPEC_PREFIX = "chat:"


def budget_spent(observation: str) -> bool:
    """Whether the observation's status says no questions are left.

    >>> budget_spent("## Task\\nx\\n\\n## Status\\nQuestions asked: 5 of 5. No questions left.")
    True
    >>> budget_spent("## Task\\nx\\n\\n## Status\\nQuestions asked: 1 of 5. Ask one question, or reply STOP.")
    False
    """
    return not parse_observation(observation).questions_left


class ChatAgent(Agent):
    """An OpenAI-compatible chat model as an agent (see the module docstring).

    Args:
        model: Model name as the endpoint knows it (``None``: from the environment).
        base_url: Endpoint URL ending in ``/v1`` (``None``: from the environment).
        api_key: API key (``None``: from the environment; local servers need none).
        client: An :class:`~clarify_gym.llm.LLMClient` to use instead of building one.
        temperature: Sampling temperature (0: greedy, the same reply every time).
        max_tokens: Most tokens per reply (``None``: ``CLARIFY_GYM_AGENT_MAX_TOKENS`` /
            ``CLARIFY_GYM_LLM_MAX_TOKENS``, then 512: room for a thinking block and a question).
        system_prompt: The system message (the shared :data:`clarify_agents.prompts.SYSTEM_PROMPT`).
        **config: Other :class:`~clarify_gym.llm.LLMConfig` fields (``timeout``,
            ``max_retries``, ``max_concurrency``, ``cache`` ...).
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        client: LLMClient | None = None,
        temperature: float = 0.0,
        max_tokens: int | None = None,
        system_prompt: str = SYSTEM_PROMPT,
        **config: Any,
    ) -> None:
        if client is None:
            client = LLMClient(
                role="agent",
                model=model,
                base_url=base_url,
                api_key=api_key,
                temperature=temperature,
                max_tokens=max_tokens,
                **config,
            )
        self.client = client
        self.system_prompt = system_prompt
        self.name = f"{SPEC_PREFIX}{client.config.model}" if client.config.model else "chat"
        self._lock = threading.Lock()
        self.reset()

    @classmethod
    def from_spec(cls, spec: str, **kwargs: Any) -> ChatAgent:
        """``"chat:<model>"`` or ``"chat:<model>@<base_url>"`` (the model may contain ``/``
        and ``:``, as ``Qwen/Qwen2.5-7B-Instruct`` and ``llama3.1:8b`` do).

        >>> agent = ChatAgent.from_spec("chat:llama3.1:8b@http://localhost:11434/v1", cache=False)
        >>> agent.name, agent.client.config.base_url
        ('chat:llama3.1:8b', 'http://localhost:11434/v1')
        """
        if not spec.startswith(SPEC_PREFIX):
            raise ValueError(f"a chat agent spec starts with {SPEC_PREFIX!r}, got {spec!r}")
        model, at, url = spec[len(SPEC_PREFIX) :].partition("@")
        if at and not url.startswith(("http://", "https://")):
            model, url = spec[len(SPEC_PREFIX) :], ""
        if url:
            kwargs.setdefault("base_url", url)
        return cls(model or None, **kwargs)

    def clone(self) -> ChatAgent:
        """A fresh agent for another concurrent episode, sharing this one's client."""
        return ChatAgent(client=self.client, system_prompt=self.system_prompt)

    def reset(self, *, seed: int | None = None, task: MaskedTask | None = None) -> None:
        self.seed = seed
        #: Tokens and calls of this episode.
        self.usage = Usage()
        #: The model's raw replies this episode, in order.
        self.replies: list[str] = []

    def messages(self, observation: str) -> list[dict[str, str]]:
        """The chat sent to the model for ``observation``."""
        return observation_to_messages(observation, system_prompt=self.system_prompt)

    def describe(self) -> dict[str, Any]:
        """What ``metadata.json`` records: the resolved model (asked of ``/v1/models`` when not
        set), the one the server reported, base URL, sampling settings and limits (no key)."""
        info = self.client.describe()
        info["max_tokens"] = info.get("max_tokens") or AGENT_MAX_TOKENS
        return info

    def _params(self) -> dict[str, Any]:
        sampling = self.client.config.temperature > 0 and self.seed is not None
        params: dict[str, Any] = {"default_max_tokens": AGENT_MAX_TOKENS}
        return {**params, "seed": self.seed} if sampling else params

    def _record(self, completion: Completion) -> str:
        with self._lock:
            self.usage.add(completion.usage)
            self.replies.append(completion.text)
        return parse_reply(completion.text)

    def act(self, observation: str) -> str:
        if budget_spent(observation):
            return STOP
        return self._record(self.client.complete(self.messages(observation), **self._params()))

    async def aact(self, observation: str) -> str:
        """:meth:`act` with asyncio, for harnesses that run many episodes in one event loop."""
        if budget_spent(observation):
            return STOP
        completion = await self.client.acomplete(self.messages(observation), **self._params())
        return self._record(completion)

    def act_batch(
        self, observations: Sequence[str], *, seeds: Sequence[int] | None = None
    ) -> list[str]:
        """Replies for several independent episodes, requested at the same time (bounded by the
        client's ``max_concurrency``); the seed is the agent's own (see :meth:`reset`)."""
        if len(observations) <= 1:
            return [self.act(o) for o in observations]
        workers = min(len(observations), self.client.config.max_concurrency or 1)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(self.act, observations))


def make_chat_agent(
    model: str | None = None, base_url: str | None = None, **kwargs: Any
) -> ChatAgent:
    """A :class:`ChatAgent` for ``model`` at ``base_url`` (``None``: from the environment).

    ``model`` may end in ``@<base_url>`` as in the ``chat:`` agent spec (this is the factory the
    agent registry calls for ``chat:<model>[@<base_url>]``).

    >>> make_chat_agent("Qwen/Qwen2.5-7B-Instruct@http://localhost:8000/v1", cache=False).client.config.base_url
    'http://localhost:8000/v1'
    """
    if model and base_url is None:
        return ChatAgent.from_spec(SPEC_PREFIX + model, **kwargs)
    return ChatAgent(model, base_url=base_url, **kwargs)
