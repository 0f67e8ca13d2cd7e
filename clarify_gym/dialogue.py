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
:func:`format_observation` writes it and :func:`parse_observation` reads it back: every agent,
wrapper and adapter that needs a part of an observation goes through the parser.

Also here, once: :data:`STOP`, the action that ends the questions, and
:func:`strip_thinking`, which drops the thinking blocks reasoning models write.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from clarify_gym.llm.reply import strip_thinking
from clarify_gym.masking import MaskedTask

__all__ = [
    "ASCII_CHARSET",
    "STOP",
    "EpisodeState",
    "Observation",
    "Turn",
    "format_observation",
    "parse_observation",
    "sanitize",
    "strip_thinking",
]

#: The action that ends the questions (the env accepts it in any case; see ``is_stop``).
STOP = "STOP"
TASK_HEADER = "## Task\n"
CONVERSATION_HEADER = "\n\n## Conversation\n"
STATUS_HEADER = "\n\n## Status\n"
NO_QUESTIONS_YET = "(no questions yet)"
NO_QUESTIONS_LEFT = "No questions left."

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
    """Everything an episode has accumulated (the env keeps no other per-episode state); the
    user, writer and judge read it."""

    task: MaskedTask
    max_questions: int
    turns: list[Turn] = field(default_factory=list)
    elicited: set[int] = field(default_factory=set)
    #: The ``Assistant:``/``User:`` lines of the observation, built as the turns come.
    conversation: str = ""
    #: Reward weight per hidden sentence id (``sentence_weights``); None: equal weights.
    weights: dict[int, float] | None = None
    #: The paper's binary reward summed over the questions so far.
    paper_total: float = 0.0
    #: Token usage of the episode's LLM parts (user, writer, judge), summed.
    llm_usage: dict[str, int] = field(default_factory=dict)
    #: The end-of-episode checklist bonus (0 until the episode ends).
    bonus: float = 0.0
    #: Whether the episode has ended (STOP or the budget spent).
    done: bool = False
    #: The info of the last step (the final one holds the outline and the metrics).
    last_info: dict[str, Any] = field(default_factory=dict)

    @property
    def episode_return(self) -> float:
        """The sum of the rewards paid so far: every question's, then the checklist bonus."""
        return sum(t.reward for t in self.turns) + self.bonus

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
    return "\n".join(lines) if lines else NO_QUESTIONS_YET


def format_observation(state: EpisodeState, *, conversation: str | None = None) -> str:
    """The observation string for ``state`` (see the module docstring for the format)."""
    convo = format_conversation(state.turns) if conversation is None else conversation
    if state.questions_left > 0:
        status = (
            f"Questions asked: {state.questions_asked} of {state.max_questions}. "
            "Ask one question, or reply STOP to start writing."
        )
    else:
        status = f"Questions asked: {state.questions_asked} of {state.max_questions}. {NO_QUESTIONS_LEFT}"
    return (
        f"{TASK_HEADER}{state.task.visible_text}{CONVERSATION_HEADER}{convo}{STATUS_HEADER}{status}"
    )


@dataclass(frozen=True)
class Observation:
    """An observation read back into its parts (see :func:`parse_observation`)."""

    visible_task: str
    questions: tuple[str, ...] = ()
    answers: tuple[str, ...] = ()
    max_questions: int | None = None
    questions_left: bool = True

    def exchanges(self) -> list[tuple[str, str]]:
        """The ``(question, answer)`` pairs, in order."""
        return list(zip(self.questions, self.answers, strict=False))


_BUDGET = re.compile(r"Questions asked: \d+ of (\d+)\.")


def parse_observation(observation: str) -> Observation:
    """The parts of an observation :func:`format_observation` wrote (the one parser of it).

    A part that is missing (a partial observation, e.g. a prompt built from the task alone)
    reads as empty: no dialogue, an unknown budget.

    >>> obs = ("## Task\\nWrite a memo.\\n\\n## Conversation\\nAssistant: Who reads it?\\n"
    ...        "User: The partner.\\n\\n## Status\\nQuestions asked: 1 of 5. Ask one question, or reply STOP.")
    >>> parsed = parse_observation(obs)
    >>> parsed.visible_task, parsed.exchanges(), parsed.max_questions, parsed.questions_left
    ('Write a memo.', [('Who reads it?', 'The partner.')], 5, True)
    """
    head, _, rest = observation.partition(CONVERSATION_HEADER)
    conversation, _, status = rest.partition(STATUS_HEADER)
    if not rest:  # no conversation part: the status may still follow the task
        head, _, status = head.partition(STATUS_HEADER)
    questions, answers = [], []
    for line in conversation.split("\n"):
        if line.startswith("Assistant: "):
            questions.append(line[len("Assistant: ") :])
        elif line.startswith("User: "):
            answers.append(line[len("User: ") :])
    budget = _BUDGET.search(status)
    return Observation(
        visible_task=head.removeprefix(TASK_HEADER),
        questions=tuple(questions),
        answers=tuple(answers),
        max_questions=int(budget.group(1)) if budget else None,
        questions_left=NO_QUESTIONS_LEFT not in status,
    )
