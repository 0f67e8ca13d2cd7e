"""What comes back from a chat endpoint: :class:`Completion`, :class:`Usage`, and JSON replies
(:func:`parse_json_reply`, and :func:`json_exchange`, the one-retry protocol behind
:meth:`~clarify_gym.llm.LLMClient.complete_json`).

A reply that does not parse or validate gets one more request:

* cut for length (``finish_reason == "length"``): the original request again with a firmer
  instruction to be brief (:data:`LENGTH_PROMPT`); the cut reply is not echoed, since it would
  only fill the context;
* otherwise a repair request: the original messages, the first :data:`ECHO_CHARS` characters of
  the bad reply, and what was wrong with it (:data:`REPAIR_PROMPT`).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from clarify_gym.errors import LLMReplyError
from clarify_gym.llm.config import redact

__all__ = [
    "COUNTS",
    "ECHO_CHARS",
    "LENGTH_PROMPT",
    "REPAIR_PROMPT",
    "Completion",
    "JSONReply",
    "Usage",
    "json_exchange",
    "parse_json_reply",
    "strip_thinking",
]

logger = logging.getLogger(__name__)
T = TypeVar("T")

REPAIR_PROMPT = (
    "Your reply could not be used: {problem}. Reply again with only the JSON object asked for, "
    "no other text."
)
LENGTH_PROMPT = (
    "Your previous reply was too long and was cut off before it ended. Reply again with only "
    "the JSON object asked for: no other text, and keep every string short (one or two "
    "sentences)."
)
#: How much of a bad reply a repair request shows the model.
ECHO_CHARS = 200
_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL | re.IGNORECASE)
_THINK_BLOCK = re.compile(r"<(think|thinking|reasoning)>.*?(?:</\1>|$)", re.DOTALL | re.IGNORECASE)
# a reply that only closes the block (the chat template opened it, as DeepSeek-R1 and Qwen3 do)
_OPEN_ENDED_THINK = re.compile(r"^.*</(?:think|thinking|reasoning)>", re.DOTALL | re.IGNORECASE)


def strip_thinking(text: str | None) -> str:
    """``text`` without thinking blocks (``<think>``, ``<thinking>``, ``<reasoning>``): a closed
    block, an unclosed one (cut off by the token limit) and everything before a lone closing
    tag; the rest, stripped.

    >>> strip_thinking("<think>They want sections.</think> Which sections?")
    'Which sections?'
    >>> strip_thinking("planning...</think>Who reads it?"), strip_thinking("<think>cut off")
    ('Who reads it?', '')
    """
    text = _THINK_BLOCK.sub(" ", text or "")
    return _OPEN_ENDED_THINK.sub(" ", text).strip()


def parse_json_reply(text: str) -> Any:
    """The JSON object in a model reply: code fences, thinking blocks and text around the
    outermost ``{...}`` are dropped. Raises ``ValueError`` when there is none.

    >>> parse_json_reply('Sure!\\n```json\\n{"answer": "Yes", "cited": [3]}\\n```')
    {'answer': 'Yes', 'cited': [3]}
    >>> parse_json_reply("<think>hmm {</think>{\\"met\\": [true]}")
    {'met': [True]}
    """
    text = strip_thinking(text)
    fenced = _FENCE.search(text)
    if fenced:
        text = fenced.group(1)
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        raise ValueError("the reply holds no JSON object")
    try:
        return json.loads(text[start : end + 1])
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"the reply is not valid JSON ({exc.msg} at character {exc.pos})"
        ) from None


#: What :class:`Usage` counts besides tokens and calls, in :meth:`Usage.as_dict` order: JSON
#: replies asked for, parsed on the first try, repair requests, length retries, replies still
#: unusable after the retry; failed attempts retried (HTTP 429/5xx, timeouts, dropped
#: connections), timed-out attempts, and requests sent again without ``response_format``
#: because the server said it does not support it.
COUNTS = (
    "json_replies",
    "parsed_first_try",
    "repairs",
    "length_retries",
    "parse_failures",
    "retries",
    "timeouts",
    "fallbacks",
)


@dataclass
class Usage:
    """Tokens, calls and what it took to get the replies (:data:`COUNTS`), summed over any
    number of requests."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    calls: int = 0
    #: Calls answered from the cache (their tokens are counted as when first made). Left out of
    #: :meth:`as_dict`, so what the env reports is the same when an episode is replayed.
    cache_hits: int = 0
    json_replies: int = 0
    parsed_first_try: int = 0
    repairs: int = 0
    length_retries: int = 0
    parse_failures: int = 0
    retries: int = 0
    timeouts: int = 0
    fallbacks: int = 0

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens

    def add(self, other: Usage | Mapping[str, int] | None) -> Usage:
        """Add ``other`` (a :class:`Usage` or its :meth:`as_dict`) in place; returns self."""
        if other is None:
            return self
        get = other.get if isinstance(other, Mapping) else lambda k, d=0: getattr(other, k, d)
        for key in ("prompt_tokens", "completion_tokens", "calls", "cache_hits", *COUNTS):
            setattr(self, key, getattr(self, key) + int(get(key, 0) or 0))
        return self

    def as_dict(self) -> dict[str, int]:
        """Tokens and calls as plain ints, for ``info`` dicts and results files, then the
        :data:`COUNTS` that are not 0 (without ``cache_hits``: a replayed episode reports
        what the original did; its transport counts, retries, timeouts and fallbacks, are
        those of the requests made this time, none for a replay).

        >>> Usage(10, 2, calls=1, cache_hits=1).as_dict()
        {'prompt_tokens': 10, 'completion_tokens': 2, 'total_tokens': 12, 'calls': 1}
        >>> Usage(10, 2, calls=2, json_replies=1, repairs=1).as_dict()["repairs"]
        1
        """
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
            "calls": self.calls,
            **{key: getattr(self, key) for key in COUNTS if getattr(self, key)},
        }


