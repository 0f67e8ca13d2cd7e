"""The paper's LLM end of an episode: a fixed writer, a checklist judge, a checklist builder.

* :class:`LLMWriter` (``writer="llm"``) drafts the outline from the visible task and the
  dialogue, as GPT-4o does in Huang et al. (2025); the model is configurable. It is told that
  only the task and the person's answers are requirements, not the assistant's questions.
* :class:`LLMJudge` (``judge="llm"``) marks every checklist item met or not met in **one call per
  outline** (``{"met": [true, false, ...]}``, one value per item); score = fraction met. A reply
  that is still malformed after the repair request gives score 0 with ``error`` set (the env
  reports it as ``info["judge_error"]``).
* :class:`LLMChecklistBuilder` distils the output specification and notes into atomic,
  separately checkable items (``LLMJudge(checklist=LLMChecklistBuilder())``). The offline
  checklist (one item per output-section bullet and per notes sentence) stays the default.

Each uses an :class:`~clarify_gym.llm.LLMClient` (roles ``"writer"`` and ``"judge"``), so the
replies are cached and the usage counted (``last_usage`` / ``JudgeResult.usage``). The judge and
the builder send JSON schemas (:mod:`clarify_gym.llm.schemas`) and have their own reply lengths
(the judge 64 + 8 tokens per item, the writer 1500).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol, runtime_checkable

from clarify_gym.dialogue import Turn, strip_thinking
from clarify_gym.errors import LLMReplyError
from clarify_gym.llm import LLMClient, Usage
from clarify_gym.llm.schemas import (
    WRITER_MAX_TOKENS,
    builder_max_tokens,
    checklist_schema,
    judge_max_tokens,
    verdict_schema,
)
from clarify_gym.masking import ChecklistItem, MaskedTask
from clarify_gym.users.base import clean_citations
from clarify_gym.writing.base import JudgeResult

__all__ = [
    "BUILDER_SYSTEM_PROMPT",
    "JUDGE_SYSTEM_PROMPT",
    "WRITER_SYSTEM_PROMPT",
    "ChecklistBuilder",
    "LLMChecklistBuilder",
    "LLMJudge",
    "LLMWriter",
    "TaskChecklist",
    "builder_messages",
    "judge_messages",
    "validate_checklist",
    "validate_verdict",
    "writer_messages",
]

WRITER_SYSTEM_PROMPT = (
    "You write the outline of a document for a person, from their request and what they told "
    "you when asked. Use only facts from the request and from the person's answers; the "
    "assistant's questions are context, not requirements. Write the outline in Markdown: a "
    "title, then the sections the document needs in order, each with bullet points saying "
    "what it will contain, following every procedure, structure and constraint the person "
    "gave. Write the outline only."
)
JUDGE_SYSTEM_PROMPT = (
    "You are a strict grader. You get a numbered checklist of what a document must contain and "
    "an outline of that document. For each item decide whether the outline clearly covers it "
    "(true) or not (false); vague or partial coverage is false.\n"
    'Reply with only a JSON object: {"met": [true or false for item 1, for item 2, ...]}, '
    "exactly one value per item, in order."
)
BUILDER_SYSTEM_PROMPT = (
    "You turn the specification of a document into a grading checklist. Split it into atomic "
    "items: each item is one short sentence stating one thing the document must contain or "
    "respect, checkable on its own. Cover every requirement and invent none.\n"
    'Reply with only a JSON object: {"items": [{"text": "<item>", "sources": [<ids of the '
    "specification sentences it comes from>]}, ...]}."
)
TASK_HEADER = "Request:"
CONVERSATION_HEADER = "Conversation:"
CHECKLIST_HEADER = "Checklist:"
OUTLINE_HEADER = "Outline:"
SPEC_HEADER = "Specification (numbered sentences: required output sections, then notes):"


def writer_messages(task: MaskedTask, turns: Sequence[Turn]) -> list[dict[str, str]]:
    """The writer's chat: the visible task and the dialogue (invalid turns left out)."""
    convo = "\n".join(
        f"Assistant: {t.question}\nPerson: {t.answer}" for t in turns if not t.invalid
    )
    body = (
        f"{TASK_HEADER}\n{task.visible_text}\n\n{CONVERSATION_HEADER}\n{convo or '(none)'}\n\n"
        "Write the outline."
    )
    return [{"role": "system", "content": WRITER_SYSTEM_PROMPT}, {"role": "user", "content": body}]


