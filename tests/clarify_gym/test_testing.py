"""The fake OpenAI-compatible server itself: routes, roles, faults, lifecycle."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from conftest import FAKE_LLM_KEY

import clarify_gym as cg
from clarify_gym.testing import FakeLLMServer, Fault, detect_role, parse_numbered_document
from clarify_gym.users.llm import oracle_messages


def post(url: str, payload: dict, key: str = FAKE_LLM_KEY) -> tuple[int, dict]:
    request = urllib.request.Request(
        f"{url}/chat/completions",
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_models_route_auth_and_unknown_routes(fake_llm):
    request = urllib.request.Request(
        f"{fake_llm.url}/models", headers={"Authorization": f"Bearer {FAKE_LLM_KEY}"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert [m["id"] for m in json.loads(response.read())["data"]] == ["fake-model"]
    status, body = post(
        fake_llm.url, {"messages": [{"role": "user", "content": "hi"}]}, key="wrong"
    )
    assert status == 401 and "wrong" not in json.dumps(body)
    status, _ = post(fake_llm.url.replace("/v1", "/v2"), {"messages": []})
    assert status == 404


def test_oracle_prompt_round_trips_every_bundled_task():
    for task in cg.load_tasks("sample"):
        masked = cg.mask(task)
        parsed = parse_numbered_document(masked.numbered_document())
        assert [(s.id, s.text, s.field, s.section, s.hidden) for s in parsed] == [
            (s.id, s.text, s.field, s.section, s.hidden) for s in masked.sentences
        ]
    assert detect_role(oracle_messages(masked, "Who?", [], 3)) == "user"


def test_completion_shape_and_role_counts(fake_llm):
    masked = cg.mask(cg.load_tasks("sample")[0])
    status, body = post(
        fake_llm.url, {"model": "x", "messages": oracle_messages(masked, "What steps?", [], 2)}
    )
    reply = json.loads(body["choices"][0]["message"]["content"])
    assert status == 200 and body["model"] == "x" and body["usage"]["prompt_tokens"] > 100
    assert set(reply) == {"answer", "cited"} and len(reply["cited"]) <= 2
    assert fake_llm.stats.by_role == {"user": 1}


def test_faults_apply_in_order_to_their_role_then_stop(fake_llm):
    fake_llm.inject("server_error", role="judge")
    fake_llm.inject("rate_limit", times=2, seconds=1.5)
    hi = {"messages": [{"role": "user", "content": "hi"}]}
    assert post(fake_llm.url, hi)[0] == 429
    assert post(fake_llm.url, hi)[0] == 429
    assert post(fake_llm.url, hi)[0] == 200
    assert fake_llm.stats.faults == {"rate_limit": 2}  # the judge fault is still waiting
    with pytest.raises(ValueError, match="unknown fault"):
        Fault("gremlins")


def test_stop_releases_hung_requests_and_frees_the_port():
    server = FakeLLMServer().start()
    url = server.url
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    server.inject("hang", seconds=60)
    with socket.create_connection(("127.0.0.1", port)) as conn:
        body = json.dumps({"messages": [{"role": "user", "content": "hi"}]}).encode()
        conn.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        conn.settimeout(5)
        time.sleep(0.1)
        start = time.perf_counter()
        server.stop()
        assert conn.recv(100) == b""  # the hung request ends, without a response
        assert time.perf_counter() - start < 3
    with pytest.raises(RuntimeError, match="not running"):
        _ = server.url
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))  # nothing listens on the port any more


def test_module_runs_as_a_command():
    proc = subprocess.Popen(
        [sys.executable, "-m", "clarify_gym.testing", "--latency", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:") and url.endswith("/v1")
        with urllib.request.urlopen(f"{url}/models", timeout=5) as response:
            assert response.status == 200
    finally:
        proc.terminate()
        proc.wait(timeout=10)
