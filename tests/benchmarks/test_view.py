"""``clarify-gym view``: what the rows and tasks.json now carry, the page's content and size,
old runs, training samples, serving, and bad input (one error line, exit 2)."""

from __future__ import annotations

import json
import re
import shutil
import threading
import urllib.request
from pathlib import Path

import pytest
from clarify_bench.cli import main
from clarify_bench.harness.runfiles import read_results, read_tasks
from clarify_bench.harness.view import load_run, page_html, serve, write_view


def page_data(html: str) -> dict:
    match = re.search(r'<script type="application/json" id="data">(.*?)</script>', html, re.S)
    assert match, "the page embeds its data"
    return json.loads(match.group(1))


def test_rows_carry_per_turn_terms_and_tasks_json_holds_the_hidden_text(baseline_run):
    rows = read_results(baseline_run / "results.jsonl")
    tasks = read_tasks(baseline_run)
    assert tasks is not None and len(rows) == 48
    for row in rows:
        n = len(row["dialogue"])
        assert len(row["reward_terms"]) == len(row["answer_kinds"]) == n
        for terms, reward in zip(row["reward_terms"], row["rewards"], strict=True):
            assert "new_info" in terms  # the terms the env reported for the turn
            assert reward == pytest.approx(terms["new_info"])  # the default weights
        task = tasks[row["task_id"]]
        hidden = {s[0] for s in task["sentences"] if s[2]}
        assert len(hidden) == row["num_hidden"]
        assert {i for new in row["new_hidden_ids"] for i in new} <= hidden
        assert len(task["checklist"]) == len(row["checklist_met"])
    # the visible text (what agents see) holds no hidden sentence
    task = next(iter(tasks.values()))
    for _, _, is_hidden, text in task["sentences"]:
        if is_hidden and len(text) > 30:
            assert text not in task["visible_text"]


def test_page_is_self_contained_small_and_holds_every_episode(baseline_run, tmp_path):
    out = write_view([baseline_run], tmp_path / "page.html")
    html = out.read_text(encoding="utf-8")
    assert out.stat().st_size < 5_000_000
    # no external resource: no src/href to a URL, no @import, no font file
    assert not re.search(r'(src|href)\s*=\s*["\']?(https?:)?//', html)
    assert "@import" not in html and "url(" not in html
    data = page_data(html)
    (run,) = data["runs"]
    assert len(run["episodes"]) == 48 and run["agents"] == [
        "passive",
        "generic",
        "random",
        "oracle",
    ]
    assert [p["name"] for p in run["plots"]] == ["scores.png", "coverage_by_question.png"]
    assert all(p["src"].startswith("data:image/png;base64,") for p in run["plots"])
    assert (
        run["meta"]["env"].startswith("ProactiveGather-v1")
        and run["meta"]["judge"] == "LexicalJudge"
    )
    oracle = next(s for s in run["summary"] if s["agent"] == "oracle")
    mean, half = oracle["metrics"]["env/hidden_coverage"]
    assert 0.5 < mean <= 1.0 and half is not None
    assert set(run["tasks"]) == set(run["task_ids"]) and len(run["task_ids"]) == 12


def test_page_text_cannot_close_its_script(tmp_path, baseline_run):
    run = load_run(baseline_run)
    run["episodes"][0]["dialogue"] = [
        {"question": "</script><script>alert(1)</script>", "answer": "x"}
    ]
    html = page_html([run])
    assert html.count("</script>") == 2  # the data block's and the code's own
    assert page_data(html)["runs"][0]["episodes"][0]["dialogue"][0]["question"].startswith(
        "</script>"
    )


