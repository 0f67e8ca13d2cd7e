"""Process-wide connection pools and concurrency limits, shared by every
:class:`~clarify_gym.llm.client.LLMClient` of one endpoint.

One ``openai`` client per (process, endpoint, key, timeout) for threads and one per event loop
for asyncio, so clients of the same endpoint share connections; one concurrency limit per
(endpoint, ``max_concurrency``) for threads, and one per event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
import weakref
from typing import Any

from clarify_gym.errors import require
from clarify_gym.llm.config import LLMConfig

__all__ = ["POOL_LOCK", "loop_limit", "pooled_client", "thread_limit"]

POOL_LOCK = threading.Lock()
_SYNC_POOL: dict[tuple[Any, ...], Any] = {}
_SYNC_LIMITS: dict[tuple[Any, ...], threading.BoundedSemaphore] = {}
_ASYNC_POOL: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[Any, ...], Any]] = (
    weakref.WeakKeyDictionary()
)
_ASYNC_LIMITS: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[tuple[Any, ...], asyncio.Semaphore]
] = weakref.WeakKeyDictionary()


def pooled_client(config: LLMConfig, api_key: str, loop: asyncio.AbstractEventLoop | None) -> Any:
    """The process's (``loop=None``: ``openai.OpenAI``) or event loop's (``AsyncOpenAI``) shared
    client for this endpoint and key (the key enters the pool key only as a hash)."""
    openai = require("openai", extra="llm", feature="LLM backends")
    digest = hashlib.sha256(api_key.encode()).hexdigest()
    key = (os.getpid(), config.base_url, digest, config.timeout)
    with POOL_LOCK:
        pool = _SYNC_POOL if loop is None else _ASYNC_POOL.setdefault(loop, {})
        if key not in pool:
            cls = openai.OpenAI if loop is None else openai.AsyncOpenAI  # type: ignore[attr-defined]
            pool[key] = cls(
                api_key=api_key, base_url=config.base_url, timeout=config.timeout, max_retries=0
            )
        return pool[key]


def thread_limit(config: LLMConfig) -> threading.BoundedSemaphore:
    """The semaphore that bounds this process's threads' requests to the endpoint."""
    key = (os.getpid(), config.base_url, config.max_concurrency)
    with POOL_LOCK:
        if key not in _SYNC_LIMITS:
            _SYNC_LIMITS[key] = threading.BoundedSemaphore(config.max_concurrency or 1)
        return _SYNC_LIMITS[key]


def loop_limit(config: LLMConfig) -> asyncio.Semaphore:
    """The semaphore that bounds the running event loop's requests to the endpoint."""
    loop, key = asyncio.get_running_loop(), (config.base_url, config.max_concurrency)
    with POOL_LOCK:
        limits = _ASYNC_LIMITS.setdefault(loop, {})
        if key not in limits:
            limits[key] = asyncio.Semaphore(config.max_concurrency or 1)
        return limits[key]
