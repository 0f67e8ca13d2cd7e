"""Failures and retries of LLM requests: which errors are retried (:func:`classify_failure`),
how long to wait (:func:`backoff_delay`, honouring ``Retry-After``), what the final error says
(:func:`give_up_message`), and whether a reply came from the model asked for (:func:`same_model`).

429 (``Retry-After`` / ``retry-after-ms`` honoured), 408, 409, 5xx, timeouts, dropped
connections and unreadable bodies are retried; 400, 401, 403, 404 are not.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from clarify_gym.errors import require

__all__ = [
    "Failure",
    "backoff_delay",
    "classify_failure",
    "format_unsupported",
    "give_up_message",
    "same_model",
]

_RETRY_STATUS = frozenset({408, 409, 429})


def same_model(requested: str, served: str | None) -> bool:
    """Whether a reply's ``model`` is the one requested: equal, a dated snapshot of it
    (``gpt-4o`` -> ``gpt-4o-2024-08-06``), or the same file name (a GGUF path).

    >>> same_model("gpt-4o", "gpt-4o-2024-08-06"), same_model("smollm2", "/m/smollm2")
    (True, True)
    >>> same_model("qwen2.5-7b", "smollm2"), same_model("m", None)
    (False, True)
    """
    if not served:
        return True
    base = served.rstrip("/").rsplit("/", 1)[-1]
    return served.startswith(requested) or base.startswith(requested.rsplit("/", 1)[-1])


def backoff_delay(
    attempt: int, *, base: float, cap: float, retry_after: float | None = None, rand: float = 1.0
) -> float:
    """Seconds to wait before retry ``attempt + 1`` (``attempt`` counts from 0).

    Without ``Retry-After``: exponential backoff with "equal jitter", ``d/2 + rand * d/2`` for
    ``d = min(cap, base * 2**attempt)``. With it: the server's delay (at most ``cap``), plus up
    to 10 % jitter so that clients told the same delay do not all come back at once.

    >>> [backoff_delay(a, base=0.5, cap=4.0, rand=1.0) for a in range(5)]
    [0.5, 1.0, 2.0, 4.0, 4.0]
    >>> backoff_delay(0, base=0.5, cap=4.0, rand=0.0)
    0.25
    >>> backoff_delay(3, base=0.5, cap=30.0, retry_after=2.0, rand=0.0)
    2.0
    """
    if retry_after is not None:
        return min(cap, max(0.0, retry_after)) * (1.0 + 0.1 * rand)
    delay = min(cap, base * 2.0**attempt)
    return delay / 2 + rand * delay / 2


def retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date)."""
    if not headers:
        return None
    try:
        if headers.get("retry-after-ms"):
            return float(headers["retry-after-ms"]) / 1000
        value = headers.get("retry-after")
        if not value:
            return None
        try:
            return float(value)
        except ValueError:
            return parsedate_to_datetime(value).timestamp() - time.time()
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class Failure:
    """What went wrong with one request."""

    #: One phrase, e.g. ``"HTTP 500 (...)"``, ``"connection failed (...)"``.
    what: str
    retryable: bool
    status: int | None = None
    #: Nothing answered at the address (not a timeout).
    unreachable: bool = False
    #: Seconds the server asked to wait (429 and 503 only).
    retry_after: float | None = None
    #: The request timed out.
    timeout: bool = False


