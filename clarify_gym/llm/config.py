"""Where and how to reach an OpenAI-compatible chat endpoint: :class:`LLMConfig`.

Configuration (:class:`LLMConfig`; an argument wins over an environment variable, which wins
over the default). ``ROLE`` is ``USER``, ``WRITER``, ``JUDGE`` or ``AGENT``:

======================================  ==========================================================
``CLARIFY_GYM_<ROLE>_BASE_URL``         endpoint for one role, then ``CLARIFY_GYM_LLM_BASE_URL``,
                                        then ``OPENAI_BASE_URL``, then ``https://api.openai.com/v1``
``CLARIFY_GYM_<ROLE>_API_KEY``          key for one role, then ``CLARIFY_GYM_LLM_API_KEY``, then
                                        ``OPENAI_API_KEY``, each only where the key rule allows;
                                        local endpoints need none
``CLARIFY_GYM_<ROLE>_MODEL``            model for one role, then ``CLARIFY_GYM_LLM_MODEL``; unset:
                                        ``gpt-4o`` on OpenAI (the paper's), else the one model the
                                        endpoint lists at ``/v1/models``
``CLARIFY_GYM_<ROLE>_JSON``             JSON replies: ``schema`` (default), ``object`` or ``off``,
                                        then ``CLARIFY_GYM_LLM_JSON`` (:mod:`clarify_gym.llm.schemas`)
``CLARIFY_GYM_<ROLE>_MAX_TOKENS``       most tokens per reply, then ``CLARIFY_GYM_LLM_MAX_TOKENS``;
                                        unset: the role's own default (oracle 256, judge 64 + 8·n)
``CLARIFY_GYM_LLM_TIMEOUT``             seconds per request (60)
``CLARIFY_GYM_LLM_MAX_RETRIES``         retries after the first attempt (4)
``CLARIFY_GYM_LLM_CONCURRENCY``         requests in flight per endpoint and process (32)
``CLARIFY_GYM_LLM_CACHE``               reply cache folder, or ``off`` (see :mod:`clarify_gym.llm.cache`)
======================================  ==========================================================

**The key rule: a key set for one base URL is never sent to another unless you say so.** Each
key variable is set for one URL, the one its own level resolves to:

* ``api_key=`` (an argument) goes to whatever base URL the client uses: you said so.
* ``CLARIFY_GYM_<ROLE>_API_KEY`` is for ``CLARIFY_GYM_<ROLE>_BASE_URL``, else
  ``CLARIFY_GYM_LLM_BASE_URL``, else ``OPENAI_BASE_URL``, else OpenAI's URL.
* ``CLARIFY_GYM_LLM_API_KEY`` is for ``CLARIFY_GYM_LLM_BASE_URL``, else ``OPENAI_BASE_URL``,
  else OpenAI's URL (so not for a role's own ``CLARIFY_GYM_<ROLE>_BASE_URL`` elsewhere).
* ``OPENAI_API_KEY`` is for ``https://api.openai.com/v1`` only, even when ``OPENAI_BASE_URL``
  points elsewhere. To send it to another OpenAI-compatible service, say so:
  ``CLARIFY_GYM_LLM_API_KEY=$OPENAI_API_KEY``.

A client whose URL (``base_url=``, e.g. from ``chat:<model>@<url>``) is not the URL a key is set
for does not send that key.

An endpoint with no key of its own gets the placeholder :data:`NO_KEY` (local servers need none).
Where the key came from is recorded (:attr:`LLMConfig.key_source`), never the key: it is kept
out of ``repr`` and :meth:`LLMConfig.describe`; :func:`redact` scrubs it (and anything shaped
like a key) from text that may be logged or raised.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clarify_gym.llm.cache import llm_cache_dir
from clarify_gym.llm.schemas import parse_json_mode

__all__ = ["NO_KEY", "OPENAI_BASE_URL", "PAPER_MODEL", "ROLES", "LLMConfig", "redact"]

logger = logging.getLogger(__name__)

ROLES = ("user", "writer", "judge", "agent")
OPENAI_BASE_URL = "https://api.openai.com/v1"
#: The model of the paper's user oracle, writer and judge; the default on OpenAI.
PAPER_MODEL = "gpt-4o"
#: Sent to endpoints that need no key (vLLM, Ollama), which still expect the header.
NO_KEY = "not-needed"
_WITHHELD: set[tuple[str, str]] = set()
_KEYLIKE = re.compile(r"\b(?:sk|key|api)[-_][A-Za-z0-9_\-*]{8,}")


def redact(text: str, secret: str | None = None) -> str:
    """``text`` with ``secret`` and anything that looks like an API key replaced by ``***``.

    >>> redact("Incorrect API key provided: sk-proj-abcdef123456. Bye", None)
    'Incorrect API key provided: ***. Bye'
    >>> redact("token=hunter2-hunter2", "hunter2-hunter2")
    'token=***'
    """
    if secret and secret != NO_KEY:
        text = text.replace(secret, "***")
    return _KEYLIKE.sub("***", text)


def _first_env(env: Mapping[str, str], names: Sequence[str]) -> str | None:
    for name in names:
        value = env.get(name, "").strip()
        if value:
            return value
    return None


def _pick_key(
    env: Mapping[str, str], names: Sequence[str], url_names: Sequence[str], url: str
) -> tuple[str | None, str | None]:
    """The key the rule in the module docstring allows for ``url``, and its variable's name.

    A key of level ``i`` is set for the first URL among ``url_names[i:]`` (else the default);
    ``OPENAI_API_KEY`` only for OpenAI's own URL."""
    for level, name in enumerate(names):
        value = env.get(name, "").strip()
        if not value:
            continue
        own = _first_env(env, url_names[level:]) or OPENAI_BASE_URL
        if name == "OPENAI_API_KEY":
            own = OPENAI_BASE_URL
        if own.rstrip("/") == url:
            return value, name
        if (name, url) not in _WITHHELD:
            _WITHHELD.add((name, url))
            logger.info(
                "%s is not sent to %s: a key goes only to the base URL it is set for "
                "(to send one there, set it beside that URL or pass api_key=)",
                name,
                url,
            )
    return None, None


