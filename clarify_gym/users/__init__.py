"""Simulated users: the person who wrote the task and answers the assistant's questions.

* :mod:`clarify_gym.users.base`: the :class:`SimulatedUser` protocol and :class:`Answer`;
* :mod:`clarify_gym.users.retrieval`: :class:`RetrievalUser`, the v0 offline user (BM25 or MiniLM);
* :mod:`clarify_gym.users.faithful`: :class:`FaithfulUser`, the v1 offline user (reads the
  message first; cue words only raise sentences about the cue; BM25, or BM25 + MiniLM);
* :mod:`clarify_gym.users.llm`: :class:`~clarify_gym.users.llm.LLMUser`, the LLM user oracle.

:func:`make_user` builds one from the env's ``user`` argument.
"""

from __future__ import annotations

from typing import Any

from clarify_gym.users.base import Answer, SimulatedUser
from clarify_gym.users.faithful import FaithfulScorer, FaithfulUser
from clarify_gym.users.retrieval import EmbeddingScorer, LexicalScorer, RetrievalUser, Scorer

__all__ = [
    "Answer",
    "EmbeddingScorer",
    "FaithfulScorer",
    "FaithfulUser",
    "LexicalScorer",
    "RetrievalUser",
    "Scorer",
    "SimulatedUser",
    "make_user",
]


def make_user(spec: SimulatedUser | str, *, k: int, **kwargs: Any) -> SimulatedUser:
    """Build a user from the env's ``user`` argument.

    ``"faithful"``: :class:`FaithfulUser` (BM25; the default from ``ProactiveGather-v1``),
    ``"faithful-hybrid"``: with BM25 + MiniLM; ``"lexical"`` / ``"retrieval"``:
    :class:`RetrievalUser` with BM25 (the v0 default); ``"embedding"``: with MiniLM; ``"llm"`` / ``"llm:<model>"``: the LLM user oracle
    (:class:`~clarify_gym.users.llm.LLMUser`, endpoint and model from the environment); a
    :class:`SimulatedUser` instance is used as it is.
    """
    if isinstance(spec, str):
        if spec in ("faithful", "faithful-hybrid"):
            scorer = "hybrid" if spec == "faithful-hybrid" else "lexical"
            return FaithfulUser(k=k, scorer=scorer, **kwargs)
        if spec in ("lexical", "retrieval", "bm25"):
            return RetrievalUser(k=k, scorer="lexical", **kwargs)
        if spec == "embedding":
            return RetrievalUser(k=k, scorer="embedding", **kwargs)
        if spec == "llm" or spec.startswith("llm:"):
            from clarify_gym.users.llm import LLMUser

            return LLMUser(k=k, model=spec.partition(":")[2] or None, **kwargs)
        raise ValueError(
            f"unknown user {spec!r}; use 'faithful', 'faithful-hybrid', 'lexical', 'embedding', 'llm', 'llm:<model>', or a "
            "SimulatedUser instance"
        )
    if not isinstance(spec, SimulatedUser):
        raise TypeError(
            f"user must be a name or have an answer(question, state) method, got {type(spec).__name__}"
        )
    return spec
