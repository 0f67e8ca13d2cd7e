"""The agent interface: ``reset(...)`` then ``act(observation) -> str``, one call per turn.

An agent reads the env's observation (the visible task and the dialogue so far, see
:mod:`clarify_gym.dialogue`) and returns one question, or ``"STOP"``. Whatever it remembers
between turns is its own explicit state, cleared by ``reset``.

How a harness that runs many episodes (the benchmark, say) drives agents — the contract every
backend satisfies:

* **Unbatched agents** (``batched = False``, the default; baselines, API chat agents): the
  harness builds one instance per worker thread (N workers, N instances) and
  runs whole episodes on it, one after another: ``reset(seed=..., task=...)``, then ``act``
  until the episode ends. An instance is only ever used by one thread at a time, so its own
  state needs no lock; whatever instances share (an HTTP client, a response cache) must be
  thread-safe. ``act`` may block on the network: N workers overlap N episodes. An exception
  from ``act`` abandons that episode only (the harness may retry it later).
* **Batched agents** (``batched = True``; local models): one instance serves
  a batch of episodes in lock step through ``act_batch(observations, seeds=...)``,
  where ``seeds[i]`` is episode i's seed; the reply must depend on the observation and that
  seed alone (no per-episode state), and ``reset()`` is called once, without a task. An
  exception from ``act_batch`` stops the run (finished episodes are kept).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

from clarify_gym.dialogue import STOP
from clarify_gym.masking import MaskedTask

__all__ = ["STOP", "Agent"]


class Agent(ABC):
    """Base class of every agent.

    Attributes:
        name: Short name used in benchmark results (e.g. ``"generic"``).
        privileged: True for agents that read the hidden task (the oracle upper bound).
        batched: True for agents whose ``act_batch`` serves many episodes at once and whose
            reply depends on the observation (and the episode seed) alone (local models).
    """

    name: str = "agent"
    privileged: bool = False
    batched: bool = False

    def reset(self, *, seed: int | None = None, task: MaskedTask | None = None) -> None:  # noqa: B027
        """Start a new episode. ``seed`` seeds the agent's own RNG; ``task`` (the masked task,
        hidden part included) is passed by the harness and read only by privileged agents."""

    @abstractmethod
    def act(self, observation: str) -> str:
        """One question, or ``"STOP"``, for this observation."""

    def act_batch(
        self, observations: Sequence[str], *, seeds: Sequence[int] | None = None
    ) -> list[str]:
        """Act for several independent episodes at once; agents that batch (local models)
        override it, and use ``seeds`` (one per episode) when they sample. The default calls
        :meth:`act` in turn and ignores ``seeds``, which is only right for agents whose reply
        depends on the observation alone."""
        return [self.act(o) for o in observations]

    def describe(self) -> dict[str, Any]:
        """What a benchmark's ``metadata.json`` records about this agent (model, settings)."""
        return {}

    @classmethod
    def check_arguments(cls, **kwargs: Any) -> None:
        """Check constructor arguments without building the agent (cheap: no model is
        loaded), so that a harness can refuse a bad one before any episode runs; raise
        ``ValueError`` or ``FileNotFoundError`` naming it. The default checks nothing."""
        return None
