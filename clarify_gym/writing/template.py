"""The offline writer and judge (the defaults: deterministic, no network).

* :class:`TemplateWriter` drafts an outline from the *visible* task and the *user's answers*
  only — never from the assistant's questions, so an agent cannot write checklist words into
  the outline by asking about them; what reaches the outline is what the person said.
* :class:`LexicalJudge` marks a checklist item met when at least ``threshold`` (default 0.6) of
  the item's distinct content words (stemmed, stop words removed) occur in the outline. The
  score is the fraction of items met.

The paper's LLM writer and judge (any OpenAI-compatible model; ``writer="llm"``,
``judge="llm"``) implement the same :class:`~clarify_gym.writing.base.Writer` and
:class:`~clarify_gym.writing.base.Judge` protocols in :mod:`clarify_gym.writing.llm`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from clarify_gym.dialogue import Turn
from clarify_gym.masking import MaskedTask, split_sentences
from clarify_gym.text import token_set, tokenize
from clarify_gym.writing.base import JudgeResult

__all__ = ["DEFAULT_SECTIONS", "LexicalJudge", "TemplateWriter", "render_outline"]

DEFAULT_SECTIONS = (
    ("Summary", "the purpose and the main points in brief"),
    ("Background", "the situation described in the input"),
    ("Analysis", "the key facts from the input and what they mean"),
    ("Recommendations", "what should be done, by whom"),
    ("Next steps", "open questions and follow-up"),
)
_PART = re.compile(r'^The output needs a part called "(?P<name>[^"]+)":\s*(?P<desc>.*)$')
_NON_CONTENT = ("That is in what I sent you", "I don't think I have anything to add")


@lru_cache(maxsize=16_384)
def _answer_sentences(answer: str) -> tuple[str, ...]:
    return tuple(split_sentences(answer))


@lru_cache(maxsize=4096)
def _outline_header(task: MaskedTask) -> str:
    lines = [f"# Outline: {task.task.objective}", "", "## Inputs used"]
    lines += [f"- {s.text}" for s in task.sentences if s.field == "input_spec" and not s.hidden]
    return "\n".join(lines)


@dataclass
class TemplateWriter:
    """A deterministic outline from the visible task and what the user said (see module doc)."""

    def write(self, task: MaskedTask, turns: Sequence[Turn]) -> str:
        answers = [t.answer for t in turns if not t.invalid]
        return render_outline(_outline_header(task), answers)


def render_outline(header: str, answers: Sequence[str]) -> str:
    """The template outline: ``header``, the sections the person named (or default ones), then
    every other sentence of their answers as a requirement. Used by :class:`TemplateWriter`
    and by the fake LLM server of :mod:`clarify_gym.testing`."""
    parts: list[tuple[str, str]] = []
    requirements: list[str] = []
    for answer in answers:
        if not answer or answer.startswith(_NON_CONTENT):
            continue
        for sentence in _answer_sentences(answer.removeprefix("As I said: ")):
            if sentence.startswith(_NON_CONTENT) or sentence == "The rest is in what I sent you.":
                continue
            match = _PART.match(sentence)
            if match:
                entry = (match["name"].strip(), match["desc"].strip())
                if entry not in parts:
                    parts.append(entry)
            elif sentence not in requirements:
                requirements.append(sentence)
    lines = [header, "", "## Sections"]
    for number, (name, desc) in enumerate(parts or DEFAULT_SECTIONS, start=1):
        lines.append(f"{number}. {name}: {desc}")
    if requirements:
        lines += ["", "## What the person asked for"]
        lines += [f"- {r}" for r in requirements]
    return "\n".join(lines)


@dataclass
class LexicalJudge:
    """Checklist judge by content-word recall (see the module docstring)."""

    threshold: float = 0.6
    _items: dict[tuple[str, object], list[frozenset[str]]] = field(
        default_factory=dict, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError(f"judge threshold must be in (0, 1], got {self.threshold}")

    def _item_tokens(self, task: MaskedTask) -> list[frozenset[str]]:
        key = (task.task.id, task.policy)
        if key not in self._items:
            self._items[key] = [frozenset(tokenize(item.text)) for item in task.checklist]
        return self._items[key]

    def judge(self, task: MaskedTask, outline: str) -> JudgeResult:
        met = self._met(self._item_tokens(task), outline)
        return JudgeResult(score=sum(met) / len(met) if met else 0.0, met=met)

    def judge_items(self, items: Sequence[str], outline: str) -> tuple[bool, ...]:
        """Met or not for each of ``items`` (any checklist texts) in ``outline``."""
        return self._met([frozenset(tokenize(item)) for item in items], outline)

    def _met(self, items: Sequence[frozenset[str]], outline: str) -> tuple[bool, ...]:
        words: set[str] = set()
        for line in outline.split("\n"):  # lines recur across episodes: their tokens are memoised
            words.update(token_set(line))
        threshold = self.threshold
        return tuple(len(item & words) >= threshold * len(item) for item in items)
