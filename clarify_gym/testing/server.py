"""A fake OpenAI-compatible server over real HTTP on 127.0.0.1 (standard library only).

Serves ``GET /v1/models`` and ``POST /v1/chat/completions`` (non-streaming) on a free port,
in a background thread, for as long as the ``with`` block that started it::

    with FakeLLMServer(latency=0.2) as server:
        os.environ.update(server.env())   # or LLMClient(base_url=server.url, ...)
        server.inject("rate_limit", times=2, seconds=0.1)
        ...

Replies come from :class:`~clarify_gym.testing.responders.Responder` (the offline user, writer
and judge behind the real prompts). Faults are injected on demand, each for the next ``times``
chat requests (of one ``role`` if given), in the order injected:

==================  ============================================================================
``latency``         wait ``seconds``, then answer normally (on top of the server's ``latency``)
``rate_limit``      HTTP 429 with ``Retry-After: <seconds>``
``server_error``    HTTP 500
``hang``            answer nothing for ``seconds`` (set it above the client's timeout)
``malformed_json``  HTTP 200, but the message content is broken JSON
``empty_reply``     HTTP 200 with an empty message
``invalid_body``    HTTP 200 whose body is not JSON at all
``truncated_body``  headers announce the whole body; half of it is sent, then the connection closes
``disconnect``      the connection is closed without a response
``cut_for_length``  HTTP 200 with the first few words of the reply and ``finish_reason: length``
``reject_format``   HTTP 400 when the request has ``response_format`` (a server without
                    structured outputs); requests without it are answered normally
``context_overflow`` HTTP 400 as llama-server words a prompt longer than its context ("the
                    request exceeds the available context size"), with or without
                    ``response_format``
==================  ============================================================================

A fault injected with ``role="models"`` applies to ``GET /v1/models`` instead (``server_error``,
``rate_limit``, ``disconnect`` ...). ``served_model`` makes replies name that model whatever the
request asked for (as llama-server does, which serves one model and ignores the field).

``stats`` counts requests by role, faults served, ``response_format`` types sent, the bearer
tokens received, and the most requests ever in flight at once;
``requests`` keeps the last 200 chat request bodies.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from clarify_gym.testing.responders import Responder

__all__ = ["FAULTS", "FakeLLMServer", "Fault", "ServerStats"]

logger = logging.getLogger(__name__)

FAULTS = (
    "latency",
    "rate_limit",
    "server_error",
    "hang",
    "malformed_json",
    "empty_reply",
    "invalid_body",
    "truncated_body",
    "disconnect",
    "cut_for_length",
    "reject_format",
    "context_overflow",
)


@dataclass
class Fault:
    """One fault to serve ``times`` times."""

    #: One of :data:`FAULTS`.
    kind: str
    #: How many requests it applies to.
    times: int = 1
    #: Delay of ``latency``, ``Retry-After`` of ``rate_limit``, duration of ``hang``.
    seconds: float = 0.0
    #: Only requests of this role (``user``, ``writer``, ``judge``, ``builder``, ``agent``, or
    #: ``models`` for the model listing).
    role: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in FAULTS:
            raise ValueError(f"unknown fault {self.kind!r}; choose from {FAULTS}")


@dataclass
class ServerStats:
    """What the server saw."""

    requests: int = 0
    by_role: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    #: ``response_format.type`` of each chat request (``none`` when absent).
    formats: Counter[str] = field(default_factory=Counter)
    #: Bearer tokens received (chat and listing), by value: what a key rule let through.
    keys: Counter[str] = field(default_factory=Counter)
    in_flight: int = 0
    max_in_flight: int = 0


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out at once, no 40 ms delayed-ACK stall
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("fake LLM server: " + format, *args)

    def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _authorised(self) -> bool:
        owner = self.server.owner
        if owner.api_key is None:
            return True
        if self.headers.get("Authorization", "") == f"Bearer {owner.api_key}":
            return True
        error = {"message": "Incorrect API key provided.", "type": "invalid_request_error"}
        self._send(401, {"error": error})
        return False

    def _count_auth(self) -> None:
        token = self.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if token:
            with self.server.owner._lock:
                self.server.owner.stats.keys[token] += 1

    def do_GET(self) -> None:
        self._count_auth()
        if self.path.rstrip("/") != "/v1/models":
            self._send(404, {"error": {"message": f"no route {self.path}"}})
        elif self._authorised() and not self._listing_fault():
            model = self.server.owner.model
            self._send(
                200,
                {
                    "object": "list",
                    "data": [
                        {"id": model, "object": "model", "created": 0, "owned_by": "clarify-gym"}
                    ],
                },
            )

    def _listing_fault(self) -> bool:
        """Serve a fault injected for ``role="models"``; True when one was served."""
        fault = self.server.owner._take_fault("models", exact=True)
        if fault is None:
            return False
        if fault.kind in ("latency", "hang"):
            self.server.owner._wait(fault.seconds)
            if fault.kind == "latency":
                return False
        self._serve_fault(fault)
        return True

    def _serve_fault(self, fault: Fault) -> bool:
        """Answer with an error fault; False when ``fault`` is not one of those."""
        if fault.kind == "hang":
            self.close_connection = True
        elif fault.kind == "rate_limit":
            error = {"message": "Rate limit reached, slow down.", "type": "requests"}
            self._send(429, {"error": error}, {"Retry-After": f"{fault.seconds:g}"})
        elif fault.kind == "server_error":
            self._send(
                500, {"error": {"message": "The server had an error.", "type": "server_error"}}
            )
        elif fault.kind == "disconnect":
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
        elif fault.kind == "invalid_body":
            self._send(200, b"<html>502 Bad Gateway</html> not json {")
        else:
            return False
        return True

    def do_POST(self) -> None:
        self._count_auth()
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._send(404, {"error": {"message": f"no route {self.path}"}})
            return
        if not self._authorised():
            return
        owner = self.server.owner
        try:
            request = json.loads(raw)
            messages = request["messages"]
        except (ValueError, KeyError, TypeError):
            self._send(400, {"error": {"message": "body must be JSON with messages"}})
            return
        role, text = owner.responder.reply(messages)
        owner._enter(role, request)
        try:
            self._serve(owner, request, role, text)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
            self.close_connection = True
        finally:
            owner._leave()

    def _serve(self, owner: FakeLLMServer, request: dict[str, Any], role: str, text: str) -> None:
        # a server without structured outputs answers plain requests: reject_format waits
        fault = owner._take_fault(role, formatted="response_format" in request)
        if owner.latency:
            owner._wait(owner.latency)
        kind = fault.kind if fault else None
        finish = "stop"
        if kind in ("latency", "hang"):
            owner._wait(fault.seconds)  # type: ignore[union-attr]
        if fault is not None and kind != "latency" and self._serve_fault(fault):
            return
        if kind == "reject_format":
            message = "response_format is not supported by this server"
            self._send(400, {"error": {"message": message, "type": "invalid_request_error"}})
            return
        if kind == "context_overflow":  # llama-server's words and fields
            error = {
                "code": 400,
                "message": "the request exceeds the available context size, try increasing it",
                "type": "exceed_context_size_error",
                "n_prompt_tokens": 5000,
                "n_ctx": 4096,
            }
            self._send(400, {"error": error})
            return
        if kind == "malformed_json":
            text = 'Sure! Here it is: {"answer": "The steps are, "cited": [1, 2'
        elif kind == "empty_reply":
            text = ""
        elif kind == "cut_for_length":
            text, finish = " ".join(("Well, " + text).split()[:6]), "length"
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in request["messages"])
        completion = {
            "id": f"chatcmpl-fake-{owner.stats.requests}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": owner.served_model or request.get("model", owner.model),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": finish,
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": len(text.split()),
                "total_tokens": prompt_tokens + len(text.split()),
            },
        }
        if kind == "truncated_body":
            body = json.dumps(completion).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self._send(200, completion)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    owner: FakeLLMServer


class FakeLLMServer:
    """The fake server (see the module docstring).

    Args:
        latency: Seconds every chat request waits before it is answered.
        model: The one model ``/v1/models`` lists (requests may name any model).
        api_key: When set, requests without ``Authorization: Bearer <api_key>`` get 401.
        messy_agent: Agent replies written the way real models write them.
        served_model: The model every reply names (``None``: the one the request asked for).
        port: 0 picks a free port.
    """

    def __init__(
        self,
        *,
        latency: float = 0.0,
        model: str = "fake-model",
        api_key: str | None = None,
        messy_agent: bool = False,
        served_model: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.latency = latency
        self.model = model
        self.api_key = api_key
        self.served_model = served_model
        #: The last 200 chat request bodies, oldest first.
        self.requests: deque[dict[str, Any]] = deque(maxlen=200)
        self.responder = Responder(messy_agent=messy_agent)
        self.stats = ServerStats()
        self._host, self._port = host, port
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The base URL, ending in ``/v1``."""
        if self._httpd is None:
            raise RuntimeError("the fake server is not running: use it in a with block, or start()")
        return f"http://{self._host}:{self._httpd.server_port}/v1"

    def env(self) -> dict[str, str]:
        """Environment variables that point every LLM part of clarify-gym at this server."""
        return {
            "CLARIFY_GYM_LLM_BASE_URL": self.url,
            "CLARIFY_GYM_LLM_API_KEY": self.api_key or "fake-key",
            "CLARIFY_GYM_LLM_MODEL": self.model,
        }

    def start(self) -> FakeLLMServer:
        """Listen on the port and serve from a daemon thread."""
        self._stopping.clear()
        self._httpd = _HTTPServer((self._host, self._port), _Handler)
        self._httpd.owner = self
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="fake-llm-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving (hung requests are released) and free the port."""
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeLLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def inject(
        self, kind: str, *, times: int = 1, seconds: float = 0.0, role: str | None = None
    ) -> None:
        """Serve fault ``kind`` on the next ``times`` chat requests (of ``role`` if given)."""
        with self._lock:
            self._faults.append(Fault(kind, times, seconds, role))

    def clear_faults(self) -> None:
        """Drop the faults not served yet."""
        with self._lock:
            self._faults.clear()

    def reset_stats(self) -> None:
        """Start counting from zero."""
        with self._lock:
            self.stats = ServerStats()

    # ---- used by the handler -----------------------------------------------------------------
    def _take_fault(
        self, role: str, *, exact: bool = False, formatted: bool = True
    ) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.kind == "reject_format" and not formatted:
                    continue
                if fault.times > 0 and (fault.role == role or (fault.role is None and not exact)):
                    fault.times -= 1
                    self.stats.faults[fault.kind] += 1
                    self._faults = [f for f in self._faults if f.times > 0]
                    return fault
        return None

    def _enter(self, role: str, request: dict[str, Any]) -> None:
        with self._lock:
            self.requests.append(request)
            self.stats.formats[(request.get("response_format") or {}).get("type", "none")] += 1
            self.stats.requests += 1
            self.stats.by_role[role] += 1
            self.stats.in_flight += 1
            self.stats.max_in_flight = max(self.stats.max_in_flight, self.stats.in_flight)

    def _leave(self) -> None:
        with self._lock:
            self.stats.in_flight -= 1

    def _wait(self, seconds: float) -> None:
        self._stopping.wait(seconds)