def judge_messages(items: Sequence[str], outline: str) -> list[dict[str, str]]:
    """The judge's chat: the numbered checklist and the outline.

    >>> judge_messages(["Has a title."], "# T")[1]["content"]
    'Checklist:\\n1. Has a title.\\n\\nOutline:\\n<<<\\n# T\\n>>>'
    """
    listed = "\n".join(f"{i}. {' '.join(text.split())}" for i, text in enumerate(items, start=1))
    body = f"{CHECKLIST_HEADER}\n{listed}\n\n{OUTLINE_HEADER}\n<<<\n{outline}\n>>>"
    return [{"role": "system", "content": JUDGE_SYSTEM_PROMPT}, {"role": "user", "content": body}]


def builder_messages(task: MaskedTask) -> list[dict[str, str]]:
    """The checklist builder's chat: the output-spec and notes sentences, numbered by id."""
    lines = [
        f"[{s.id}] ({s.field}) {s.text}"
        for s in task.sentences
        if s.field in ("output_spec", "notes")
    ]
    body = f"{SPEC_HEADER}\n" + "\n".join(lines)
    return [{"role": "system", "content": BUILDER_SYSTEM_PROMPT}, {"role": "user", "content": body}]


_TRUE = {"true", "yes", "met", "1", "y"}
_FALSE = {"false", "no", "not met", "unmet", "0", "n"}


def validate_verdict(value: Any, *, n: int) -> tuple[bool, ...]:
    """One boolean per checklist item from a parsed judge reply.

    >>> validate_verdict({"met": [True, "no", 1, "Met"]}, n=4)
    (True, False, True, True)
    >>> validate_verdict({"met": [True]}, n=2)
    Traceback (most recent call last):
    ValueError: "met" has 1 values for 2 checklist items; give exactly one per item
    """
    if not isinstance(value, dict) or not isinstance(value.get("met"), list):
        raise TypeError('expected a JSON object {"met": [true or false, ...]}')
    met = value["met"]
    if len(met) != n:
        raise ValueError(
            f'"met" has {len(met)} values for {n} checklist items; give exactly one per item'
        )
    out = []
    for v in met:
        text = str(v).strip().lower()
        if text not in _TRUE | _FALSE:
            raise ValueError(f'"met" values must be true or false, got {v!r}')
        out.append(text in _TRUE)
    return tuple(out)


def validate_checklist(value: Any, *, allowed: frozenset[int]) -> list[tuple[str, tuple[int, ...]]]:
    """(item text, source ids) pairs from a parsed builder reply; unknown source ids dropped.

    >>> validate_checklist({"items": [{"text": " Has a title. ", "sources": [4, 99]}]}, allowed=frozenset({4}))
    [('Has a title.', (4,))]
    """
    if not isinstance(value, dict) or not isinstance(value.get("items"), list):
        raise TypeError('expected a JSON object {"items": [{"text": ..., "sources": [...]}, ...]}')
    items = []
    for entry in value["items"]:
        if not isinstance(entry, dict) or not isinstance(entry.get("text"), str):
            raise ValueError('every item must be an object with a "text" string')
        text = " ".join(entry["text"].split())
        sources = entry.get("sources") or []
        if not isinstance(sources, list):
            sources = [sources]
        ids = clean_citations(sources, valid=allowed)
        if text:
            items.append((text, ids))
    if not items:
        raise ValueError("the checklist is empty; list at least one item")
    return items


@runtime_checkable
class ChecklistBuilder(Protocol):
    """Makes the checklist an outline is judged against."""

    def build(self, task: MaskedTask) -> tuple[ChecklistItem, ...]:
        """The checklist of ``task``."""
        ...


@dataclass
class TaskChecklist:
    """The offline checklist built by masking: one item per output bullet and notes sentence."""

    def build(self, task: MaskedTask) -> tuple[ChecklistItem, ...]:
        return task.checklist


