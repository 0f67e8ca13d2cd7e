"""What the env does with an action before the user reads it, and the env's ``Text`` space.

:func:`clean_action` runs in this order, so no check can be dodged by the encoding:

1. A raw action more than four times ``max_chars`` long is ``too_long`` at once (Unicode
   normalisation shrinks text by at most about a third, so it could never fit); what the
   dialogue shows of a too-long question is cut to ``max_chars`` after normalising and
   sanitising (both may lengthen text: NFKC turns ``\ufdfa`` into 18 characters).
2. NFKC normalisation (full-width letters become ASCII), format characters (zero-width
   spaces, joiners) removed, every other control or space character (NBSP, tabs, newlines)
   a plain space, runs of spaces one space.
3. STOP is recognised on the cleaned text (``ＳＴＯＰ``, ``STOP\\u00a0``, ``S\\u200bTOP``).
4. The length cap applies to the cleaned text.
5. Characters outside the charset become ``?``; a question whose letters are mostly outside
   the charset (a script the tasks do not use) is ``unsupported_characters``, not
   ``no_words``.

:class:`DialogueText` is ``gymnasium.spaces.Text`` that refuses, with a message saying what to
pass, to go through ``AsyncVectorEnv``'s shared memory: Gymnasium reads ``Text`` observations
from shared memory once, at construction, so every observation would be a run of newlines.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from gymnasium import spaces
from gymnasium.error import CustomSpaceError
from gymnasium.vector.utils import create_shared_memory

from clarify_gym.dialogue import sanitize

__all__ = ["ASYNC_HINT", "CleanAction", "DialogueText", "clean_action"]

_WORDLIKE = re.compile(r"[^\W_]")  # a letter or digit, in any script
#: How to vectorise the env asynchronously (the message of :class:`DialogueText`).
ASYNC_HINT = (
    "ProactiveGather observations are text, which AsyncVectorEnv's shared memory cannot carry "
    "(gymnasium would return every observation as newlines); pass shared_memory=False: "
    "gym.make_vec(id, n, vectorization_mode='async', vector_kwargs={'shared_memory': False}) "
    "or AsyncVectorEnv(env_fns, shared_memory=False); or use vectorization_mode='sync'"
)


@dataclass(frozen=True)
class CleanAction:
    """An action after cleaning: ``stop``, or the question text and why it is invalid (if)."""

    text: str
    stop: bool = False
    invalid: str | None = None


def _normalise(text: str) -> str:
    """NFKC; format characters removed; other controls and separators a space; spaces
    collapsed.

    >>> _normalise("\\uff33\\uff34\\uff2f\\uff30\\u00a0")
    'STOP'
    >>> _normalise("S\\u200bTOP\\tnow")
    'STOP now'
    """
    if text.isascii() and text.isprintable():
        return " ".join(text.split())
    out = []
    for ch in unicodedata.normalize("NFKC", text):
        category = unicodedata.category(ch)
        if category == "Cf":
            continue
        out.append(" " if category[0] in ("C", "Z") else ch)
    return " ".join("".join(out).split())


def clean_action(action: str, charset: frozenset[str], max_chars: int, is_stop: Any) -> CleanAction:
    """Clean one action (see the module docstring); ``is_stop`` decides STOP on clean text.

    >>> from clarify_gym.dialogue import ASCII_CHARSET
    >>> from clarify_gym.env import is_stop
    >>> clean_action("\\uff33\\uff34\\uff2f\\uff30", ASCII_CHARSET, 20, is_stop).stop
    True
    >>> clean_action("Какой длины отчёт?", ASCII_CHARSET, 100, is_stop).invalid
    'unsupported_characters'
    """
    if len(action) > 4 * max_chars:
        return CleanAction(
            _cut(_normalise(action[:max_chars]), charset, max_chars), invalid="too_long"
        )
    text = _normalise(action)
    if is_stop(text):
        return CleanAction(text, stop=True)
    if len(text) > max_chars:
        return CleanAction(_cut(text, charset, max_chars), invalid="too_long")
    if not text:
        return CleanAction("(empty)", invalid="empty")
    if text.isascii():  # printable ASCII is in every charset
        shown = text
    else:
        shown = " ".join(sanitize(text, charset).split())[:max_chars]
        letters = [ch for ch in text if ch.isalpha()]
        unsupported = sum(1 for ch in letters if ch not in charset and not _ascii_fold(ch, charset))
        if letters and unsupported * 2 > len(letters):
            return CleanAction(shown, invalid="unsupported_characters")
    if not _WORDLIKE.search(shown):
        return CleanAction(shown or "(empty)", invalid="no_words")
    return CleanAction(shown)


def _cut(text: str, charset: frozenset[str], max_chars: int) -> str:
    """What an over-long question shows: its start, made to fit ``charset``, then ``[...]``,
    ``max_chars`` characters at most in all (sanitising may lengthen text, so it is cut after).

    >>> from clarify_gym.dialogue import ASCII_CHARSET
    >>> _cut("Which sections must the output have? " * 3, ASCII_CHARSET, 20)
    'Which sections [...]'
    >>> len(_cut("\ufdfa" * 40, ASCII_CHARSET, 20)) <= 20  # NFKC: 18 characters each
    True
    """
    shown = " ".join(sanitize(text[:max_chars], charset).split())
    return shown[: max(0, max_chars - 6)].rstrip() + " [...]"


def _ascii_fold(ch: str, charset: frozenset[str]) -> bool:
    decomposed = unicodedata.normalize("NFKD", ch).encode("ascii", "ignore").decode()
    return bool(decomposed) and all(c in charset for c in decomposed)


class DialogueText(spaces.Text):
    """``gymnasium.spaces.Text`` that says how to vectorise it asynchronously (see above)."""


@create_shared_memory.register(DialogueText)
def _no_shared_memory(space: DialogueText, n: int = 1, ctx: ModuleType | None = None) -> Any:
    raise CustomSpaceError(ASYNC_HINT)
