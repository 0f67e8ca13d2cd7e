"""One client for every LLM part of clarify-gym: any OpenAI-compatible chat endpoint.

The LLM user oracle, writer, checklist judge and the chat agent all talk through
:class:`LLMClient`, over the ``openai`` package (``pip install "clarify-gym[llm]"``; imported
only when a request is made), synchronously (:meth:`LLMClient.complete`) or with asyncio
(:meth:`LLMClient.acomplete`). The same code reaches OpenAI, a vLLM server, Ollama or anything
else that speaks ``/v1/chat/completions``.

Configuration: :class:`~clarify_gym.llm.config.LLMConfig`, from arguments or environment
variables (``OPENAI_BASE_URL``, ``OPENAI_API_KEY``, ``CLARIFY_GYM_LLM_*`` and per-role
``CLARIFY_GYM_<ROLE>_*``; the table is in :mod:`clarify_gym.llm.config`).

Failures: 429 (honouring ``Retry-After`` / ``retry-after-ms``), 408, 409, 5xx, timeouts,
dropped connections and unreadable bodies are retried at most ``max_retries`` times with
exponential backoff and jitter (:func:`backoff_delay`); then, or at once for other errors
(401, 404, 400 ...), :class:`~clarify_gym.errors.LLMError` says what failed and what to check.
Listing the models (``/v1/models``, when no model is set) is retried the same way, and its error
names the cause (unreachable, 401 ...).

:meth:`LLMClient.complete_json` sends the role's JSON schema as ``response_format`` (or
``json_object``, or nothing: ``CLARIFY_GYM_LLM_JSON``, see :mod:`clarify_gym.llm.schemas`); a
server whose HTTP 400/422 says it does not support that field gets the plain request instead
(and that role's later requests to it go without, with one logged warning); any other 400,
such as a prompt longer than the server's context, leaves the field on and fails the request.
It parses and validates the reply, makes one more request when it is
unusable (a firmer length instruction when it was cut for length, else a repair request that
shows a short prefix of the bad reply), and raises :class:`~clarify_gym.errors.LLMReplyError` if
that fails too. :attr:`LLMClient.json_stats` counts first-try parses, retries and failures,
:attr:`LLMClient.request_stats` the requests sent, cache hits, retries, timeouts and
fallbacks; each completion's :class:`Usage` carries the same counts for its own request.

The model the server says it used (the reply's ``model``) is kept in the cache record and in
:attr:`LLMClient.served_model`, with one warning when it is not the one requested (llama-server,
for one, ignores the request's ``model``).

Every reply goes to the on-disk cache (model + messages + sampling parameters -> reply), so a
run replays exactly and costs nothing the second time. Token usage is counted per call
(:attr:`Completion.usage`) and in total (:attr:`LLMClient.usage`). The API key is never logged,
cached, pickled, put in ``repr`` or in an error message.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from clarify_gym.errors import LLMError
from clarify_gym.llm.attempts import Attempts, JSONRun
from clarify_gym.llm.cache import ResponseCache, request_key
from clarify_gym.llm.config import ROLES, LLMConfig, redact
from clarify_gym.llm.pool import POOL_LOCK, loop_limit, pooled_client, thread_limit
from clarify_gym.llm.reply import Completion, JSONReply, Usage, parse_json_reply
from clarify_gym.llm.retry import (
    Failure,
    backoff_delay,
    classify_failure,
    format_unsupported,
    give_up_message,
    same_model,
)
from clarify_gym.llm.schemas import response_format

__all__ = [
    "ROLES",
    "Completion",
    "JSONReply",
    "LLMClient",
    "LLMConfig",
    "Usage",
    "backoff_delay",
    "parse_json_reply",
    "redact",
]

logger = logging.getLogger(__name__)
T = TypeVar("T")

#: ``(base URL, model, role)`` whose server said it does not support ``response_format``
#: (:func:`~clarify_gym.llm.retry.format_unsupported`): this process sends that role's JSON
#: requests to it without the field. Any other error leaves the field on.
_FORMAT_REJECTED: set[tuple[str, str, str]] = set()
_MISMATCH_WARNED: set[tuple[str, str]] = set()


class LLMClient:
    """Chat completions with retries, a concurrency limit, JSON validation, a reply cache and
    usage accounting (see the module docstring). Thread-safe; the async methods work in any
    event loop. Clients with the same endpoint share one connection pool and one concurrency
    limit per process (threads and each event loop have their own limit).

    Args:
        config: An :class:`LLMConfig` (unset fields come from the environment).
        role: ``"user"``, ``"writer"``, ``"judge"`` or ``"agent"``: picks the per-role
            environment variables.
        **overrides: Fields of :class:`LLMConfig` that replace those of ``config``.
    """

    def __init__(
        self, config: LLMConfig | None = None, *, role: str | None = None, **overrides: Any
    ) -> None:
        given = dataclasses.replace(config or LLMConfig(), **overrides)
        self._setup(given, role)

    def _setup(self, given: LLMConfig, role: str | None) -> None:
        self.role = role
        self._given = given
        self.config = given.resolve(role)
        cache = self.config.cache
        self.cache = ResponseCache(cache) if isinstance(cache, Path) else None
        self.usage = Usage()
        #: JSON replies: ``first_try``, ``repair``, ``length`` (retried and then usable) and
        #: ``failed`` (unusable after the retry).
        self.json_stats: Counter[str] = Counter()
        #: Requests: ``sent`` (attempts that reached for the server), ``cache_hits``,
        #: ``retries`` (failed attempts tried again), ``timeouts``, ``fallbacks`` (sent again
        #: without ``response_format``) and ``failed`` (given up on).
        self.request_stats: Counter[str] = Counter()
        #: The model named by the latest reply from the server (``None``: no reply yet).
        self.served_model: str | None = None
        #: Seconds spent waiting for the server (requests answered from the cache excluded),
        #: retries and backoff included; ``usage.calls - usage.cache_hits`` requests.
        self.request_seconds = 0.0
        self._lock = threading.Lock()
        self._rng = random.Random()
        self._model = self.config.model

    def __getstate__(self) -> dict[str, Any]:  # never pickle the key: it is re-read on load
        return {"given": dataclasses.replace(self._given, api_key=None), "role": self.role}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._setup(state["given"], state["role"])

    def __repr__(self) -> str:
        return f"LLMClient(role={self.role!r}, model={self._model!r}, base_url={self.config.base_url!r})"

    # ---- plumbing ---------------------------------------------------------------------------
    def _key(self) -> str:
        if not self.config.api_key:
            raise LLMError(
                f"no API key for {self.config.base_url}: set OPENAI_API_KEY (or "
                "CLARIFY_GYM_LLM_API_KEY), or point CLARIFY_GYM_LLM_BASE_URL "
                "at a local server (vLLM, Ollama, llama.cpp) that needs none"
            )
        return self.config.api_key

    def _openai(self) -> Any:
        return pooled_client(self.config, self._key(), None)

    def _aopenai(self) -> Any:
        return pooled_client(self.config, self._key(), asyncio.get_running_loop())

    def _limit(self) -> threading.BoundedSemaphore:
        return thread_limit(self.config)

    def _alimit(self) -> asyncio.Semaphore:
        return loop_limit(self.config)

    def _error(self, message: str) -> LLMError:
        return LLMError(redact(message, self.config.api_key))

    def _pick_model(self, page: Any) -> str:
        ids = [m.id for m in page.data]
        if len(ids) != 1:
            raise self._error(
                f"no model set and {self.config.base_url} serves {len(ids)} models {ids[:20]}: "
                "set CLARIFY_GYM_LLM_MODEL (or pass model=...)"
            )
        logger.info("using %s, the one model %s serves", ids[0], self.config.base_url)
        return ids[0]

    def model(self) -> str:
        """The model name (asked of the endpoint's ``/v1/models`` once when not configured,
        with the same retries as any request)."""
        if self._model is None:
            client, run, page = self._openai(), Attempts(self), None
            while page is None:
                try:
                    page = client.models.list()
                except Exception as exc:
                    time.sleep(run.failed(exc))
            self._model = self._pick_model(page)
        return self._model

    async def amodel(self) -> str:
        """:meth:`model`, with the async client."""
        if self._model is None:
            client, run, page = self._aopenai(), Attempts(self), None
            while page is None:
                try:
                    page = await client.models.list()
                except Exception as exc:
                    await asyncio.sleep(run.failed(exc))
            self._model = self._pick_model(page)
        return self._model

    def describe(self, *, resolve: bool = True) -> dict[str, Any]:
        """What a run's ``metadata.json`` records about this client: its role, the model (asked
        of the endpoint when ``resolve`` and not configured), the one the server reported, and
        the settings of :meth:`LLMConfig.describe` (never the key)."""
        model = self.model() if resolve else self._model
        return {
            "role": self.role,
            **self.config.describe(),
            "model": model,
            "served_model": self.served_model,
            "json_fallback": self._format_key() in _FORMAT_REJECTED,
            "requests": dict(sorted(self.request_stats.items())),
            "json": dict(sorted(self.json_stats.items())),
        }

    def _format_key(self) -> tuple[str, str, str]:
        return (str(self.config.base_url), str(self._model), str(self.role))

    def _params(self, overrides: Mapping[str, Any]) -> dict[str, Any]:
        """The request's sampling fields: ``max_tokens`` given to the call, else the config's
        (env), else the call's ``default_max_tokens`` (the role's default)."""
        known = {"temperature", "max_tokens", "default_max_tokens", "seed", "stop"}
        unknown = set(overrides) - known - {"json_mode", "response_format"}
        if unknown:
            raise TypeError(f"unknown sampling parameter(s) {sorted(unknown)}")
        given = {
            k: v for k, v in overrides.items() if k in known and (v is not None or k == "seed")
        }
        default = given.pop("default_max_tokens", None)
        merged = {
            "temperature": self.config.temperature,
            "max_tokens": self.config.max_tokens or default,
            "seed": None,
            "stop": None,
            **given,
        }
        fmt = overrides.get("response_format")
        if fmt is None and overrides.get("json_mode") in (True, "object", "schema"):
            fmt = {"type": "json_object"}
        if fmt is not None and self._format_key() not in _FORMAT_REJECTED:
            merged["response_format"] = fmt
        return {k: v for k, v in merged.items() if v is not None}

    def _format_fallback(self, exc: BaseException, sampling: dict[str, Any]) -> bool:
        """Whether ``exc`` says the server does not support the request's ``response_format``
        (:func:`~clarify_gym.llm.retry.format_unsupported`; any other error, a context
        overflow say, is not): then drop the field from this request and from this role's
        later requests to this server (one warning), and send it again without."""
        if "response_format" not in sampling or not format_unsupported(exc):
            return False
        key = self._format_key()
        with POOL_LOCK:
            first = key not in _FORMAT_REJECTED
            _FORMAT_REJECTED.add(key)
        if first:
            logger.warning(
                "%s does not support response_format for model %s (HTTP %s: %s); sending "
                "the %s's JSON requests without it (prompt only) from now on. Set "
                "CLARIFY_GYM_%s_JSON=object or off to skip this",
                self.config.base_url,
                key[1],
                getattr(exc, "status_code", None),
                redact(str(exc)[:200], self.config.api_key),
                self.role or "client",
                (self.role or "llm").upper(),
            )
        del sampling["response_format"]
        with self._lock:
            self.request_stats["fallbacks"] += 1
        return True

    def _failure(self, exc: BaseException) -> Failure:
        """Classify a failed attempt and count it (``timeouts``)."""
        failure = classify_failure(exc, self.config.timeout or 0.0)
        if failure.timeout:
            with self._lock:
                self.request_stats["timeouts"] += 1
        return failure

    def _on_failure(
        self, exc: BaseException, attempt: int, model: str | None, failure: Failure | None = None
    ) -> float:
        """Log a retryable failure and return the delay, or raise :class:`LLMError`
        (``model=None``: the request was the model listing)."""
        failure = failure or classify_failure(exc, self.config.timeout or 0.0)
        if model is None:
            where = f"listing the models of {self.config.base_url} (no model set)"
        else:
            where = f"LLM request to {self.config.base_url} (model {model})"
        if not failure.retryable or attempt >= (self.config.max_retries or 0):
            message = give_up_message(
                failure, where, self.config.base_url or "", self.config.key_source, attempt + 1
            )
            with self._lock:
                self.request_stats["failed"] += 1
            raise self._error(message) from None
        with self._lock:
            self.request_stats["retries"] += 1
        delay = backoff_delay(
            attempt,
            base=self.config.backoff_base,
            cap=self.config.backoff_max,
            retry_after=failure.retry_after,
            rand=self._rng.random(),
        )
        logger.warning(
            "%s: %s; retry %d of %d in %.2f s",
            where,
            redact(failure.what, self.config.api_key),
            attempt + 1,
            self.config.max_retries,
            delay,
        )
        return delay

    def _lookup(
        self, model: str, msgs: list[dict[str, Any]], sampling: dict[str, Any]
    ) -> tuple[str | None, Completion | None]:
        """The cache key of a request and its cached completion (``None`` when not cached)."""
        if self.cache is None:
            return None, None
        key = request_key(model, msgs, sampling)
        record = self.cache.get(key)
        if record is None:
            return key, None
        return key, self._count(Completion.from_record(record, model))

    def _count(self, completion: Completion) -> Completion:
        with self._lock:
            self.usage.add(completion.usage)
            if completion.cached:
                self.request_stats["cache_hits"] += 1
            if completion.served_model:
                self.served_model = completion.served_model
        return completion

    def _finish(
        self,
        key: str | None,
        model: str,
        messages: list[dict[str, Any]],
        params: dict[str, Any],
        response: Any,
        start: float,
    ) -> Completion:
        completion = Completion.from_response(response, model)
        served = completion.served_model
        if completion.finish_reason == "length":
            logger.warning(
                "LLM reply from %s cut at max_tokens=%s", model, params.get("max_tokens")
            )
        if not same_model(model, served) and (model, str(served)) not in _MISMATCH_WARNED:
            _MISMATCH_WARNED.add((model, str(served)))
            logger.warning(
                "%s answered as model %r, not the %r requested: check the model name (some "
                "servers, llama-server among them, serve one model whatever is asked)",
                self.config.base_url,
                served,
                model,
            )
        if key is not None and self.cache is not None:
            self.cache.put(
                key,
                {
                    "model": model,
                    "served_model": served,
                    "request": {"messages": messages, "params": params},
                    "text": completion.text,
                    "finish_reason": completion.finish_reason,
                    "usage": {
                        "prompt_tokens": completion.usage.prompt_tokens,
                        "completion_tokens": completion.usage.completion_tokens,
                    },
                },
            )
        with self._lock:
            self.request_seconds += time.perf_counter() - start
        return self._count(completion)

    # ---- requests ---------------------------------------------------------------------------
    def complete(self, messages: Sequence[Mapping[str, str]], **params: Any) -> Completion:
        """One chat completion (from the cache when this exact request was made before).

        ``params``: ``temperature``, ``max_tokens``, ``seed``, ``stop``, ``json_mode`` (the
        config's values otherwise). Raises :class:`LLMError` when every attempt failed.
        """
        run = Attempts(self, self.model(), messages, params)
        if run.result is None:
            client, limit = self._openai(), self._limit()
        while run.result is None:
            try:
                with limit:
                    run.sending()
                    run.answer(client.chat.completions.create(**run.request))
            except Exception as exc:
                time.sleep(run.failed(exc))
        return run.result

    async def acomplete(self, messages: Sequence[Mapping[str, str]], **params: Any) -> Completion:
        """:meth:`complete` with asyncio (same cache, retries and accounting)."""
        run = Attempts(self, await self.amodel(), messages, params)
        if run.result is None:
            client, limit = self._aopenai(), self._alimit()
        while run.result is None:
            try:
                async with limit:
                    run.sending()
                    run.answer(await client.chat.completions.create(**run.request))
            except Exception as exc:
                await asyncio.sleep(run.failed(exc))
        return run.result

    def _json_params(
        self, params: dict[str, Any], schema: dict[str, Any] | None, name: str
    ) -> dict[str, Any]:
        if "json_mode" in params:  # the old flag: True -> json_object
            mode = "object" if params.pop("json_mode") else "off"
        else:
            mode = str(self.config.json_mode or "schema")
        params.setdefault("response_format", response_format(mode, name, schema))
        return params

    def complete_json(
        self,
        messages: Sequence[Mapping[str, str]],
        validate: Callable[[Any], T],
        *,
        schema: dict[str, Any] | None = None,
        name: str = "reply",
        **params: Any,
    ) -> JSONReply[T]:
        """A JSON reply checked by ``validate`` (which returns the value to keep or raises
        ``ValueError``/``TypeError``/``KeyError`` saying what is wrong). ``schema`` (named
        ``name``) is sent as ``response_format`` in ``schema`` mode. An unusable reply gets one
        more request (see the module docstring); if that fails too, :class:`LLMReplyError`."""
        run = JSONRun(self, messages, validate, self._json_params(params, schema, name))
        while run.reply is None:
            run.send(self.complete(run.request, **run.params))
        return run.reply

    async def acomplete_json(
        self,
        messages: Sequence[Mapping[str, str]],
        validate: Callable[[Any], T],
        *,
        schema: dict[str, Any] | None = None,
        name: str = "reply",
        **params: Any,
    ) -> JSONReply[T]:
        """:meth:`complete_json` with asyncio."""
        run = JSONRun(self, messages, validate, self._json_params(params, schema, name))
        while run.reply is None:
            run.send(await self.acomplete(run.request, **run.params))
        return run.reply
