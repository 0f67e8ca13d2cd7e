from __future__ import annotations

import json
import subprocess
import sys

from clarify_bench.cli import main

import clarify_gym as cg


def test_tasks_list_prints_every_task(capsys):
    assert main(["tasks", "list"]) == 0
    out = capsys.readouterr().out
    tasks = cg.load_tasks("sample")
    assert all(t.id in out for t in tasks)
    assert f"{len(tasks)} tasks in" in out


def test_tasks_list_json_and_split(capsys):
    assert main(["tasks", "list", "--split", "test", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows and {r["split"] for r in rows} == {"test"}
    assert all(r["hidden"] > 0 for r in rows)


def test_tasks_show_masked_marks_hidden_sentences(capsys):
    task = cg.load_tasks("sample")[0]
    masked = cg.mask(task)
    assert main(["tasks", "show", task.id, "--masked"]) == 0
    out = capsys.readouterr().out
    hidden_lines = [line for line in out.splitlines() if line.startswith("H [")]
    assert len(hidden_lines) == len(masked.hidden_ids)
    assert "## Checklist" in out


def test_tasks_show_unknown_id_and_bad_source():
    result = subprocess.run(
        [sys.executable, "-m", "clarify_bench.cli", "tasks", "show", "no-such-task"],
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0 and "no task 'no-such-task'" in result.stderr
    assert main(["tasks", "list", "--tasks", "/nonexistent/file.jsonl"]) == 2
