"""The on-disk cache of LLM replies: one JSON file per request, written atomically.

A request is keyed by the SHA-256 of its canonical JSON (model, messages and the sampling
parameters; never the endpoint URL or the API key), so the same request from any process, any
endpoint address or any day reads the same reply. Files live at ``<dir>/<k[:2]>/<k>.json``.

Safe when several processes (or threads) share the folder: a reply is written to a temporary
file in the same folder and moved into place with :func:`os.replace`, which is atomic, so a
reader sees either no file or a whole one; two writers of the same key both write whole files
and the last one wins. A file that does not parse (edited by hand, disk full) counts as a miss
and is overwritten on the next write.

Where it is (:func:`llm_cache_dir`): ``$CLARIFY_GYM_LLM_CACHE`` when set (``0``, ``off``,
``false``, ``no`` or ``none`` turn the cache off), else ``$CLARIFY_GYM_CACHE/llm``, else
``~/.cache/clarify-gym/llm``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["CACHE_ENV", "ResponseCache", "llm_cache_dir", "request_key"]

logger = logging.getLogger(__name__)

#: The environment variable that moves or disables the cache.
CACHE_ENV = "CLARIFY_GYM_LLM_CACHE"
_OFF = frozenset({"", "0", "off", "false", "no", "none"})
#: Bumped when the key's content or the file format changes (old entries are then ignored).
KEY_VERSION = 1


def llm_cache_dir(environ: Mapping[str, str] | None = None) -> Path | None:
    """The cache folder the environment selects, or ``None`` when the cache is off.

    >>> llm_cache_dir({"CLARIFY_GYM_LLM_CACHE": "off"}) is None
    True
    >>> str(llm_cache_dir({"CLARIFY_GYM_LLM_CACHE": "/tmp/replies"}))
    '/tmp/replies'
    >>> str(llm_cache_dir({"CLARIFY_GYM_CACHE": "/data/cg"}))
    '/data/cg/llm'
    """
    env = os.environ if environ is None else environ
    value = env.get(CACHE_ENV)
    if value is not None:
        return None if value.strip().lower() in _OFF else Path(value).expanduser()
    base = env.get("CLARIFY_GYM_CACHE")
    root = Path(base).expanduser() if base else Path.home() / ".cache" / "clarify-gym"
    return root / "llm"


def request_key(model: str, messages: list[dict[str, Any]], params: Mapping[str, Any]) -> str:
    """The cache key of a request: SHA-256 of its canonical JSON (``None`` parameters dropped).

    >>> msgs = [{"role": "user", "content": "Hi"}]
    >>> request_key("m", msgs, {"temperature": 0.0}) == request_key("m", msgs, {"temperature": 0.0, "seed": None})
    True
    >>> request_key("m", msgs, {"temperature": 0.0}) == request_key("m", msgs, {"temperature": 0.7})
    False
    """
    payload = {
        "v": KEY_VERSION,
        "model": model,
        "messages": [{"role": m["role"], "content": m["content"]} for m in messages],
        "params": {k: v for k, v in sorted(params.items()) if v is not None},
    }
    canonical = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class ResponseCache:
    """Replies by request key, one file each (see the module docstring).

    Args:
        directory: The cache folder (created on first write).
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __repr__(self) -> str:
        return f"ResponseCache({str(self.directory)!r})"

    def path(self, key: str) -> Path:
        """Where the reply of ``key`` is stored."""
        return self.directory / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        """The stored record of ``key``, or ``None`` (a missing or unreadable file is a miss)."""
        try:
            record = json.loads(self.path(key).read_text(encoding="utf-8"))
        except FileNotFoundError:
            record = None
        except (OSError, ValueError) as exc:
            logger.warning("ignoring unreadable LLM cache entry %s: %s", self.path(key), exc)
            record = None
        if record is not None and (not isinstance(record, dict) or record.get("key") != key):
            record = None
        with self._lock:
            if record is None:
                self.misses += 1
            else:
                self.hits += 1
        return record

    def put(self, key: str, record: Mapping[str, Any]) -> None:
        """Store ``record`` under ``key`` atomically (temporary file, then :func:`os.replace`)."""
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        data = json.dumps({**record, "key": key}, ensure_ascii=False, indent=1)
        fd, tmp = tempfile.mkstemp(prefix=f".{key[:12]}-", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(data)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
