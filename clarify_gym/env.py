"""ProactiveGather: ask the person questions before writing, rewarded for new hidden information."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, SupportsFloat

import gymnasium as gym
from gymnasium import spaces

from clarify_gym.dialogue import (
    STOP,
    EpisodeState,
    Turn,
    build_charset,
    format_conversation,
    format_observation,
    sanitize,
)
from clarify_gym.errors import EpisodeEndedError
from clarify_gym.inputs import DialogueText, clean_action
from clarify_gym.masking import DEFAULT_POLICY, FIELDS, MaskedTask, MaskPolicy, mask
from clarify_gym.rewards import (
    RewardWeights,
    check_setting,
    combine,
    new_information,
    paper_binary,
    question_cost,
    resolve_reward,
)
from clarify_gym.tasks import Task, load_tasks
from clarify_gym.users import Answer, SimulatedUser, make_user
from clarify_gym.users.base import clean_citations
from clarify_gym.writing import Judge, Writer, make_judge, make_writer

__all__ = ["EPISODE_METRICS", "STOP", "ProactiveGatherEnv", "is_stop"]

#: The episode metrics the last step's info carries (the glossary in the README).
EPISODE_METRICS = (
    "env/new_info",
    "env/hidden_coverage",
    "env/paper_reward",
    "env/questions",
    "env/redundant_rate",
    "eval/checklist_score",
)
_STOP_STRIP = " \t\n[]<>().!\"'`*"
_INVALID_ANSWERS = {
    "empty": "(That message was empty. Ask one question, or reply STOP.)",
    "too_long": "(That message is too long to be one question. Ask one short question, or reply STOP.)",
    "no_words": "(That message has no words in it. Ask one question, or reply STOP.)",
    "unsupported_characters": "(That message is written in characters this environment does "
    "not support. Ask in the language and characters of the task, or reply STOP.)",
}


def is_stop(action: str) -> bool:
    """Whether an action means STOP: ``STOP`` in any case, optionally wrapped in brackets,
    quotes, backticks, asterisks or followed by ``.`` / ``!``.

    >>> [is_stop(a) for a in ["STOP", " stop. ", "[STOP]", "<stop>", "**Stop**", "stop asking?"]]
    [True, True, True, True, True, False]
    """
    return len(action) <= 32 and action.strip(_STOP_STRIP).upper() == STOP


class ProactiveGatherEnv(gym.Env[str, str]):
    """Gather the information a person left out of a writing task, by asking them questions.

    ## Description
    Each episode is one DOLOMITES task (Malaviya et al. 2024), masked as in Huang et al. (2025,
    arXiv 2507.21389): the assistant sees the task objective, the input sections and the
    concrete input; the person also knows the task procedure, the output sections and the notes
    (the hidden set H, as numbered sentences). The assistant asks up to ``max_questions``
    questions, one per step; a simulated user answers each from the task document and cites the
    sentences the answer draws on. When the assistant says STOP, or the budget is spent, a
    fixed writer drafts an outline from the visible task and the user's answers, and a judge
    scores it against the task's checklist (one item per output-section bullet and per notes
    sentence).

    ## Action Space
    ``Text(max_length=question_max_chars)``: one question. ``STOP`` in any case, optionally
    wrapped in ``[]``, ``<>``, ``()``, quotes, backticks or ``**`` and followed by ``.``/``!``,
    ends the episode (see :func:`is_stop`). A non-string raises ``TypeError``. The action is
    cleaned first (:func:`~clarify_gym.inputs.clean_action`: NFKC, zero-width characters
    removed, spaces collapsed), so STOP and the length cap apply to what the user would read.
    An empty, whitespace-only or word-less question, one longer than ``question_max_chars``
    after cleaning, or one mostly in characters outside the charset, is a wasted turn: it uses
    one question of the budget, earns no information reward, and ``info["invalid"]`` says why
    (``"empty"``, ``"no_words"``, ``"too_long"``, ``"unsupported_characters"``). Other
    characters outside the charset are shown as ``?`` in the observation.

    ## Observation Space
    ``Text`` with an explicit charset (printable ASCII, newline, common typography, and every
    character of the loaded tasks' *visible* text, so the charset reveals nothing hidden) and a
    ``max_length`` computed from the tasks and budgets. ``AsyncVectorEnv`` needs
    ``shared_memory=False`` (``gym.make_vec(id, n, vectorization_mode="async",
    vector_kwargs={"shared_memory": False})``); with the default it raises an error saying so.
    The observation is the visible task and the dialogue so far::

        ## Task
        <objective, input sections, concrete input>

        ## Conversation
        Assistant: <question>
        User: <answer>

        ## Status
        Questions asked: 1 of 5. Ask one question, or reply STOP to start writing.

    ## Rewards
    With A(q) the ids the user cites for question q, H the hidden ids and E the ids elicited
    before this question, the step reward is ``sum(weight * term)`` over:

    - ``new_info`` = |(A(q) ∩ H) \\ E| / |H| (or weighted by ``sentence_weights``); weight 1 in
      ``reward="new_info"`` (default). An episode's return is its hidden coverage in [0, 1];
      repeating a question earns 0.
    - ``paper_binary`` = 1 if A(q) ∩ H ≠ ∅ else 0, the paper's reward; weight 1 (and new_info
      0) in ``reward="paper"``.
    - ``question_cost`` = ``-question_cost`` for every question, valid or not (0 by default).
    - ``checklist`` = the judge's checklist score, on the last step, with weight
      ``checklist_weight`` (0 by default).

    Until the episode ends, ``info["reward_terms"]`` reports only the terms that are paid
    (non-zero weight): an unpaid term could reveal what the reward does not (under
    ``reward="paper"`` one ``new_info`` share would give |H| exactly). The last step reports
    every term of that step. Under ``reward="new_info"`` the paid reward is itself a share of
    H; nothing else before the end reveals |H|.

    ## Starting State
    ``reset(seed=..., options={"task_id": ...})`` picks the named task, or one uniformly with
    the env's RNG. ``options={"task_index": i}`` picks by position.

    ## Episode End
    - Terminated: the action is STOP (the STOP step adds only the checklist term).
    - Truncated: the question budget is spent (the last question's step adds the checklist
      term). Either way ``info`` then carries ``outline``, ``checklist_met`` and the episode
      metrics ``env/new_info``, ``env/hidden_coverage``, ``env/paper_reward``,
      ``env/questions``, ``env/redundant_rate`` and ``eval/checklist_score``, and
      ``episode_return`` (the sum of every reward the episode paid, checklist term included).
    - ``step`` after the end raises :class:`~clarify_gym.errors.EpisodeEndedError`: call
      ``reset()``.

    ## Info
    Every step: ``task_id``, ``field``, ``questions_asked``, ``questions_left``, ``dialogue``
    (chat messages). After a question also ``answer``, ``answer_kind`` (``"answer"``,
    ``"pointer"``, ``"nothing"``, ``"unclear"``, ``"invalid"``, ``"error"``), ``reward_terms``,
    ``invalid`` (None or the reason) and ``user_error`` (None, or why the user could not
    answer). Nothing before the end reveals |H| or sentence ids (either would let an agent work
    out H); the last step adds ``num_hidden`` (|H|), ``elicited`` (hidden ids elicited), and
    per question ``cited_ids`` and ``new_hidden_ids``, for the episode metrics, and
    ``checklist_items`` when the judge built its own checklist (an LLM-built one). LLM
    parts add ``user_usage`` per step and, at the end, the episode's ``llm/prompt_tokens``,
    ``llm/completion_tokens`` and ``llm/calls`` (user, writer and judge; replies replayed from
    the cache count as when first made, so a replay reports what the original did), and per
    LLM part ``llm/<role>/calls``, ``llm/<role>/served_model`` and ``llm/<role>/<count>`` for
    the counts of :data:`clarify_gym.llm.reply.COUNTS` (JSON replies, first-try parses,
    repairs, length retries, parse failures, retries, timeouts, fallbacks; the last three are
    those of the requests made, none for a replay).

    ## Arguments
    - ``tasks``: anything :func:`~clarify_gym.tasks.load_tasks` takes, or a list of tasks
      (default ``"sample"``); ``split``: keep one split.
    - ``user``: ``"faithful"`` (the offline user of ``-v1`` ids:
      :class:`~clarify_gym.users.FaithfulUser`), ``"faithful-hybrid"`` (the same with BM25 +
      MiniLM), ``"lexical"`` (the v0 BM25 retrieval user, the constructor's default),
      ``"embedding"``,
      ``"llm"`` / ``"llm:<model>"`` (the LLM user oracle over any OpenAI-compatible endpoint,
      see :mod:`clarify_gym.llm`), or any :class:`~clarify_gym.users.SimulatedUser`.
    - ``reward``: ``"new_info"`` (default), ``"paper"`` or a
      :class:`~clarify_gym.rewards.RewardWeights`; ``question_cost``, ``checklist_weight``,
      ``sentence_weights`` (field name -> importance for ``new_info``): each a finite
      number >= 0.
    - ``max_questions`` (5), ``answer_max_sentences`` (k = 3: the most sentences one answer
      cites), ``question_max_chars`` (500), ``answer_max_chars`` (2000).
    - ``mask_policy``: which fields are hidden (the paper's split by default).
    - ``writer`` (``"template"`` or ``"llm"``), ``judge`` (``"lexical"`` or ``"llm"``): or
      Writer/Judge instances.
    - ``render_mode``: ``"ansi"`` (``render()`` returns the transcript) or ``"human"`` (prints).

    ## Version History
    - v1: the faithful offline user (``user="faithful"``): a message that is not an
      intelligible question (instructions to the user, "tell me everything", word lists,
      pasted statements) gets "please ask a clear question" and no citation; cue words raise
      only sentences about the cue, not a whole field; several questions in one message are
      answered in order within k. Tuned on the train split of the gold labels; measured by
      ``python -m clarify_bench.studies.user_fidelity`` (``docs/user_fidelity.md``).
    - All ids, from issue 28 (v2's batch): until the episode ends ``info["reward_terms"]``
      holds only the paid terms and ``render()`` shows neither |H| nor what was elicited;
      the question and answer caps apply after NFKC normalisation, so the observation is
      always inside ``observation_space``; ``question_cost``, ``checklist_weight``,
      ``sentence_weights`` and :class:`~clarify_gym.rewards.RewardWeights` must be finite
      and >= 0 (one-line ``ValueError``).
    - All ids, from v1's release: actions are cleaned before STOP and the length cap are
      checked; unsupported scripts get ``unsupported_characters``; the charset holds only
      visible characters; ``num_hidden``, ``elicited``, ``cited_ids`` and ``new_hidden_ids``
      appear only on the last step; the observation space says how to use ``AsyncVectorEnv``.
    - v0: initial version (offline retrieval user, new-information reward, 5 questions, k = 3).
    """

    metadata = {"render_modes": ["ansi", "human"], "render_fps": 4}  # noqa: RUF012

    def __init__(
        self,
        tasks: str | Sequence[Task] = "sample",
        split: str | None = None,
        user: SimulatedUser | str = "lexical",
        reward: str | RewardWeights = "new_info",
        max_questions: int = 5,
        answer_max_sentences: int = 3,
        question_max_chars: int = 500,
        answer_max_chars: int = 2000,
        question_cost: float = 0.0,
        checklist_weight: float | None = None,
        sentence_weights: Mapping[str, float] | None = None,
        mask_policy: MaskPolicy = DEFAULT_POLICY,
        writer: Writer | str = "template",
        judge: Judge | str = "lexical",
        render_mode: str | None = None,
    ) -> None:
        if max_questions < 1:
            raise ValueError(f"max_questions must be >= 1, got {max_questions}")
        if question_max_chars < 8 or answer_max_chars < 64:
            raise ValueError("question_max_chars must be >= 8 and answer_max_chars >= 64")
        question_cost = check_setting("question_cost", question_cost)
        if checklist_weight is not None:
            checklist_weight = check_setting("checklist_weight", checklist_weight)
        for name, value in (sentence_weights or {}).items():
            check_setting(f"sentence_weights[{name!r}]", value)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}"
            )
        unknown = set(sentence_weights or {}) - set(FIELDS)
        if unknown:
            raise ValueError(
                f"sentence_weights has unknown field(s) {sorted(unknown)}; fields are {FIELDS}"
            )
        self._tasks = load_tasks(tasks, split=split)
        self._by_id = {t.id: i for i, t in enumerate(self._tasks)}
        self.mask_policy = mask_policy
        self.max_questions = max_questions
        self.answer_max_sentences = answer_max_sentences
        self.question_max_chars = question_max_chars
        self.answer_max_chars = answer_max_chars
        self.question_cost = question_cost
        weights = resolve_reward(reward)
        if checklist_weight is not None:
            weights = dataclasses.replace(weights, checklist=checklist_weight)
        self.reward_weights = weights
        self.sentence_weights = dict(sentence_weights) if sentence_weights else None
        self.user = make_user(user, k=answer_max_sentences)
        self.writer = make_writer(writer)
        self.judge = make_judge(judge)
        self.render_mode = render_mode
        self._masked: dict[int, MaskedTask] = {}

        # only what the assistant sees: a character used only in hidden fields would reveal them
        self.charset = build_charset(self._mask(i).visible_text for i in range(len(self._tasks)))
        longest_visible = max(len(self._mask(i).visible_text) for i in range(len(self._tasks)))
        per_turn = len("Assistant: \nUser: \n") + question_max_chars + answer_max_chars
        obs_max = longest_visible + max_questions * per_turn + 512
        self.action_space = spaces.Text(
            max_length=question_max_chars, min_length=1, charset=self.charset
        )
        self.observation_space = DialogueText(
            max_length=obs_max, min_length=1, charset=self.charset
        )

        self._state: EpisodeState | None = None

    # ---- helpers -----------------------------------------------------------------------

    @property
    def tasks(self) -> list[Task]:
        """The tasks this env samples from."""
        return self._tasks

    @property
    def state(self) -> EpisodeState | None:
        """The current episode's state (None before the first reset)."""
        return self._state

    def describe_parts(self) -> dict[str, dict[str, Any]]:
        """What a run's metadata records about the user, writer and judge: each part's own
        ``describe()`` (the LLM parts: model, endpoint, sampling, limits; never a key), else its
        class name."""

        def one(part: object) -> dict[str, Any]:
            describe = getattr(part, "describe", None)
            return describe() if callable(describe) else {"class": type(part).__name__}

        return {"user": one(self.user), "writer": one(self.writer), "judge": one(self.judge)}

    def _mask(self, index: int) -> MaskedTask:
        found = self._masked.get(index)
        if found is None:
            found = self._masked[index] = mask(self._tasks[index], self.mask_policy)
        return found

    def _observation(self) -> str:
        assert self._state is not None
        return format_observation(self._state, conversation=self._state.conversation or None)

    def _info(self) -> dict[str, Any]:
        state = self._state
        assert state is not None
        return {
            "task_id": state.task.task.id,
            "field": state.task.task.field,
            "questions_asked": state.questions_asked,
            "questions_left": state.questions_left,
            "dialogue": state.messages(),
        }

    def _add_usage(self, usage: Mapping[str, int] | None, role: str) -> None:
        """Add an LLM part's usage to the episode's total (tokens, calls) and to its role's
        counts (``<role>/calls`` and ``<role>/<count>`` for each of
        :data:`clarify_gym.llm.reply.COUNTS`)."""
        from clarify_gym.llm.reply import COUNTS

        assert self._state is not None
        total = self._state.llm_usage
        for key in ("prompt_tokens", "completion_tokens", "calls"):
            if usage and key in usage:
                total[key] = total.get(key, 0) + int(usage[key])
        for key in ("calls", *COUNTS):
            if usage and key in usage:
                total[f"{role}/{key}"] = total.get(f"{role}/{key}", 0) + int(usage[key])

    def _llm_roles(self) -> dict[str, Any]:
        """``llm/<role>/...`` info of the episode for each LLM part (user, writer, judge): its
        calls and :data:`~clarify_gym.llm.reply.COUNTS` (0 when nothing happened) and the model
        its server last said it served."""
        from clarify_gym.llm.reply import COUNTS

        assert self._state is not None
        out: dict[str, Any] = {}
        for role, part in (("user", self.user), ("writer", self.writer), ("judge", self.judge)):
            client = getattr(part, "client", None)
            if client is None or not hasattr(client, "served_model"):
                continue
            for key in ("calls", *COUNTS):
                out[f"llm/{role}/{key}"] = self._state.llm_usage.get(f"{role}/{key}", 0)
            out[f"llm/{role}/served_model"] = client.served_model
        return out

    def _finish(self, info: dict[str, Any]) -> float:
        """Write and judge the outline; add the episode metrics and return to ``info``; return
        the bonus."""
        state = self._state
        assert state is not None
        state.done = True
        outline = self.writer.write(state.task, state.turns)
        verdict = self.judge.judge(state.task, outline)
        self._add_usage(getattr(self.writer, "last_usage", None), "writer")
        self._add_usage(verdict.usage, "judge")
        if state.llm_usage:
            info.update({f"llm/{k}": v for k, v in state.llm_usage.items() if "/" not in k})
        info.update(self._llm_roles())
        if verdict.items is not None:
            info["checklist_items"] = list(verdict.items)
        asked = state.questions_asked
        redundant = sum(1 for t in state.turns if not t.new_hidden_ids)
        info.update(
            {
                "num_hidden": len(state.task.hidden_ids),
                "elicited": tuple(sorted(state.elicited)),
                "cited_ids": [list(t.cited_ids) for t in state.turns],
                "new_hidden_ids": [list(t.new_hidden_ids) for t in state.turns],
                "outline": outline,
                "checklist_met": verdict.met,
                "judge_error": verdict.error,
                "env/new_info": len(state.elicited),
                "env/hidden_coverage": len(state.elicited) / len(state.task.hidden_ids),
                "env/paper_reward": state.paper_total,
                "env/questions": asked,
                "env/redundant_rate": redundant / asked if asked else 0.0,
                "eval/checklist_score": verdict.score,
            }
        )
        state.bonus = self.reward_weights.checklist * verdict.score
        info["episode_return"] = state.episode_return
        return state.bonus

    def _stop(self) -> tuple[str, SupportsFloat, bool, bool, dict[str, Any]]:
        state = self._state
        assert state is not None
        info = self._info()
        reward = self._finish(info)
        info["reward_terms"] = {"checklist": info["eval/checklist_score"]}
        state.last_info = info
        return self._observation(), reward, True, False, info

    # ---- gymnasium API -------------------------------------------------------------------

    def step(self, action: str) -> tuple[str, SupportsFloat, bool, bool, dict[str, Any]]:
        if not isinstance(action, str):
            raise TypeError(
                f"action must be a str (a question, or 'STOP'), got {type(action).__name__}: {action!r:.80}"
            )
        if self._state is None:
            raise EpisodeEndedError("call reset() before step(): no episode has started")
        if self._state.done:
            raise EpisodeEndedError(
                "this episode has ended (STOP or no questions left); call reset() to start a new one"
            )
        state = self._state

        cleaned = clean_action(action, self.charset, self.question_max_chars, is_stop)
        if cleaned.stop:
            return self._stop()
        invalid, question = cleaned.invalid, cleaned.text

        answer = (
            Answer(_INVALID_ANSWERS[invalid], (), "invalid")
            if invalid
            else self.user.answer(question, state)
        )
        cited = clean_citations(
            answer.cited_ids, valid=len(state.task.sentences), k=self.answer_max_sentences
        )
        hidden = state.task.hidden_ids
        new_hidden = tuple(i for i in cited if i in hidden and i not in state.elicited)
        terms = {
            "new_info": new_information(cited, hidden, state.elicited, state.weights),
            "paper_binary": paper_binary(cited, hidden),
            "question_cost": question_cost(self.question_cost),
        }
        reward = combine(terms, self.reward_weights)
        state.paper_total += terms["paper_binary"]
        # sanitising may lengthen text (NFKC), so the cap applies to the sanitised answer
        text = sanitize(answer.text[: 4 * self.answer_max_chars], self.charset)
        if "\n" in text or "  " in text or text != text.strip() or not text:
            text = " ".join(text.split()) or "(no answer)"
        if len(text) > self.answer_max_chars:
            text = text[: self.answer_max_chars - 4].rstrip() + " ..."
        turn = Turn(question, text, cited, new_hidden, reward, invalid, answer.error)
        state.turns.append(turn)
        state.elicited.update(new_hidden)
        line = f"Assistant: {question}\nUser: {text}"
        state.conversation = f"{state.conversation}\n{line}" if state.conversation else line

        info = self._info()
        weights = self.reward_weights
        info.update(
            {
                "answer": text,
                "answer_kind": answer.kind,
                # until the end only the paid terms: an unpaid one may reveal what the reward
                # hides (under reward="paper" one new_info share gives |H| exactly)
                "reward_terms": {n: v for n, v in terms.items() if getattr(weights, n)},
                "invalid": invalid,
                "user_error": answer.error,
            }
        )
        if answer.usage:
            info["user_usage"] = answer.usage
            self._add_usage(answer.usage, "user")
        truncated = state.questions_left <= 0
        if truncated:
            bonus = self._finish(info)
            info["reward_terms"] = {**terms, "checklist": info["eval/checklist_score"]}
            reward += bonus
        state.last_info = info
        if self.render_mode == "human":
            self.render()
        return self._observation(), reward, False, truncated, info

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[str, dict[str, Any]]:
        super().reset(seed=seed)
        options = options or {}
        if "task_id" in options:
            if options["task_id"] not in self._by_id:
                raise ValueError(
                    f"unknown task_id {options['task_id']!r}; see env.unwrapped.tasks for the ids"
                )
            index = self._by_id[options["task_id"]]
        elif "task_index" in options:
            index = int(options["task_index"])
            if not 0 <= index < len(self._tasks):
                raise ValueError(f"task_index must be in [0, {len(self._tasks)}), got {index}")
        else:
            index = int(self.np_random.integers(len(self._tasks)))
        masked = self._mask(index)
        weights = (
            {s.id: self.sentence_weights.get(s.field, 1.0) for s in masked.sentences if s.hidden}
            if self.sentence_weights
            else None
        )
        self._state = EpisodeState(task=masked, max_questions=self.max_questions, weights=weights)
        info = self._info()
        self._state.last_info = info
        if self.render_mode == "human":
            self.render()
        return self._observation(), info

    def render(self) -> str | None:
        if self._state is None:
            return None
        lines = [self._observation()]
        state = self._state
        # |H| and what was elicited only once the episode has ended (they would reveal H)
        elicited = (
            f" elicited {len(state.elicited)}/{len(state.task.hidden_ids)} hidden sentences;"
            if state.done
            else ""
        )
        lines.append(
            f"\n[{state.task.task.id}]{elicited} rewards {[round(t.reward, 3) for t in state.turns]}"
        )
        if state.done and "outline" in state.last_info:
            last = state.last_info
            lines.append(
                f"\n## Outline (checklist score {last['eval/checklist_score']:.2f})\n{last['outline']}"
            )
        text = "\n".join(lines)
        if self.render_mode == "human":
            print(text + "\n" + "-" * 80)
            return None
        return text

    def transcript(self) -> str:
        """The conversation so far as ``Assistant:``/``User:`` lines."""
        return format_conversation(self._state.turns) if self._state else ""
