"""Where and how to reach an OpenAI-compatible chat endpoint: :class:`LLMConfig`.

Configuration (:class:`LLMConfig`; an argument wins over an environment variable, which wins
over the default). ``ROLE`` is ``USER``, ``WRITER``, ``JUDGE`` or ``AGENT``:

======================================  ==========================================================
``CLARIFY_GYM_<ROLE>_BASE_URL``         endpoint for one role, then ``CLARIFY_GYM_LLM_BASE_URL``,
                                        then ``OPENAI_BASE_URL``, then ``https://api.openai.com/v1``
``CLARIFY_GYM_<ROLE>_API_KEY``          key for one role, then ``CLARIFY_GYM_LLM_API_KEY``, then
                                        ``OPENAI_API_KEY``; local endpoints need none
``CLARIFY_GYM_<ROLE>_MODEL``            model for one role, then ``CLARIFY_GYM_LLM_MODEL``; unset:
                                        ``gpt-4o`` on OpenAI (the paper's), else the one model the
                                        endpoint lists at ``/v1/models``
``CLARIFY_GYM_LLM_TIMEOUT``             seconds per request (60)
``CLARIFY_GYM_LLM_MAX_RETRIES``         retries after the first attempt (4)
``CLARIFY_GYM_LLM_CONCURRENCY``         requests in flight per endpoint and process (32)
``CLARIFY_GYM_LLM_CACHE``               reply cache folder, or ``off`` (see :mod:`clarify_gym.llm.cache`)
======================================  ==========================================================

The key is kept out of ``repr`` and :meth:`LLMConfig.describe`; :func:`redact` scrubs it (and
anything shaped like a key) from text that may be logged or raised.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clarify_gym.llm.cache import llm_cache_dir

__all__ = ["NO_KEY", "OPENAI_BASE_URL", "PAPER_MODEL", "ROLES", "LLMConfig", "redact"]

ROLES = ("user", "writer", "judge", "agent")
OPENAI_BASE_URL = "https://api.openai.com/v1"
#: The model of the paper's user oracle, writer and judge; the default on OpenAI.
PAPER_MODEL = "gpt-4o"
#: Sent to endpoints that need no key (vLLM, Ollama), which still expect the header.
NO_KEY = "not-needed"
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
    #: Most tokens per reply (``None``: the endpoint's default).
    max_tokens: int | None = 1024
    #: Ask for ``response_format={"type": "json_object"}`` in JSON calls (not every server has it).
    json_mode: bool = False
    #: ``True``: the cache folder the environment selects; ``False``/``None``: no cache; or a folder.
    cache: bool | str | os.PathLike[str] | None = True

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
        """
        if role is not None and role not in ROLES:
            raise ValueError(f"unknown LLM role {role!r}; use one of {ROLES}")
        env = os.environ if environ is None else environ

        def names(key: str) -> list[str]:
            own = [f"CLARIFY_GYM_{role.upper()}_{key}"] if role else []
            return [*own, f"CLARIFY_GYM_LLM_{key}"] + ([f"OPENAI_{key}"] if key != "MODEL" else [])

        base_url = (self.base_url or _first_env(env, names("BASE_URL")) or OPENAI_BASE_URL).rstrip(
            "/"
        )
        official = base_url.startswith(OPENAI_BASE_URL)
        api_key = (
            self.api_key or _first_env(env, names("API_KEY")) or (None if official else NO_KEY)
        )
        model = self.model or _first_env(env, names("MODEL")) or (PAPER_MODEL if official else None)
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
            model=model,
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
