"""What the fake server answers: the role is recognised from the prompt, and the reply is what the
offline parts of clarify-gym would say, in the JSON or text the real prompt asks for.

* user oracle (:mod:`clarify_gym.users.llm` prompt): the numbered document is parsed back into a
  :class:`~clarify_gym.masking.MaskedTask` and the offline :class:`~clarify_gym.users.RetrievalUser`
  answers the question, ``{"answer": ..., "cited": [...]}``;
* writer: the offline template outline (:func:`~clarify_gym.writing.render_outline`) from the
  visible task and the person's answers;
* judge: :class:`~clarify_gym.writing.LexicalJudge` on the listed items, ``{"met": [...]}``;
* checklist builder: each specification sentence split at ``;`` into items;
* anything else is taken for an agent (:func:`clarify_agents.prompts.observation_to_messages` chats):
  the generic questions of :mod:`clarify_gym.questions` in order, then ``STOP`` when the budget
  named in the first user message is spent. With ``messy_agent`` the questions come the way real
  models write them (thinking tags, ``Question:`` prefixes, a second question).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from clarify_gym.dialogue import EpisodeState
from clarify_gym.masking import MaskedTask, Sentence
from clarify_gym.questions import TOP_GENERIC_QUESTIONS
from clarify_gym.tasks import Task
from clarify_gym.users.llm import (
    CONVERSATION_HEADER as ORACLE_CONVERSATION,
)
from clarify_gym.users.llm import (
    DOCUMENT_HEADER,
    ORACLE_SYSTEM_PROMPT,
    QUESTION_HEADER,
)
from clarify_gym.users.retrieval import LexicalScorer, RetrievalUser
from clarify_gym.writing.llm import (
    BUILDER_SYSTEM_PROMPT,
    CHECKLIST_HEADER,
    CONVERSATION_HEADER,
    JUDGE_SYSTEM_PROMPT,
    OUTLINE_HEADER,
    TASK_HEADER,
    WRITER_SYSTEM_PROMPT,
)
from clarify_gym.writing.template import LexicalJudge, render_outline

__all__ = ["ROLES", "Responder", "detect_role", "parse_numbered_document"]

ROLES = ("user", "writer", "judge", "builder", "agent")
_SIGNATURES = {
    "user": ORACLE_SYSTEM_PROMPT[:80],
    "writer": WRITER_SYSTEM_PROMPT[:80],
    "judge": JUDGE_SYSTEM_PROMPT[:80],
    "builder": BUILDER_SYSTEM_PROMPT[:80],
}
_LINE = re.compile(r"^\[(\d+)\] \((\w+)(, hidden)?\) (.*)$")
_SECTIONED = frozenset({"input_spec", "output_spec", "example_input"})
_BUDGET = re.compile(r"at most (\d+) questions")
_K = re.compile(r"at most (\d+)>")


def detect_role(messages: Sequence[Mapping[str, Any]]) -> str:
    """Which part of clarify-gym sent this chat (``"agent"`` when no known system prompt).

    >>> detect_role([{"role": "system", "content": JUDGE_SYSTEM_PROMPT}, {"role": "user", "content": "x"}])
    'judge'
    >>> detect_role([{"role": "user", "content": "hello"}])
    'agent'
    """
    if messages and messages[0].get("role") == "system":
        system = str(messages[0].get("content", ""))
        for role, signature in _SIGNATURES.items():
            if system.startswith(signature):
                return role
    return "agent"


def parse_numbered_document(text: str) -> list[Sentence]:
    """Sentences from :meth:`~clarify_gym.masking.MaskedTask.numbered_document` lines.

    >>> [(s.id, s.field, s.hidden, s.section, s.text) for s in parse_numbered_document(
    ...     "[0] (objective) Write it.\\n[1] (output_spec, hidden) Issue: Issue: One line.")]
    [(0, 'objective', False, '', 'Write it.'), (1, 'output_spec', True, 'Issue', 'Issue: One line.')]
    """
    sentences = []
    for line in text.split("\n"):
        match = _LINE.match(line)
        if not match:
            continue
        field, rest, section = match[2], match[4], ""
        if field in _SECTIONED and ": " in rest:
            section, _, rest = rest.partition(": ")
        sentences.append(Sentence(int(match[1]), rest, field, section, bool(match[3])))
    return sentences


def _between(text: str, start: str, end: str | None = None) -> str:
    after = text.partition(start)[2]
    return after.partition(end)[0] if end else after


class Responder:
    """Builds the reply text for one chat request (thread-safe)."""

    def __init__(self, *, messy_agent: bool = False) -> None:
        self.messy_agent = messy_agent
        self._scorer = LexicalScorer()
        self._judge = LexicalJudge()
        self._tasks: dict[str, MaskedTask] = {}
        self._lock = threading.Lock()

    def reply(self, messages: Sequence[Mapping[str, Any]]) -> tuple[str, str]:
        """``(role, reply text)`` for a chat."""
        role = detect_role(messages)
        body = str(messages[1]["content"]) if len(messages) > 1 else ""
        if role == "user":
            return role, self._oracle(str(messages[0]["content"]), body)
        if role == "writer":
            return role, self._writer(body)
        if role == "judge":
            return role, self._verdict(body)
        if role == "builder":
            return role, self._checklist(body)
        return role, self._agent(messages)

    def _task(self, document: str) -> MaskedTask:
        key = hashlib.sha1(document.encode()).hexdigest()
        with self._lock:
            found = self._tasks.get(key)
        if found is None:
            sentences = tuple(parse_numbered_document(document))
            objective = next((s.text for s in sentences if s.field == "objective"), "")
            task = Task(f"fake-{key[:16]}", "", objective, "", "", "")
            found = MaskedTask(
                task, sentences, frozenset(s.id for s in sentences if s.hidden), "", ()
            )
            with self._lock:
                self._tasks[key] = found
        return found

    def _oracle(self, system: str, body: str) -> str:
        k_match = _K.search(system)
        document = _between(body, DOCUMENT_HEADER + "\n", "\n\n" + ORACLE_CONVERSATION)
        question = _between(body, QUESTION_HEADER + "\n<<<\n").rpartition("\n>>>")[0]
        task = self._task(document)
        user = RetrievalUser(k=int(k_match[1]) if k_match else 3, scorer=self._scorer)
        answer = user.answer(question, EpisodeState(task=task, max_questions=1_000))
        return json.dumps({"answer": answer.text, "cited": list(answer.cited_ids)})

    def _writer(self, body: str) -> str:
        visible = _between(body, TASK_HEADER + "\n", "\n\n" + CONVERSATION_HEADER)
        convo = _between(body, CONVERSATION_HEADER + "\n")
        blocks = {b.partition(":\n")[0]: b.partition(":\n")[2] for b in visible.split("\n\n")}
        header = [f"# Outline: {blocks.get('Task objective', '').strip()}", "", "## Inputs used"]
        header += [
            f"- {line[2:]}"
            for line in blocks.get("Input sections", "").split("\n")
            if line.startswith("* ")
        ]
        answers = [
            line[len("Person: ") :] for line in convo.split("\n") if line.startswith("Person: ")
        ]
        return render_outline("\n".join(header), answers)

    def _verdict(self, body: str) -> str:
        listed = _between(body, CHECKLIST_HEADER + "\n", "\n\n" + OUTLINE_HEADER)
        items = [re.sub(r"^\d+\.\s*", "", line) for line in listed.split("\n") if line.strip()]
        outline = _between(body, OUTLINE_HEADER + "\n<<<\n").rpartition("\n>>>")[0]
        return json.dumps({"met": list(self._judge.judge_items(items, outline))})

    def _checklist(self, body: str) -> str:
        items = []
        for s in parse_numbered_document(body):
            text = f"{s.section}: {s.text}" if s.section else s.text
            for part in text.split("; "):
                if part.strip():
                    items.append({"text": part.strip(), "sources": [s.id]})
        return json.dumps({"items": items})

    def _agent(self, messages: Sequence[Mapping[str, Any]]) -> str:
        asked = sum(1 for m in messages if m.get("role") == "assistant")
        first = next((str(m["content"]) for m in messages if m.get("role") == "user"), "")
        budget = _BUDGET.search(first)
        limit = min(int(budget[1]) if budget else 5, len(TOP_GENERIC_QUESTIONS))
        if asked >= limit:
            return "I have what I need. STOP" if self.messy_agent else "STOP"
        question = TOP_GENERIC_QUESTIONS[asked]
        if not self.messy_agent:
            return question
        styles = (
            "<think>They did not say this; I should ask.</think>\nQuestion: {q}",
            "**Question {n}:** {q} Also, is there anything else I should know?",
            "Thanks, that helps.\n\n{q}",
        )
        return styles[asked % len(styles)].format(q=question, n=asked + 1)
