"""Baseline agents: passive (no questions), generic (a fixed list), random (a seeded bank draw) and
the oracle (an upper bound that reads the hidden task).

None of them needs a model; all are deterministic given ``reset(seed=...)``. Each keeps what it
needs between turns as its own explicit state, cleared by :meth:`~clarify_agents.base.Agent.reset`, so
one instance serves one episode at a time (the benchmark harness gives every concurrent episode
its own instance).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from clarify_agents.base import STOP, Agent
from clarify_gym.dialogue import parse_observation
from clarify_gym.masking import MaskedTask, Sentence
from clarify_gym.questions import GENERIC_QUESTIONS, TOP_GENERIC_QUESTIONS
from clarify_gym.text import tokenize
from clarify_gym.users import LexicalScorer

__all__ = ["GenericAgent", "OracleAgent", "PassiveAgent", "RandomAgent", "user_answers"]


def user_answers(observation: str) -> list[str]:
    """The user's answers in an observation, in order.

    >>> user_answers("## Task\\nX\\n\\n## Conversation\\nAssistant: Q?\\nUser: A one.\\n"
    ...              "Assistant: R?\\nUser: A two.\\n\\n## Status\\nQuestions asked: 2 of 5.")
    ['A one.', 'A two.']
    """
    return list(parse_observation(observation).answers)


class PassiveAgent(Agent):
    """Says STOP at once: the paper's "no questions" baseline (the writer sees the visible task
    only)."""

    name = "passive"

    def act(self, observation: str) -> str:
        return STOP


class GenericAgent(Agent):
    """Asks a fixed list of generic clarifying questions in order, then says STOP.

    Args:
        questions: The list (default :data:`clarify_gym.questions.TOP_GENERIC_QUESTIONS`: one
            question per kind of unstated knowledge, best first).
        max_questions: Say STOP after this many questions even if the list goes on (``None``:
            the list, or the env's budget, ends the episode).
    """

    name = "generic"

    def __init__(
        self, questions: Sequence[str] = TOP_GENERIC_QUESTIONS, max_questions: int | None = None
    ) -> None:
        if not questions:
            raise ValueError("GenericAgent needs at least one question")
        self.questions = tuple(questions)
        self.max_questions = max_questions
        self._asked = 0

    def reset(self, *, seed: int | None = None, task: MaskedTask | None = None) -> None:
        self._asked = 0

    def act(self, observation: str) -> str:
        limit = len(self.questions)
        if self.max_questions is not None:
            limit = min(limit, self.max_questions)
        if self._asked >= limit:
            return STOP
        question = self.questions[self._asked]
        self._asked += 1
        return question


class RandomAgent(Agent):
    """Asks questions drawn at random, without repeats, from a bank; seeded by ``reset(seed=...)``.

    It never says STOP before ``max_questions`` questions (``None``: until the bank or the env's
    budget ends). Its RNG is its own ``numpy.random.Generator``; the global RNGs are untouched.
    """

    name = "random"

    def __init__(
        self,
        questions: Sequence[str] = GENERIC_QUESTIONS,
        max_questions: int | None = None,
        seed: int | None = None,
    ) -> None:
        if not questions:
            raise ValueError("RandomAgent needs a non-empty question bank")
        self.questions = tuple(questions)
        self.max_questions = max_questions
        self._rng = np.random.default_rng(seed)
        self._order: list[int] = []
        self._asked = 0
        self.reset(seed=seed)

    def reset(self, *, seed: int | None = None, task: MaskedTask | None = None) -> None:
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self._order = [int(i) for i in self._rng.permutation(len(self.questions))]
        self._asked = 0

    def act(self, observation: str) -> str:
        limit = len(self._order)
        if self.max_questions is not None:
            limit = min(limit, self.max_questions)
        if self._asked >= limit:
            return STOP
        question = self.questions[self._order[self._asked]]
        self._asked += 1
        return question


class OracleAgent(Agent):
    """**An upper bound that cheats**: it reads the hidden sentences and asks for them.

    It is not a fair baseline and must never be reported as one. The harness passes it the
    masked task, hidden part included, through ``reset(task=...)``; a fair agent ignores that
    argument. Each question packs the most distinctive words (highest BM25 idf in the task's
    sentence index, :meth:`clarify_gym.users.LexicalScorer.index`) of up to
    ``sentences_per_question`` hidden sentences not yet elicited, output-spec and notes
    sentences (the checklist) first, then the procedure. Words that are field cues ("sections",
    "audience", ...) are skipped, since they match every sentence of a field.

    What was elicited is read from the dialogue in the observation: a hidden sentence counts as
    elicited once ``elicited_recall`` of its content words appear in the user's answers. A
    sentence asked about ``max_attempts`` times without being elicited is given up on. STOP
    when nothing is left to ask.

    Args:
        sentences_per_question: Hidden sentences targeted per question (the offline user cites
            at most k = 3 per answer).
        words_per_sentence: Distinctive words taken from each targeted sentence.
        priority: Field order in which hidden sentences are asked about.
        max_attempts: Questions spent on one sentence before giving up on it.
        elicited_recall: Share of a sentence's content words that must appear in the answers.
    """

    name = "oracle"
    privileged = True

    def __init__(
        self,
        sentences_per_question: int = 3,
        words_per_sentence: int = 4,
        priority: Sequence[str] = ("output_spec", "notes", "procedure"),
        max_attempts: int = 2,
        elicited_recall: float = 0.8,
    ) -> None:
        if sentences_per_question < 1 or words_per_sentence < 1 or max_attempts < 1:
            raise ValueError(
                "sentences_per_question, words_per_sentence and max_attempts must be >= 1"
            )
        self.sentences_per_question = sentences_per_question
        self.words_per_sentence = words_per_sentence
        self.priority = tuple(priority)
        self.max_attempts = max_attempts
        self.elicited_recall = elicited_recall
        self._scorer = LexicalScorer()
        self._task: MaskedTask | None = None
        self._queue: list[Sentence] = []
        self._keywords: dict[int, list[str]] = {}
        self._attempts: dict[int, int] = {}

    def reset(self, *, seed: int | None = None, task: MaskedTask | None = None) -> None:
        if task is None:
            raise ValueError(
                "OracleAgent reads the hidden task: call reset(task=env.unwrapped.state.task) "
                "after env.reset() (the benchmark harness does this)"
            )
        self._task = task
        rank = {name: i for i, name in enumerate(self.priority)}
        hidden = sorted(task.hidden_sentences, key=lambda s: (rank.get(s.field, len(rank)), s.id))
        idf = self._scorer.index(task).idf
        self._queue = hidden
        self._keywords = {s.id: self._distinctive_words(s, idf) for s in hidden}
        self._attempts = {}

    def _distinctive_words(self, sentence: Sentence, idf: dict[str, float]) -> list[str]:
        """The sentence's words with the highest idf, one per token, field cues skipped."""
        best: dict[str, tuple[float, int, str]] = {}
        text = f"{sentence.section} {sentence.text}" if sentence.section else sentence.text
        for position, word in enumerate(re.findall(r"[A-Za-z0-9][A-Za-z0-9'-]*", text)):
            terms = LexicalScorer.query_terms(word)
            if len(terms) != 1 or terms[0].startswith("@"):  # stop word, cue word, or compound
                continue
            token = terms[0]
            score = idf.get(token, 0.0)
            if token not in best or score > best[token][0]:
                best[token] = (score, position, word)
        ranked = sorted(best.values(), key=lambda t: (-t[0], t[1]))
        return [word for _, _, word in ranked[: self.words_per_sentence]]

    def _elicited(self, observation: str) -> set[int]:
        heard: set[str] = set()
        for answer in user_answers(observation):
            heard.update(tokenize(answer))
        out = set()
        for s in self._queue:
            words = set(tokenize(s.text))
            if words and len(words & heard) >= self.elicited_recall * len(words):
                out.add(s.id)
        return out

    def act(self, observation: str) -> str:
        if self._task is None:
            raise RuntimeError("call reset(task=...) before act()")
        elicited = self._elicited(observation)
        targets = [
            s
            for s in self._queue
            if s.id not in elicited
            and self._attempts.get(s.id, 0) < self.max_attempts
            and self._keywords[s.id]
        ][: self.sentences_per_question]
        if not targets:
            return STOP
        for s in targets:
            self._attempts[s.id] = self._attempts.get(s.id, 0) + 1
        parts = [" ".join(self._keywords[s.id]) for s in targets]
        return f"What can you tell me about {'; '.join(parts)}?"

    def describe(self) -> dict[str, Any]:
        return {
            "upper_bound": "reads the hidden task (privileged); not a fair baseline",
            "sentences_per_question": self.sentences_per_question,
            "words_per_sentence": self.words_per_sentence,
        }
