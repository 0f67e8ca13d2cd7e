"""The faithful offline user (the default from ``ProactiveGather-v1``): reads before it matches.

:class:`FaithfulUser` answers as :class:`~clarify_gym.users.RetrievalUser` does (BM25 over the
task's sentences, at most ``k`` cited, a pointer back to the task when the best match is
visible), with four changes, tuned on the train split of the gold labels
(``clarify_gym/data/oracle_labels_train.jsonl``):

1. **It reads the message first** (:func:`~clarify_gym.intent.read_message`): instructions
   aimed at the user, "tell me everything", word lists and statements get
   :data:`~clarify_gym.intent.UNCLEAR_REPLY` and cite nothing.
2. **Cue words raise only sentences about the cue.** A cue ("tone", "length", "table") adds
   the words a sentence on that topic uses ("formal", "words", "pages"), which score only in
   sentences that contain them; nothing matches a whole field through a shared pseudo-term.
   Only a question about a field as a whole ("what steps do you follow?", "what sections must
   it have?") ranks that field's sentences, in the order the author wrote them; a bare field
   word ("Steps?", "template") does not.
3. **Several questions in one message are answered in order**, the first question first,
   all within ``k`` sentences, so a packed message never cites more than ``k`` and never more
   than its questions asked one by one would.
4. **Optionally hybrid** (``scorer="hybrid"``): BM25 plus MiniLM cosine similarity; without
   sentence-transformers it says so once in the log and stays lexical.

>>> from clarify_gym.tasks import load_tasks
>>> from clarify_gym.masking import mask
>>> from clarify_gym.dialogue import EpisodeState
>>> task = mask(load_tasks("sample")[0])
>>> user = FaithfulUser()
>>> user.answer("tone layout tables follow check", EpisodeState(task, 5)).kind
'unclear'
>>> user.answer("What sections must the output contain?", EpisodeState(task, 5)).cited_ids
(12, 13, 14)
"""

from __future__ import annotations

import heapq
import logging
import re
from dataclasses import dataclass, field
from typing import Any

from clarify_gym.dialogue import EpisodeState
from clarify_gym.errors import MissingDependencyError
from clarify_gym.intent import UNCLEAR_REPLY, read_message
from clarify_gym.masking import MaskedTask
from clarify_gym.text import BM25Index, tokenize
from clarify_gym.users.base import Answer
from clarify_gym.users.retrieval import EmbeddingScorer, answer_from_ranked

__all__ = ["TOPIC_WORDS", "FaithfulScorer", "FaithfulUser"]

logger = logging.getLogger(__name__)

#: cue word -> words that a sentence about that topic uses (all stemmed by :func:`tokenize`).
TOPIC_WORDS: dict[str, str] = {
    "tone": "tone formal informal register voice plain friendly jargon",
    "style": "style tone plain jargon voice wording",
    "wording": "wording word phrase language plain jargon",
    "jargon": "jargon plain technical term abbreviation",
    "length": "length long word page concise maximum minimum",
    "long": "length word page maximum minimum",
    "audience": "audience reader reviewer",
    "reader": "audience reader",
    "table": "table column row",
    "layout": "layout table heading bullet column",
    "format": "format table list heading layout bullet numbered",
    "list": "list numbered bullet point",
    "avoid": "avoid never",
    "deadline": "deadline date within",
    "sources": "source reference cite citation guideline",
    "cite": "cite citation reference source",
}
_TOPIC = {tokenize(cue)[0]: tuple(tokenize(words)) for cue, words in TOPIC_WORDS.items()}
#: Words that make a question about a field as a whole (stemmed by :func:`tokenize`).
FIELD_WORDS: dict[str, str] = {
    "procedure": "step steps procedure process workflow approach method methodology usually "
    "normally usual order",
    "output_spec": "section sections structure heading headings part parts contain include "
    "cover outline template",
    "notes": "careful constraint constraints rule rules pitfall pitfalls caveat caveats",
}
#: A question about a fact ("what is ...", "who is ... for?", "how much did ..."), not about
#: what to do: the assistant may well have the answer in front of it (a pointer).
_FACTUAL = re.compile(
    r"^\W*(what|which|who|whom|when|where|how (much|many|long|old|big|far))\b[\w\s,'-]{0,40}?"
    r"\b(is|was|are|were|does|did|has|had)\b(?!.{0,60}\b(should|must|need|want|would)\b)",
    re.IGNORECASE,
)
_WH = ("what", "which", "who", "when", "where", "how")
_YES_NO = re.compile(
    r"\W*(and |also |so )?(should|shall|do|does|did|is|are|will|must|have|has|may|can i|could i)\b"
    r"(?!.{0,80}\b(what|which|how)\b)",
    re.IGNORECASE,
)
_FIELD_TERMS = {name: frozenset(tokenize(words)) for name, words in FIELD_WORDS.items()}