def classify_failure(exc: BaseException, timeout: float) -> Failure:
    """The :class:`Failure` of an exception raised by the ``openai`` client (any other
    exception is re-raised: it is a bug, not an endpoint problem)."""
    openai = require("openai", extra="llm", feature="LLM backends")
    status = getattr(exc, "status_code", None)
    if not isinstance(exc, openai.APIStatusError):  # type: ignore[attr-defined]
        status = None  # e.g. a 200 whose body did not validate
    if isinstance(exc, openai.APITimeoutError):  # type: ignore[attr-defined]
        return Failure(f"timed out after {timeout:g} s", True, timeout=True)
    if isinstance(exc, openai.APIConnectionError):  # type: ignore[attr-defined]
        return Failure(f"connection failed ({exc})", True, unreachable=True)
    if isinstance(status, int):
        headers = getattr(getattr(exc, "response", None), "headers", None)
        wait = retry_after(headers) if status in (429, 503) else None
        retryable = status in _RETRY_STATUS or status >= 500
        return Failure(f"HTTP {status} ({exc})", retryable, status, retry_after=wait)
    if isinstance(exc, (openai.OpenAIError, ValueError)):  # type: ignore[attr-defined]
        return Failure(f"unreadable response ({type(exc).__name__}: {exc})", True)
    raise exc


#: Words in a 400/422 error that say the server refused the structured-output request itself.
_FORMAT_WORDS = (
    "response_format",
    "response format",
    "json_schema",
    "json schema",
    "json_object",
    "schema",
    "structured output",
    "guided",
    "grammar",
)
#: Words of a request too long for the server's context: not a format problem.
_CONTEXT_WORDS = (
    "context length",
    "context size",
    "context window",
    "context_length",
    "exceed_context",
    "maximum context",
    "too many tokens",
    "prompt is too long",
    "n_ctx",
)


def format_unsupported(exc: BaseException) -> bool:
    """Whether an HTTP 400/422 says the server does not support the request's
    ``response_format`` (then the request is sent again without it), rather than anything
    else, e.g. a prompt longer than its context, which no fallback would fix.

    >>> class E(Exception):
    ...     status_code = 400
    >>> format_unsupported(E("response_format type must be one of text or json_object"))
    True
    >>> format_unsupported(E("Invalid schema for response_format 'verdict': minItems"))
    True
    >>> format_unsupported(E("the request exceeds the available context size, try increasing it"))
    False
    >>> format_unsupported(E("This model's maximum context length is 4096 tokens (response_format)"))
    False
    >>> format_unsupported(E("messages must not be empty"))
    False
    """
    if getattr(exc, "status_code", None) not in (400, 422):
        return False
    body = getattr(exc, "body", None)
    text = f"{exc} {body if body is not None else ''}".lower()
    if any(word in text for word in _CONTEXT_WORDS):
        return False
    return any(word in text for word in _FORMAT_WORDS)


def give_up_message(
    failure: Failure, where: str, base_url: str, key_source: str | None, attempts: int
) -> str:
    """The error of a request given up on: what failed, how often, and what to check.

    >>> f = Failure("HTTP 401 (bad key)", False, 401)
    >>> give_up_message(f, "LLM request to http://h/v1", "http://h/v1", None, 1)[:80]
    'LLM request to http://h/v1 failed: HTTP 401 (bad key); the endpoint refused the '
    >>> f = Failure("connection failed (refused)", True, unreachable=True)
    >>> give_up_message(f, "listing the models of http://h/v1", "http://h/v1", None, 5)
    'listing the models of http://h/v1 failed 5 times, last: connection failed (refused); is a server running at http://h/v1?'
    """
    if not failure.retryable:
        hint = {
            401: f"the endpoint refused the key ({key_source or 'no key'} was sent): check the "
            "API key; a key goes only to the base URL it is set for (OPENAI_API_KEY only to "
            "api.openai.com; CLARIFY_GYM_LLM_API_KEY with CLARIFY_GYM_LLM_BASE_URL), see "
            "docs/llm_backends.md",
            403: "the key may not have access to this model",
            404: "check the base URL (it usually ends in /v1) and the model name",
        }.get(failure.status or 0, "the request was rejected; it will not succeed on retry")
        return f"{where} failed: {failure.what}; {hint}"
    check = (
        f"is a server running at {base_url}?"
        if failure.unreachable
        else "check that the endpoint is up, or raise CLARIFY_GYM_LLM_TIMEOUT / "
        "CLARIFY_GYM_LLM_MAX_RETRIES"
    )
    return f"{where} failed {attempts} times, last: {failure.what}; {check}"
