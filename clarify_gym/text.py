"""Lexical text tools shared by the offline user, the judge and the feature wrapper.

Tokens are lower-cased words with English stop words removed and a light, deterministic suffix
stemmer (``sections`` -> ``section``, ``studies`` -> ``study``, ``reviewed`` -> ``review``).
:class:`BM25Index` scores a query against a fixed list of documents (the sentences of a task)
through an inverted index, so a query costs time in its matching postings, not in the number of
sentences.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache

__all__ = ["STOPWORDS", "BM25Index", "stem", "token_set", "tokenize"]

_WORD = re.compile(r"[a-z0-9]+")

STOPWORDS = frozenset(
    [
        "a",
        "about",
        "above",
        "after",
        "again",
        "against",
        "all",
        "am",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "doing",
        "down",
        "during",
        "each",
        "else",
        "ever",
        "few",
        "for",
        "from",
        "further",
        "had",
        "has",
        "have",
        "having",
        "he",
        "her",
        "here",
        "hers",
        "herself",
        "him",
        "himself",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "itself",
        "just",
        "let",
        "me",
        "might",
        "more",
        "most",
        "my",
        "myself",
        "no",
        "nor",
        "not",
        "now",
        "of",
        "off",
        "on",
        "once",
        "only",
        "or",
        "other",
        "ought",
        "our",
        "ours",
        "ourselves",
        "out",
        "over",
        "own",
        "per",
        "please",
        "same",
        "shall",
        "she",
        "should",
        "so",
        "some",
        "such",
        "than",
        "that",
        "the",
        "their",
        "theirs",
        "them",
        "themselves",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "to",
        "too",
        "under",
        "until",
        "up",
        "upon",
        "us",
        "very",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "would",
        "yet",
        "you",
        "your",
        "yours",
        "yourself",
        "yourselves",
        "also",
        "may",
        "much",
        "many",
        "want",
        "wants",
        "need",
        "needs",
        "like",
        "tell",
        "know",
        "think",
        "thing",
        "things",
        "get",
        "got",
        "give",
        "given",
        "make",
        "made",
        "use",
        "used",
        "using",
        "one",
        "ones",
        "s",
        "t",
        "d",
        "ll",
        "re",
        "ve",
        "m",
    ]
)

_SUFFIXES: tuple[tuple[str, str, int], ...] = (
    # (suffix, replacement, minimum stem length kept)
    ("ies", "y", 3),
    ("sses", "ss", 2),
    ("ness", "", 4),
    ("ments", "ment", 4),
    ("ings", "", 4),
    ("ing", "", 4),
    ("edly", "", 4),
    ("ied", "y", 3),
    ("ed", "", 4),
    ("ly", "", 4),
    ("es", "e", 4),
    ("s", "", 3),
)
_NO_STRIP_S = ("ss", "us", "is", "ys", "as", "os")
_stem_cache: dict[str, str] = {}


def stem(word: str) -> str:
    """A light suffix stemmer: enough to match plurals and verb forms, never empties a word.

    >>> [stem(w) for w in ["sections", "studies", "reviewed", "analysis", "formatting", "class"]]
    ['section', 'study', 'review', 'analysis', 'format', 'class']
    """
    cached = _stem_cache.get(word)
    if cached is not None:
        return cached
    result = word
    if not word.isdigit():
        for suffix, replacement, keep in _SUFFIXES:
            if word.endswith(suffix) and len(word) - len(suffix) >= keep:
                if suffix == "s" and word.endswith(_NO_STRIP_S):
                    continue
                result = word[: -len(suffix)] + replacement
                if suffix in ("ing", "ed", "ings") and len(result) > 3 and result[-1] == result[-2]:
                    result = result[:-1]  # formatting -> formatt -> format
                break
    if len(_stem_cache) < 200_000:
        _stem_cache[word] = result
    return result


class _TokenCache(dict[str, str]):
    """word -> stemmed token, or ``""`` for a stop word; fills itself on a miss."""

    def __missing__(self, word: str) -> str:
        token = "" if (word in STOPWORDS or len(word) < 2) else stem(word)
        if len(self) < 200_000:
            self[word] = token
        return token


_tokens = _TokenCache()


def tokenize(text: str) -> list[str]:
    """Content tokens of ``text``: lower-cased, stop words dropped, stemmed.

    >>> tokenize("What sections should the final Report include?")
    ['section', 'final', 'report', 'include']
    """
    return list(filter(None, map(_tokens.__getitem__, _WORD.findall(text.lower()))))


@lru_cache(maxsize=32_768)
def token_set(text: str) -> frozenset[str]:
    """The distinct tokens of ``text``, memoised: for texts that recur (task sentences, answers).

    >>> sorted(token_set("Tables and a table."))
    ['table']
    """
    return frozenset(tokenize(text))


class BM25Index:
    """Okapi BM25 over a fixed list of token lists, through an inverted index.

    Query terms count once each, however often a query repeats them (so stuffing a question
    with one word does not raise its score). ``boost(term)`` multiplies a term's idf.

    >>> index = BM25Index([["risk", "score"], ["table", "dose"], ["risk", "table"]])
    >>> {doc: round(score, 2) for doc, score in sorted(index.scores(["risk", "risk", "dose"]).items())}
    {0: 0.47, 1: 0.98, 2: 0.47}
    """

    #: Terms in at least this many documents count as common (see :meth:`scores`).
    COMMON_DF = 6

    def __init__(
        self,
        documents: Sequence[Sequence[str]],
        *,
        k1: float = 1.2,
        b: float = 0.75,
        boost: Callable[[str], float] | None = None,
    ) -> None:
        self.size = len(documents)
        lengths = [len(d) for d in documents]
        avg = (sum(lengths) / self.size) if self.size and sum(lengths) else 1.0
        frequencies = Counter(term for doc in documents for term in set(doc))
        self.idf: dict[str, float] = {
            term: math.log(1.0 + (self.size - df + 0.5) / (df + 0.5))
            * (boost(term) if boost else 1.0)
            for term, df in frequencies.items()
        }
        self.postings: dict[str, tuple[tuple[int, float], ...]] = {}
        build: dict[str, list[tuple[int, float]]] = {}
        for doc_id, doc in enumerate(documents):
            norm = k1 * (1.0 - b + b * lengths[doc_id] / avg)
            for term, tf in Counter(doc).items():
                weight = self.idf[term] * tf * (k1 + 1.0) / (tf + norm)
                build.setdefault(term, []).append((doc_id, weight))
        self.postings = {term: tuple(p) for term, p in build.items()}
        self._common = frozenset(t for t, p in self.postings.items() if len(p) >= self.COMMON_DF)
        self._base_cache: dict[frozenset[str], dict[int, float]] = {}

    def scores(self, query: Iterable[str]) -> dict[int, float]:
        """BM25 score of every document that shares at least one term with ``query``.

        The summed postings of a query's *common* terms (in ``COMMON_DF`` or more documents)
        are memoised per set of common terms, so long postings are walked once.
        """
        terms = set(query)
        common = terms & self._common
        if common:
            key = frozenset(common)
            base = self._base_cache.get(key)
            if base is None:
                base = self._accumulate(common, {})
                if len(self._base_cache) < 4096:
                    self._base_cache[key] = base
            out = dict(base)
            terms -= common
        else:
            out = {}
        return self._accumulate(terms, out)

    def _accumulate(self, terms: Iterable[str], out: dict[int, float]) -> dict[int, float]:
        get = out.get
        for term in terms:
            for doc_id, weight in self.postings.get(term, ()):
                out[doc_id] = get(doc_id, 0.0) + weight
        return out

    def top(
        self, query: Iterable[str], k: int, *, min_score: float = 0.0, min_ratio: float = 0.0
    ) -> list[tuple[int, float]]:
        """The ``k`` best ``(doc_id, score)`` pairs above ``max(min_score, min_ratio * best)``.

        Ties are broken by document order, so the result is deterministic.
        """
        scored = self.scores(query)
        if not scored:
            return []
        floor = max(min_score, min_ratio * max(scored.values()))
        kept = [(-score, doc_id) for doc_id, score in scored.items() if score >= floor]
        kept.sort()
        return [(doc_id, -neg) for neg, doc_id in kept[:k]]