@dataclass(frozen=True)
class LLMConfig:
    """Where and how to call an OpenAI-compatible chat endpoint (``None``: from the environment,
    see the module docstring)."""

    #: Model name as the endpoint knows it (``None``: env, then the default).
    model: str | None = None
    #: Endpoint URL ending in ``/v1`` (``None``: env, then OpenAI).
    base_url: str | None = None
    #: API key (``None``: env; endpoints other than OpenAI get a placeholder).
    api_key: str | None = field(default=None, repr=False, compare=False)
    #: Seconds before a request times out (``None``: env, then 60).
    timeout: float | None = None
    #: Retries after the first attempt on retryable failures (``None``: env, then 4).
    max_retries: int | None = None
    #: First backoff delay in seconds; doubles each retry.
    backoff_base: float = 0.5
    #: Longest wait between two attempts, ``Retry-After`` included.
    backoff_max: float = 20.0
    #: Requests in flight per endpoint in this process (``None``: env, then 32).
    max_concurrency: int | None = None
    #: Sampling temperature.
    temperature: float = 0.0
    #: Most tokens per reply (``None``: env, then the role's default for each request).
    max_tokens: int | None = None
    #: JSON replies: ``"schema"``, ``"object"`` or ``"off"`` (``None``: env, then ``"schema"``;
    #: ``True``/``False`` mean ``"object"``/``"off"``). See :mod:`clarify_gym.llm.schemas`.
    json_mode: str | bool | None = None
    #: ``True``: the cache folder the environment selects; ``False``/``None``: no cache; or a folder.
    cache: bool | str | os.PathLike[str] | None = True
    #: Where the key came from (``api_key=``, a variable's name, or ``None``: no key); set by
    #: :meth:`resolve`.
    key_source: str | None = field(default=None, compare=False)

    def resolve(
        self, role: str | None = None, environ: Mapping[str, str] | None = None
    ) -> LLMConfig:
        """Every field filled in from the environment (``role`` picks the per-role variables).

        >>> c = LLMConfig(cache=False).resolve("judge", {"OPENAI_BASE_URL": "http://localhost:8000/v1/",
        ...     "CLARIFY_GYM_JUDGE_MODEL": "Qwen/Qwen2.5-7B-Instruct"})
        >>> (c.base_url, c.model, c.api_key, c.timeout, c.max_retries, c.max_concurrency)
        ('http://localhost:8000/v1', 'Qwen/Qwen2.5-7B-Instruct', 'not-needed', 60.0, 4, 32)
        >>> LLMConfig(cache=False).resolve(None, {"OPENAI_API_KEY": "k"}).model
        'gpt-4o'

        The key rule (module docstring): OpenAI's key stays with OpenAI.

        >>> env = {"OPENAI_API_KEY": "sk-1", "OPENAI_BASE_URL": "http://127.0.0.1:8080/v1"}
        >>> c = LLMConfig(cache=False).resolve("user", env)
        >>> c.api_key, c.key_source
        ('not-needed', None)
        >>> c = LLMConfig(cache=False).resolve("user", {**env, "CLARIFY_GYM_LLM_API_KEY": "sk-2"})
        >>> c.api_key, c.key_source, c.max_tokens, c.json_mode
        ('sk-2', 'CLARIFY_GYM_LLM_API_KEY', None, 'schema')
        """
        if role is not None and role not in ROLES:
            raise ValueError(f"unknown LLM role {role!r}; use one of {ROLES}")
        env = os.environ if environ is None else environ

        def names(key: str) -> list[str]:
            own = [f"CLARIFY_GYM_{role.upper()}_{key}"] if role else []
            return [*own, f"CLARIFY_GYM_LLM_{key}"] + (
                [f"OPENAI_{key}"] if key in ("BASE_URL", "API_KEY") else []
            )

        url_names = names("BASE_URL")
        base_url = (self.base_url or _first_env(env, url_names) or OPENAI_BASE_URL).rstrip("/")
        official = base_url.startswith(OPENAI_BASE_URL)
        api_key: str | None
        key_source: str | None
        if self.api_key:
            api_key, key_source = self.api_key, self.key_source or "api_key="
        else:
            api_key, key_source = _pick_key(env, names("API_KEY"), url_names, base_url)
        if api_key is None and not official:
            api_key = NO_KEY
        model = self.model or _first_env(env, names("MODEL")) or (PAPER_MODEL if official else None)
        max_tokens = self.max_tokens or _first_env(env, names("MAX_TOKENS"))
        if max_tokens is not None and (not str(max_tokens).isdigit() or int(max_tokens) < 1):
            raise ValueError(
                f"max_tokens must be a positive integer, got {max_tokens!r} "
                "(CLARIFY_GYM_LLM_MAX_TOKENS / CLARIFY_GYM_<ROLE>_MAX_TOKENS)"
            )
        json_mode = parse_json_mode(self.json_mode)
        if json_mode is None:
            json_mode = parse_json_mode(_first_env(env, names("JSON"))) or "schema"
        if self.cache is True:
            cache: Any = llm_cache_dir(env)
        elif not self.cache:
            cache = None
        else:
            cache = Path(self.cache).expanduser()
        return dataclasses.replace(
            self,
            base_url=base_url,
            api_key=api_key,
            key_source=key_source,
            model=model,
            max_tokens=int(max_tokens) if max_tokens else None,
            json_mode=json_mode,
            timeout=float(self.timeout or env.get("CLARIFY_GYM_LLM_TIMEOUT") or 60.0),
            max_retries=int(
                self.max_retries
                if self.max_retries is not None
                else env.get("CLARIFY_GYM_LLM_MAX_RETRIES") or 4
            ),
            max_concurrency=int(
                self.max_concurrency or env.get("CLARIFY_GYM_LLM_CONCURRENCY") or 32
            ),
            cache=cache,
        )

    def describe(self) -> dict[str, Any]:
        """The settings worth recording in a run's metadata (never the key)."""
        out = dataclasses.asdict(self)
        out.pop("api_key")
        out["cache"] = str(self.cache) if self.cache not in (None, False, True) else self.cache
        return out
