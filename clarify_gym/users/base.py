"""What every simulated user is: :class:`SimulatedUser` answers a question with an :class:`Answer`.

A user implements ``answer(question, state) -> Answer``: the answer carries its text and the ids
of the task sentences it draws on (A(q) in the paper). The env turns cited ids into rewards, so
the citations, not the wording, are what is scored.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from clarify_gym.dialogue import EpisodeState

__all__ = ["Answer", "SimulatedUser", "as_sentence_id", "clean_citations"]


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


def as_sentence_id(value: Any) -> int | None:
    """A cited value as a sentence id (a number or a digit string), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().strip("[]").isdigit():
        return int(value.strip().strip("[]"))
    return None


def clean_citations(
    ids: Iterable[Any], *, valid: int | Collection[int], k: int | None = None
) -> tuple[int, ...]:
    """The sentence ids a user (or an LLM) cited, cleaned the one way every caller needs:
    numbers and digit strings (``"7"``, ``"[2]"``) read as ids; anything else, ids outside
    ``valid`` (a sentence count, or the allowed ids) and repeats dropped; order kept; at most
    ``k``.

    >>> clean_citations([5, "7", "[2]", 99, 5, "x", True], valid=10, k=2)
    (5, 7)
    >>> clean_citations([4, 99, "4"], valid={4})
    (4,)
    """
    inside = (lambda i: 0 <= i < valid) if isinstance(valid, int) else valid.__contains__
    out = tuple(dict.fromkeys(i for i in map(as_sentence_id, ids) if i is not None and inside(i)))
    return out if k is None else out[:k]
