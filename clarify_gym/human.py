"""A person as the simulated user: :class:`HumanUser` shows each question and reads the answer.

A person cites no sentence ids, so the rewards of an episode answered by a person are
**estimates**: the answer text is matched against the task's numbered sentences by the same
BM25 scorer the offline user ranks them with (:class:`~clarify_gym.users.LexicalScorer`), and the
at most ``k`` sentences it matches above the scorer's bar count as cited. An answer that
paraphrases a hidden sentence therefore earns roughly what the offline user's verbatim answer
would; a reply like "no idea" cites nothing and earns nothing. The outline and checklist score
are computed as usual, from what the person typed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from clarify_gym.dialogue import EpisodeState
from clarify_gym.users import Answer, LexicalScorer

__all__ = ["HumanUser"]


def _read(prompt: str) -> str:
    try:
        return input(prompt)
    except EOFError:
        return ""


@dataclass
class HumanUser:
    """The user is a person at the terminal (see the module docstring for how answers score).

    Args:
        k: The most sentences one answer may count as citing.
        read: Shows a prompt and returns the person's reply (default: :func:`input`; end of
            input reads as an empty answer).
        show: Shows a line to the person (default: :func:`print`).
        scorer: Matches an answer to the task sentences.
    """

    k: int = 3
    read: Callable[[str], str] = _read
    show: Callable[[str], None] = print
    scorer: LexicalScorer = field(default_factory=LexicalScorer)

    def answer(self, question: str, state: EpisodeState) -> Answer:
        self.show(
            f"\nAssistant (question {state.questions_asked + 1} of {state.max_questions}): {question}"
        )
        text = " ".join(self.read("Your answer> ").split())
        if not text:
            return Answer("I don't think I have anything to add on that.", (), "nothing")
        cited = tuple(i for i, _ in self.scorer.rank(state.task, text, self.k))
        return Answer(text, cited, "answer" if cited else "nothing")
