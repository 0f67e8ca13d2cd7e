"""What the end of an episode needs: a :class:`Writer` drafts the outline, a :class:`Judge`
scores it on the checklist (:class:`JudgeResult`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from clarify_gym.dialogue import Turn
from clarify_gym.masking import MaskedTask

__all__ = ["Judge", "JudgeResult", "Writer"]


@dataclass(frozen=True)
class JudgeResult:
    """The judge's verdict on one outline."""

    score: float
    met: tuple[bool, ...]
    usage: dict[str, int] | None = None
    error: str | None = None
    #: The items judged, when they are not the task's own checklist (an LLM-built one).
    items: tuple[str, ...] | None = None


@runtime_checkable
class Writer(Protocol):
    """Drafts the final outline from the visible task and the dialogue."""

    def write(self, task: MaskedTask, turns: Sequence[Turn]) -> str:
        """The outline (plain text or markdown)."""
        ...


@runtime_checkable
class Judge(Protocol):
    """Marks each checklist item of the task met or not in an outline."""

    def judge(self, task: MaskedTask, outline: str) -> JudgeResult:
        """The verdict (``score`` is the fraction of items met)."""
        ...