def test_old_runs_without_new_fields_still_view(baseline_run, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(baseline_run, old)
    (old / "tasks.json").unlink()
    rows = read_results(old / "results.jsonl")
    for row in rows:
        for key in ("reward_terms", "answer_kinds", "eval/checklist_score"):
            row.pop(key, None)
    (old / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    run = load_run(old)
    assert len(run["tasks"]) == 12  # reloaded from the run's task source ("sample")
    assert "eval/checklist_score" not in run["metrics"]
    (old / "metadata.json").write_text("{}")
    assert load_run(old)["tasks"] == {}  # no source: ids only, still a page


def test_extra_metrics_in_rows_show_in_the_summary(baseline_run, tmp_path):
    run_dir = tmp_path / "extra"
    shutil.copytree(baseline_run, run_dir)
    rows = read_results(run_dir / "results.jsonl")
    for row in rows:
        row["eval/unclear_rate"], row["eval/question_rate"] = 0.25, 0.75
    (run_dir / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    run = load_run(run_dir)
    assert run["metrics"][-2:] == ["eval/question_rate", "eval/unclear_rate"]
    generic = next(s for s in run["summary"] if s["agent"] == "generic")
    assert generic["metrics"]["eval/unclear_rate"][0] == pytest.approx(0.25)


def test_training_samples_folder_views_updates_as_columns(tmp_path):
    folder = tmp_path / "ppo"
    folder.mkdir()
    (folder / "config.json").write_text(
        json.dumps(
            {
                "env": {"env_id": "ProactiveGather-v1", "tasks": "sample", "split": "train"},
                "log": {"sample_every": 2},
            }
        )
    )
    rows = [
        {
            "agent": f"update {u}",
            "update": u,
            "task_id": "cg-law-01",
            "seed": u,
            "num_hidden": 5,
            "env/hidden_coverage": u / 10,
            "dialogue": [{"question": f"q{u}?", "answer": "a"}],
            "cited_ids": [[]],
            "new_hidden_ids": [[]],
            "outline": "",
            "checklist_met": [],
        }
        for u in (2, 4)
    ]
    (folder / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    run = load_run(folder)
    assert run["kind"] == "train" and run["agents"] == ["update 2", "update 4"]
    assert "cg-law-01" in run["tasks"]


def test_serve_answers_on_loopback(baseline_run, tmp_path):
    page = write_view([baseline_run], tmp_path / "p.html")
    servers = []
    ready = threading.Event()
    thread = threading.Thread(
        target=serve,
        args=(page, 0),
        kwargs={"ready": lambda s: (servers.append(s), ready.set())},
        daemon=True,
    )
    thread.start()
    assert ready.wait(10)
    host, port = servers[0].server_address[:2]
    try:
        assert host == "127.0.0.1"
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10).read()
        assert body == page.read_bytes()
    finally:
        servers[0].shutdown()
        thread.join(10)


def test_cli_writes_index_html_and_compares_two_runs(baseline_run, tmp_path, capsys):
    run_dir = tmp_path / "a"
    shutil.copytree(baseline_run, run_dir)
    assert main(["view", str(run_dir)]) == 0
    assert (run_dir / "index.html").exists() and "wrote" in capsys.readouterr().out
    assert main(["view", str(run_dir), str(baseline_run), "--out", str(tmp_path / "c.html")]) == 0
    assert len(page_data((tmp_path / "c.html").read_text())["runs"]) == 2


@pytest.mark.parametrize(
    "args, says",
    [
        (["nowhere"], "is not a folder"),
        (["EMPTY"], "has no results.jsonl"),
        (["RUN", "--out", "DIR"], "is a folder"),
        (["RUN", "--out", "missing/x.html"], "does not exist"),
        (["RUN", "--serve", "0"], "--serve takes a port"),
        (["RUN", "--serve", "70000"], "--serve takes a port"),
    ],
)
def test_bad_input_is_one_error_line_and_exit_2(baseline_run, tmp_path, capsys, args, says):
    (tmp_path / "EMPTY").mkdir()
    (tmp_path / "DIR").mkdir()
    subst = {
        "RUN": str(baseline_run),
        "EMPTY": str(tmp_path / "EMPTY"),
        "DIR": str(tmp_path / "DIR"),
        "nowhere": str(tmp_path / "nowhere"),
        "missing/x.html": str(tmp_path / "missing" / "x.html"),
    }
    status = main(["view", *[subst.get(a, a) for a in args]])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and err[0].startswith("clarify-gym view: error: ")
    assert says in err[0]
    assert not (Path(baseline_run) / "index.html").exists()  # nothing written before the error
