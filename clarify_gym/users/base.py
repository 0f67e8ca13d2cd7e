"""What every simulated user is: :class:`SimulatedUser` answers a question with an :class:`Answer`.

A user implements ``answer(question, state) -> Answer``: the answer carries its text and the ids
of the task sentences it draws on (A(q) in the paper). The env turns cited ids into rewards, so
the citations, not the wording, are what is scored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from clarify_gym.dialogue import EpisodeState

__all__ = ["Answer", "SimulatedUser"]


@dataclass(frozen=True)
class Answer:
    """What the user said and which task sentences it draws on.

    Attributes:
        text: The answer as the assistant reads it.
        cited_ids: Ids of the task sentences the answer draws on (A(q)).
        kind: ``"answer"`` (reveals hidden sentences), ``"pointer"`` (points back to the visible
            task), ``"nothing"`` (nothing relevant), ``"error"`` (the user failed; LLM users).
        error: What went wrong when ``kind == "error"``.
        usage: Token usage of an LLM user, else ``None``.
    """

    text: str
    cited_ids: tuple[int, ...] = ()
    kind: str = "answer"
    error: str | None = None
    usage: dict[str, int] | None = None


@runtime_checkable
class SimulatedUser(Protocol):
    """Anything that answers a question about a masked task."""

    def answer(self, question: str, state: EpisodeState) -> Answer:
        """Answer ``question`` given the episode so far (``state.task`` is the masked task)."""
        ...
