"""Every LLM part of clarify-gym talks to an OpenAI-compatible chat endpoint through this package.

* :mod:`clarify_gym.llm.client`: :class:`LLMClient` (retries, backoff, concurrency, usage);
* :mod:`clarify_gym.llm.config`: :class:`LLMConfig`, from arguments or environment variables;
* :mod:`clarify_gym.llm.reply`: :class:`Completion`, :class:`Usage` and JSON reply parsing;
* :mod:`clarify_gym.llm.cache`: the on-disk reply cache;
* :mod:`clarify_gym.llm.schemas`: the JSON schemas and reply lengths of the roles;
* :mod:`clarify_gym.llm.retry`: which failures are retried, backoff, the final error's text;
* :mod:`clarify_gym.llm.pool`: the process-wide connection pools and concurrency limits.

The ``openai`` package is imported only when a request is made, and each submodule only when
one of its names is first used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from clarify_gym.llm.cache import ResponseCache, llm_cache_dir, request_key
    from clarify_gym.llm.client import LLMClient, backoff_delay
    from clarify_gym.llm.config import (
        NO_KEY,
        OPENAI_BASE_URL,
        PAPER_MODEL,
        ROLES,
        LLMConfig,
        redact,
    )
    from clarify_gym.llm.reply import (
        Completion,
        JSONReply,
        Usage,
        json_exchange,
        parse_json_reply,
    )

#: name -> the submodule that defines it; imported on first use, so that importing one
#: submodule (``clarify_gym.llm.cache`` for the registration) does not load the client.
_HOME = {
    **dict.fromkeys(("ResponseCache", "llm_cache_dir", "request_key"), "cache"),
    **dict.fromkeys(("LLMClient", "backoff_delay"), "client"),
    **dict.fromkeys(
        ("NO_KEY", "OPENAI_BASE_URL", "PAPER_MODEL", "ROLES", "LLMConfig", "redact"), "config"
    ),
    **dict.fromkeys(
        ("Completion", "JSONReply", "Usage", "json_exchange", "parse_json_reply"), "reply"
    ),
}

__all__ = [
    "NO_KEY",
    "OPENAI_BASE_URL",
    "PAPER_MODEL",
    "ROLES",
    "Completion",
    "JSONReply",
    "LLMClient",
    "LLMConfig",
    "ResponseCache",
    "Usage",
    "backoff_delay",
    "json_exchange",
    "llm_cache_dir",
    "parse_json_reply",
    "redact",
    "request_key",
]


def __getattr__(name: str) -> Any:
    if name in _HOME:
        value = getattr(importlib.import_module(f"clarify_gym.llm.{_HOME[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOME})
