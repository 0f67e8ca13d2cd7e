"""The agent interface: ``reset(...)`` then ``act(observation) -> str``, one call per turn.

An agent reads the env's observation (the visible task and the dialogue so far, see
:mod:`clarify_gym.dialogue`) and returns one question, or ``"STOP"``. Whatever it remembers
between turns is its own explicit state, cleared by ``reset``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

from clarify_gym.masking import MaskedTask

__all__ = ["STOP", "Agent"]

STOP = "STOP"


class Agent(ABC):
    """Base class of every agent.

    Attributes:
        name: Short name used in benchmark results (e.g. ``"generic"``).
        privileged: True for agents that read the hidden task (the oracle upper bound).
    """

    name: str = "agent"
    privileged: bool = False

    def reset(self, *, seed: int | None = None, task: MaskedTask | None = None) -> None:  # noqa: B027
        """Start a new episode. ``seed`` seeds the agent's own RNG; ``task`` (the masked task,
        hidden part included) is passed by the harness and read only by privileged agents."""

    @abstractmethod
    def act(self, observation: str) -> str:
        """One question, or ``"STOP"``, for this observation."""

    def act_batch(self, observations: Sequence[str]) -> list[str]:
        """Act for several independent episodes at once; agents that batch (local models)
        override it. The default calls :meth:`act` in turn, which is only right for agents
        whose reply depends on the observation alone."""
        return [self.act(o) for o in observations]
