"""Episode state (the dialogue so far) and the observation text an LLM reads.

The observation format is stable and documented here, once:

.. code-block:: text

    ## Task
    <the visible task: objective, input sections, the concrete input>

    ## Conversation
    Assistant: <question 1>
    User: <answer 1>
    ...

    ## Status
    Questions asked: 1 of 5. Ask one question, or reply STOP to start writing.

Before the first question the conversation reads ``(no questions yet)``.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field

from clarify_gym.masking import MaskedTask

__all__ = ["ASCII_CHARSET", "EpisodeState", "Turn", "format_observation", "sanitize"]

#: Printable ASCII plus newline: always in the observation and action charset.
ASCII_CHARSET = frozenset(chr(c) for c in range(32, 127)) | {"\n"}
#: Characters common in professional text, accepted in every env's charset.
EXTRA_CHARSET = frozenset(
    "–—‘’“”…•°±×÷µ€£¥§¶©®™²³½¼¾éèêëáàâäãåçíìîïñóòôöõúùûüýÿÉÈÁÀÇÑÓÖÜßæøÅØ≤≥≈≠→←✓"
)


@dataclass(frozen=True)
class Turn:
    """One question and what came of it."""

    question: str
    answer: str
    cited_ids: tuple[int, ...] = ()
    new_hidden_ids: tuple[int, ...] = ()
    reward: float = 0.0
    invalid: str | None = None
    #: Why the user could not answer (an LLM oracle's unusable reply), else ``None``.
    user_error: str | None = None


@dataclass
class EpisodeState:
    """Everything an episode has accumulated; the user, writer and judge read it."""

    task: MaskedTask
    max_questions: int
    turns: list[Turn] = field(default_factory=list)
    elicited: set[int] = field(default_factory=set)

    @property
    def questions_asked(self) -> int:
        """Questions asked so far, invalid ones included (each one uses a turn)."""
        return len(self.turns)

    @property
    def questions_left(self) -> int:
        """Questions the budget still allows."""
        return self.max_questions - len(self.turns)

    def messages(self) -> list[dict[str, str]]:
        """The dialogue as chat messages: the assistant asks, the user answers."""
        out: list[dict[str, str]] = []
        for turn in self.turns:
            out.append({"role": "assistant", "content": turn.question})
            out.append({"role": "user", "content": turn.answer})
        return out


def sanitize(text: str, charset: frozenset[str], *, replacement: str = "?") -> str:
    """Make ``text`` fit ``charset``: NFKC-normalise, turn control characters into spaces and
    any other unknown character into ``replacement``.

    >>> sanitize("Caf\\u00e9\\tbar\\x00\\U0001F600", ASCII_CHARSET)
    'Cafe bar ?'
    """
    if charset.issuperset(text):
        return text
    normalised = unicodedata.normalize("NFKC", text)
    out = []
    for ch in normalised:
        if ch in charset:
            out.append(ch)
        elif unicodedata.category(ch)[0] in ("C", "Z"):  # control, format, separators
            out.append(" ")
        else:
            decomposed = unicodedata.normalize("NFKD", ch).encode("ascii", "ignore").decode()
            out.append(
                decomposed if decomposed and all(c in charset for c in decomposed) else replacement
            )
    return "".join(out)


def build_charset(texts: Iterable[str]) -> frozenset[str]:
    """ASCII, common typography, and every character that appears in ``texts``."""
    chars = set(ASCII_CHARSET | EXTRA_CHARSET)
    for text in texts:
        chars.update(text)
    chars.discard("\r")
    return frozenset(chars)


def format_conversation(turns: Iterable[Turn]) -> str:
    """The ``Assistant:`` / ``User:`` lines of the dialogue."""
    lines = []
    for turn in turns:
        lines.append(f"Assistant: {turn.question}")
        lines.append(f"User: {turn.answer}")
    return "\n".join(lines) if lines else "(no questions yet)"


def format_observation(state: EpisodeState, *, conversation: str | None = None) -> str:
    """The observation string for ``state`` (see the module docstring for the format)."""
    convo = format_conversation(state.turns) if conversation is None else conversation
    if state.questions_left > 0:
        status = (
            f"Questions asked: {state.questions_asked} of {state.max_questions}. "
            "Ask one question, or reply STOP to start writing."
        )
    else:
        status = (
            f"Questions asked: {state.questions_asked} of {state.max_questions}. No questions left."
        )
    return f"## Task\n{state.task.visible_text}\n\n## Conversation\n{convo}\n\n## Status\n{status}"