@dataclass
class FaithfulScorer:
    """BM25 over content words, topic cue words, and a field prior for whole-field questions.

    Args:
        min_score: The best sentence must score at least this to be cited.
        min_ratio: Every cited sentence must score at least this share of the best one.
        topic_weight: Multiplies the BM25 weight of a cue's topic words.
        field_bonus: Score of a field's first sentence for a whole-field question (the next
            ones get a little less, so the author's order is kept).
        embed_weight: With MiniLM (``hybrid``), how much the cosine similarity counts.
    """

    min_score: float = 1.5
    min_ratio: float = 0.7
    topic_weight: float = 1.0
    field_bonus: float = 5.0
    embed_weight: float = 0.0
    #: The best match is visible (a pointer) unless a hidden one scores this share of it.
    hidden_ratio: float = 0.4
    #: Multiplies the scores of sentences the assistant sees (their words are the question's).
    visible_weight: float = 0.5
    #: ``visible_weight`` and ``hidden_ratio`` for a question about a fact (see ``_FACTUAL``).
    factual_visible_weight: float = 1.5
    factual_hidden_ratio: float = 1.0
    embedder: EmbeddingScorer | None = None
    _indexes: dict[tuple[str, object], BM25Index] = field(
        default_factory=dict, repr=False, compare=False
    )
    _priors: dict[tuple[str, object, str], tuple[tuple[int, float], ...]] = field(
        default_factory=dict, repr=False, compare=False
    )

    def index(self, task: MaskedTask) -> BM25Index:
        """The (cached) BM25 index of a task's sentences, section names included."""
        key = (task.task.id, task.policy)
        found = self._indexes.get(key)
        if found is None:
            docs = [
                tokenize(
                    f"{s.section} {s.text}"
                    if s.section and not s.text.startswith(s.section)
                    else s.text
                )
                for s in task.sentences
            ]
            found = self._indexes[key] = BM25Index(docs)
        return found

    def _field_prior(self, task: MaskedTask, name: str) -> tuple[tuple[int, float], ...]:
        """The bonus of each sentence of field ``name`` (cached): the author's order kept."""
        key = (task.task.id, task.policy, name)
        found = self._priors.get(key)
        if found is None:
            members = [s.id for s in task.sentences if s.field == name]
            found = self._priors[key] = tuple(
                (doc, self.field_bonus * (1.0 - 0.1 * min(rank, 5)))
                for rank, doc in enumerate(members)
            )
        return found

    def scores(self, task: MaskedTask, question: str) -> dict[int, float]:
        """Score of every sentence that matches ``question`` at all."""
        index = self.index(task)
        terms = tokenize(question)
        out = index.scores(terms)
        topical = {t for term in terms for t in _TOPIC.get(term, ())} - set(terms)
        if topical and self.topic_weight:
            for doc, value in index.scores(topical).items():
                out[doc] = out.get(doc, 0.0) + self.topic_weight * value
        asked = set(terms)
        # a bare word ("Steps?", "template") names a field but asks nothing about it, and a
        # yes/no question ("Should I include a chart?") asks about one thing: no field prior
        fields = [n for n, words in _FIELD_TERMS.items() if not asked.isdisjoint(words)]
        if fields and (question.count(" ") < 2 or _YES_NO.match(question)):
            fields = []
        for name in fields:
            for doc, bonus in self._field_prior(task, name):
                out[doc] = out.get(doc, 0.0) + bonus
        if self.embed_weight and self.embedder is not None:
            try:
                sims = self.embedder.similarities(task, question)
            except MissingDependencyError as exc:
                logger.warning("hybrid user falls back to lexical scoring: %s", exc)
                self.embed_weight = 0.0
            else:
                for doc, sim in enumerate(sims):
                    if sim > 0:
                        out[doc] = out.get(doc, 0.0) + self.embed_weight * float(sim)
        return out

    def rank(self, task: MaskedTask, question: str, k: int) -> list[tuple[int, float]]:
        """The best ``k`` ``(sentence id, score)`` pairs above the bar, best first."""
        scored = self.scores(task, question)
        if not scored:
            return []
        hidden = task.hidden_ids
        first = question.lstrip()[:5].lower()
        factual = first.startswith(_WH) and _FACTUAL.search(question) is not None
        weight = self.factual_visible_weight if factual else self.visible_weight
        ratio = self.factual_hidden_ratio if factual else self.hidden_ratio
        best = best_hidden = 0.0
        for doc, value in scored.items():  # one pass: weigh visible ones, find both bests
            if doc in hidden:
                best_hidden = max(best_hidden, value)
            elif weight != 1.0:
                value = scored[doc] = value * weight
            best = max(best, value)
        if best_hidden < best and best_hidden >= max(self.min_score, ratio * best):
            scored = {d: v for d, v in scored.items() if d in hidden}
            best = best_hidden
        floor = max(self.min_score, self.min_ratio * best)
        kept = heapq.nsmallest(k, ((-v, doc) for doc, v in scored.items() if v >= floor))
        return [(doc, -neg) for neg, doc in kept]


@dataclass
class FaithfulUser:
    """The faithful offline user (see the module docstring).

    Args:
        k: The most sentences one answer may cite.
        scorer: ``"lexical"`` (default), ``"hybrid"`` (BM25 + MiniLM) or a
            :class:`FaithfulScorer`.
    """

    k: int = 3
    scorer: FaithfulScorer | str = "lexical"
    _cache: dict[Any, Any] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError(f"k (answer_max_sentences) must be >= 1, got {self.k}")
        if self.scorer == "lexical":
            self.scorer = FaithfulScorer()
        elif self.scorer == "hybrid":
            self.scorer = FaithfulScorer(
                min_score=3.0, embed_weight=6.0, embedder=EmbeddingScorer()
            )
        elif isinstance(self.scorer, str):
            raise ValueError(
                f"unknown scorer {self.scorer!r}; use 'lexical', 'hybrid' or a FaithfulScorer"
            )

    def answer(self, question: str, state: EpisodeState) -> Answer:
        reading = read_message(question)
        if reading.kind == "unclear":
            return Answer(UNCLEAR_REPLY, (), "unclear")
        assert isinstance(self.scorer, FaithfulScorer)
        ranked: list[tuple[int, float]] = []
        for part in reading.parts:
            if len(ranked) >= self.k:
                break
            seen = {i for i, _ in ranked}
            found = [r for r in self.scorer.rank(state.task, part, self.k) if r[0] not in seen]
            ranked.extend(found[: self.k - len(ranked)])
        return answer_from_ranked(state, ranked, self._cache)
