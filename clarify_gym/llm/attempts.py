"""One request's attempts and one JSON exchange: the state the sync and async paths of
:class:`~clarify_gym.llm.client.LLMClient` share, so that each path only makes the calls and
sleeps (``time.sleep`` or ``await asyncio.sleep``). Internal to :mod:`clarify_gym.llm.client`.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from clarify_gym.errors import LLMReplyError
from clarify_gym.llm.config import LLMConfig
from clarify_gym.llm.reply import Completion, JSONReply, json_exchange
from clarify_gym.llm.retry import Failure

__all__ = ["Attempts", "Client", "JSONRun"]


class Client(Protocol):
    """What :class:`Attempts` and :class:`JSONRun` use of their client
    (:class:`~clarify_gym.llm.client.LLMClient`), so this module need not import it."""

    config: LLMConfig
    json_stats: Counter[str]
    request_stats: Counter[str]
    _lock: threading.Lock

    def _params(self, overrides: Mapping[str, Any]) -> dict[str, Any]: ...

    def _lookup(
        self, model: str, msgs: list[dict[str, Any]], sampling: dict[str, Any]
    ) -> tuple[str | None, Completion | None]: ...

    def _finish(
        self,
        key: str | None,
        model: str,
        messages: list[dict[str, Any]],
        params: dict[str, Any],
        response: Any,
        start: float,
    ) -> Completion: ...

    def _format_fallback(self, exc: BaseException, sampling: dict[str, Any]) -> bool: ...

    def _failure(self, exc: BaseException) -> Failure: ...

    def _on_failure(
        self, exc: BaseException, attempt: int, model: str | None, failure: Failure | None = None
    ) -> float: ...


class Attempts:
    """One request's attempts, the part the sync and async paths share: the request (its
    messages, sampling parameters and cache key, none for the model listing), the failures so
    far, and ``result``, the completion once there is one (at once when cached)."""

    def __init__(
        self,
        client: Client,
        model: str | None = None,
        messages: Sequence[Mapping[str, str]] = (),
        params: Mapping[str, Any] | None = None,
    ) -> None:
        self.client, self.model, self.attempt = client, model, 0
        self.msgs = [{"role": m["role"], "content": m["content"]} for m in messages]
        self.sampling = client._params(params or {})
        self.result: Completion | None = None
        self.key: str | None = None
        #: Failed attempts that timed out, and requests sent again without ``response_format``.
        self.timeouts = self.fallbacks = 0
        if model is not None:
            self.key, self.result = client._lookup(model, self.msgs, self.sampling)
        self.start = time.perf_counter()

    def _stamp(self, completion: Completion | None) -> Completion | None:
        """Write what this request took (retries, timeouts, fallbacks) into its usage."""
        if completion is not None:
            usage = completion.usage
            usage.retries, usage.timeouts, usage.fallbacks = (
                self.attempt,
                self.timeouts,
                self.fallbacks,
            )
        return completion

    @property
    def request(self) -> dict[str, Any]:
        """The keyword arguments of ``chat.completions.create``."""
        return {"model": self.model, "messages": self.msgs, **self.sampling}

    def answer(self, response: Any) -> None:
        """Record the server's response (counted, cached, checked)."""
        assert self.model is not None
        self.result = self._stamp(
            self.client._finish(
                self.key, self.model, self.msgs, self.sampling, response, self.start
            )
        )

    def sending(self) -> None:
        """Count an attempt about to reach for the server."""
        with self.client._lock:
            self.client.request_stats["sent"] += 1

    def failed(self, exc: BaseException) -> float:
        """Seconds to wait before the next attempt (0: send again at once, without the
        ``response_format`` the server said it does not support; ``result`` is set if that
        request is cached), or raise :class:`LLMError` when ``exc`` is not retried or the
        retries are spent."""
        if self.model is not None and self.client._format_fallback(exc, self.sampling):
            self.fallbacks += 1
            self.key, self.result = self.client._lookup(self.model, self.msgs, self.sampling)
            self._stamp(self.result)
            return 0.0
        failure = self.client._failure(exc)
        self.timeouts += int(failure.timeout)
        delay = self.client._on_failure(exc, self.attempt, self.model, failure)
        self.attempt += 1
        return delay


class JSONRun:
    """One JSON exchange (:func:`~clarify_gym.llm.reply.json_exchange`) for the sync and async
    paths: ``request`` to send next, ``reply`` when done; counts :attr:`LLMClient.json_stats`."""

    def __init__(
        self,
        client: Client,
        messages: Sequence[Mapping[str, str]],
        validate: Callable[[Any], Any],
        params: dict[str, Any],
    ) -> None:
        self.client, self.params = client, params
        self.exchange = json_exchange(list(messages), validate, client.config.api_key)
        self.request = next(self.exchange)
        self.reply: JSONReply[Any] | None = None

    def send(self, completion: Completion) -> None:
        """Hand the exchange a completion: the next ``request``, or ``reply``, or raise
        :class:`LLMReplyError`."""
        try:
            self.request = self.exchange.send(completion)
        except StopIteration as done:
            self.reply = done.value
            self._count(done.value.retry or "first_try")
        except LLMReplyError:
            self._count("failed")
            raise

    def _count(self, outcome: str) -> None:
        with self.client._lock:
            self.client.json_stats[outcome] += 1