@dataclass
class LLMChecklistBuilder:
    """Atomic checklist items distilled by an LLM (one call per task, then cached)."""

    model: str | None = None
    client: LLMClient | None = field(default=None, repr=False)
    _built: dict[tuple[str, object], tuple[ChecklistItem, ...]] = field(
        default_factory=dict, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if self.client is None:
            self.client = LLMClient(role="judge", model=self.model)

    def build(self, task: MaskedTask) -> tuple[ChecklistItem, ...]:
        """The items (raises :class:`~clarify_gym.errors.LLMReplyError` if unusable)."""
        key = (task.task.id, task.policy)
        if key not in self._built:
            assert self.client is not None
            fields = {s.id: s.field for s in task.sentences if s.field in ("output_spec", "notes")}
            validate = partial(validate_checklist, allowed=frozenset(fields))
            reply = self.client.complete_json(
                builder_messages(task),
                validate,
                schema=checklist_schema(max(1, 3 * len(fields))),
                name="checklist",
                default_max_tokens=builder_max_tokens(len(fields)),
            )
            self._built[key] = tuple(
                ChecklistItem(i, text, fields[ids[0]] if ids else "output_spec", ids)
                for i, (text, ids) in enumerate(reply.value)
            )
        return self._built[key]


@dataclass
class LLMWriter:
    """The fixed LLM writer (see the module docstring). ``last_usage`` is the usage of the
    latest :meth:`write`."""

    model: str | None = None
    client: LLMClient | None = field(default=None, repr=False)
    #: Most tokens per outline (``None``: ``CLARIFY_GYM_WRITER_MAX_TOKENS`` /
    #: ``CLARIFY_GYM_LLM_MAX_TOKENS``, then 1500).
    max_tokens: int | None = None
    last_usage: dict[str, int] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.client is None:
            self.client = LLMClient(role="writer", model=self.model)

    def describe(self) -> dict[str, Any]:
        """What a run's metadata records about this writer (model, endpoint, limits; no key)."""
        assert self.client is not None
        return {"class": type(self).__name__, **self.client.describe()}

    def write(self, task: MaskedTask, turns: Sequence[Turn]) -> str:
        assert self.client is not None
        completion = self.client.complete(
            writer_messages(task, turns),
            max_tokens=self.max_tokens,
            default_max_tokens=WRITER_MAX_TOKENS,
        )
        self.last_usage = completion.usage.as_dict()
        return strip_thinking(completion.text)


@dataclass
class LLMJudge:
    """The LLM checklist judge (see the module docstring).

    Args:
        model: Model name (``None``: ``CLARIFY_GYM_JUDGE_MODEL`` / ``CLARIFY_GYM_LLM_MODEL``...).
        client: An :class:`~clarify_gym.llm.LLMClient` (built with role ``"judge"`` otherwise).
        checklist: ``"task"`` (the offline checklist, default), ``"llm"`` (an
            :class:`LLMChecklistBuilder` on the same client) or a :class:`ChecklistBuilder`.
    """

    model: str | None = None
    client: LLMClient | None = field(default=None, repr=False)
    checklist: ChecklistBuilder | str = "task"

    def __post_init__(self) -> None:
        if self.client is None:
            self.client = LLMClient(role="judge", model=self.model)
        if isinstance(self.checklist, str):
            if self.checklist not in ("task", "llm"):
                raise ValueError(
                    f"unknown checklist {self.checklist!r}; use 'task', 'llm' or a ChecklistBuilder"
                )
            self.checklist = (
                TaskChecklist()
                if self.checklist == "task"
                else LLMChecklistBuilder(client=self.client)
            )

    def describe(self) -> dict[str, Any]:
        """What a run's metadata records about this judge (model, endpoint, checklist; no key)."""
        assert self.client is not None
        return {
            "class": type(self).__name__,
            "checklist": type(self.checklist).__name__,
            **self.client.describe(),
        }

    def judge(self, task: MaskedTask, outline: str) -> JudgeResult:
        assert self.client is not None and not isinstance(self.checklist, str)
        try:
            items = self.checklist.build(task)
        except LLMReplyError as exc:
            return JudgeResult(0.0, (), exc.usage, error=f"checklist builder: {exc}")
        if not items:
            return JudgeResult(0.0, ())
        validate = partial(validate_verdict, n=len(items))
        messages = judge_messages([item.text for item in items], outline)
        try:
            reply = self.client.complete_json(
                messages,
                validate,
                schema=verdict_schema(len(items)),
                name="verdict",
                default_max_tokens=judge_max_tokens(len(items)),
            )
        except LLMReplyError as exc:
            return JudgeResult(0.0, (), exc.usage, error=str(exc))
        usage: Usage = reply.usage
        own = isinstance(self.checklist, TaskChecklist)
        return JudgeResult(
            sum(reply.value) / len(items),
            reply.value,
            usage.as_dict(),
            items=None if own else tuple(item.text for item in items),
        )