@dataclass(frozen=True)
class Completion:
    """One chat completion."""

    text: str
    usage: Usage
    model: str
    cached: bool = False
    finish_reason: str | None = None
    #: The model the server says it used (its reply's ``model`` field).
    served_model: str | None = None

    @classmethod
    def from_response(cls, response: Any, model: str) -> Completion:
        """The completion in an ``openai`` chat response (missing fields read as empty)."""
        choice = response.choices[0] if getattr(response, "choices", None) else None
        used = getattr(response, "usage", None)
        usage = Usage(
            int(getattr(used, "prompt_tokens", 0) or 0),
            int(getattr(used, "completion_tokens", 0) or 0),
            calls=1,
        )
        served = getattr(response, "model", None)
        return cls(
            (choice.message.content if choice is not None else None) or "",
            usage,
            model,
            False,
            getattr(choice, "finish_reason", None),
            served if isinstance(served, str) and served else None,
        )

    @classmethod
    def from_record(cls, record: Mapping[str, Any], model: str) -> Completion:
        """The completion in a cache record (see :meth:`~clarify_gym.llm.LLMClient.complete`).

        >>> c = Completion.from_record({"text": "hi", "usage": {"prompt_tokens": 3}}, "m")
        >>> c.text, c.cached, c.usage.prompt_tokens, c.usage.cache_hits
        ('hi', True, 3, 1)
        """
        usage = Usage(**record.get("usage", {}), calls=1, cache_hits=1)
        return cls(
            record["text"],
            usage,
            record.get("model", model),
            True,
            record.get("finish_reason"),
            record.get("served_model"),
        )


@dataclass(frozen=True)
class JSONReply(Generic[T]):
    """A validated JSON reply, the usage of every call it took, and the retry it needed."""

    value: T
    usage: Usage
    text: str
    #: ``None`` (first try), ``"repair"`` or ``"length"`` (see the module docstring).
    retry: str | None = None

    @property
    def repaired(self) -> bool:
        """Whether a second request was needed."""
        return self.retry is not None


def json_exchange(
    messages: list[Mapping[str, str]], validate: Callable[[Any], T], secret: str | None
) -> Generator[list[Mapping[str, str]], Completion, JSONReply[T]]:
    """The JSON protocol, shared by the sync and async paths: yields the messages to send,
    receives each completion, returns the reply (or raises :class:`LLMReplyError`)."""
    usage = Usage(json_replies=1)
    request = messages
    retry: str | None = None
    for last in (False, True):
        completion = yield request
        usage.add(completion.usage)
        try:
            value = validate(parse_json_reply(completion.text))
            usage.parsed_first_try = int(retry is None)
            return JSONReply(value, usage, completion.text, retry)
        except (ValueError, TypeError, KeyError) as exc:
            problem = str(exc).strip("'\"") or type(exc).__name__
        if completion.finish_reason == "length":
            problem = f"the reply was cut at the length limit ({problem})"
        logger.info("LLM JSON reply rejected (%s)%s", problem, ", giving up" if last else "")
        if last:
            break
        if completion.finish_reason == "length":
            retry, usage.length_retries = "length", 1
            request = [*messages, {"role": "user", "content": LENGTH_PROMPT}]
        else:
            retry, usage.repairs = "repair", 1
            echo = completion.text[:ECHO_CHARS] + (
                " ..." if len(completion.text) > ECHO_CHARS else ""
            )
            request = [
                *messages,
                {"role": "assistant", "content": echo},
                {"role": "user", "content": REPAIR_PROMPT.format(problem=problem)},
            ]
    usage.parse_failures = 1
    raise LLMReplyError(
        redact(
            f"the model's reply was not usable JSON even after a second request ({retry}): "
            f"{problem}; it began {completion.text[:160]!r}",
            secret,
        ),
        usage=usage.as_dict(),
    )
