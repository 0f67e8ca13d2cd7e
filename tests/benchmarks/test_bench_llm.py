"""``clarify-gym bench`` with LLM parts on the fake server: what the records carry, the exit
status when episodes fail, and one error line per failure."""

from __future__ import annotations

import json
import socket

from clarify_bench.cli import main


def bench(tmp_path, capsys, *args: str) -> tuple[int, str, dict, list[dict]]:
    out = tmp_path / "run"
    status = main(["bench", "--out", str(out), "--no-plots", "--no-progress", *args])
    err = capsys.readouterr().err
    meta = (
        json.loads((out / "metadata.json").read_text()) if (out / "metadata.json").exists() else {}
    )
    rows = []
    if (out / "results.jsonl").exists():
        rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    return status, err, meta, rows


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("clarify-gym bench: error:")]


def test_llm_env_run_records_models_errors_and_exits_3(fake_llm, tmp_path, capsys):
    fake_llm.inject("malformed_json", times=2, role="judge")  # the first judge call and its repair
    spec = f"chat:@{fake_llm.url}"
    status, err, meta, rows = bench(
        tmp_path, capsys, "--agents", spec, "--env-id", "ProactiveGather-LLM-v0", "--episodes", "2"
    )
    assert status == 3 and len(error_lines(err)) == 1 and "Traceback" not in err
    assert "1 recorded episode(s) have an LLM judge or user error" in error_lines(err)[0]
    agent = meta["agents"][spec]
    assert (agent["model"], agent["served_model"], agent["base_url"]) == (
        "fake-model",
        "fake-model",
        fake_llm.url,
    )
    assert agent["max_tokens"] == 512 and agent["temperature"] == 0.0 and "api_key" not in agent
    parts = meta["env"]["parts"]
    assert {parts[p]["model"] for p in ("user", "writer", "judge")} == {"fake-model"}
    assert parts["user"]["json_mode"] == "schema" and parts["judge"]["checklist"] == "TaskChecklist"
    assert fake_llm.api_key not in json.dumps(meta)
    judged = [r["judge_error"] for r in rows]
    assert len(rows) == 2 and judged[0] and judged[1] is None
    assert all(r["llm/calls"] > 0 and r["user_errors"] == [None] * len(r["dialogue"]) for r in rows)
    summary = (tmp_path / "run" / "summary.md").read_text()
    assert f"{spec}: 1 errored of 2" in summary


def test_agent_failing_its_first_episodes_is_one_error_line(fake_llm, tmp_path, capsys):
    fake_llm.inject("server_error", times=100, role="agent")
    spec = f"chat:fake-model@{fake_llm.url}"
    status, err, meta, rows = bench(
        tmp_path,
        capsys,
        "--agents",
        f"{spec},passive",
        "--episodes",
        "6",
        "--agent-kwargs",
        '{"chat": {"max_retries": 0}}',
    )
    assert status == 3 and "Traceback" not in err and len(error_lines(err)) == 1
    line = error_lines(err)[0]
    assert "failed its first 5 episodes; giving up" in line and "HTTP 500" in line
    assert {r["agent"] for r in rows} == {"passive"} and meta["failed_episodes"] == {spec: 5}


def test_unreachable_server_is_one_line_naming_the_cause(fake_llm, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("CLARIFY_GYM_LLM_MODEL")  # the model must come from /v1/models
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    status, err, _, _ = bench(
        tmp_path,
        capsys,
        "--agents",
        f"chat:@{url}",
        "--agent-kwargs",
        '{"chat": {"max_retries": 0}}',
    )
    assert status == 2 and "Traceback" not in err and len(error_lines(err)) == 1
    assert f"is a server running at {url}?" in err and "CLARIFY_GYM_LLM_MODEL" not in err


def test_bench_records_llm_counts_per_role(fake_llm, tmp_path, capsys):
    """Every run records, per LLM role, the served model, parses, repairs, retries, timeouts
    and fallbacks: in each row, in metadata.json (also the env parts' served model and
    fallback, which used to stay null/false) and in summary.md."""
    fake_llm.inject("reject_format", times=1, role="judge")
    fake_llm.inject("server_error", times=1, role="user")
    fake_llm.inject("malformed_json", times=1, role="user")
    spec = f"chat:@{fake_llm.url}"
    status, err, meta, rows = bench(
        tmp_path, capsys, "--agents", spec, "--env-id", "ProactiveGather-LLM-v0", "--episodes", "2"
    )
    assert status == 0, err
    for row in rows:
        for role in ("user", "writer", "judge", "agent"):
            assert row[f"llm/{role}/served_model"] == "fake-model"
            assert row[f"llm/{role}/calls"] >= 1 and row[f"llm/{role}/timeouts"] == 0
    llm = meta["llm"]
    assert llm["judge"]["fallbacks"] == 1 and llm["user"]["fallbacks"] == 0
    assert (llm["user"]["retries"], llm["user"]["repairs"]) == (1, 1)
    assert llm["user"]["json_replies"] == sum(len(r["dialogue"]) for r in rows)
    assert llm["user"]["parsed_first_try"] == llm["user"]["json_replies"] - 1
    assert llm["agent"]["calls"] >= sum(len(r["dialogue"]) for r in rows)
    assert llm["agent"]["episodes"] == 2 and llm["agent"]["json_replies"] == 0
    parts = meta["env"]["parts"]
    assert {parts[p]["served_model"] for p in ("user", "writer", "judge")} == {"fake-model"}
    assert parts["judge"]["json_fallback"] is True and parts["user"]["json_fallback"] is False
    summary = (tmp_path / "run" / "summary.md").read_text()
    parsed = f"{llm['user']['parsed_first_try']} of {llm['user']['json_replies']}"
    user = f"| user | 2 | fake-model | {llm['user']['calls']} | {llm['user']['json_replies']} |"
    assert f"{user} {parsed}" in summary
    assert "| judge | 2 | fake-model |" in summary and "| agent | 2 | fake-model |" in summary
