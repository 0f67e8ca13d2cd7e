"""``clarify-gym rescore``: the run's own offline writer and judge reproduce the stored scores
exactly; an LLM judge on the fake server records its usage and errors like a bench run; resume
and bad input."""

from __future__ import annotations

import json
import shutil

import pytest
from clarify_bench.cli import main
from clarify_bench.harness.rescore import RescoreConfig, rescore
from clarify_bench.harness.runfiles import episode_key, read_results
from clarify_bench.harness.view import load_run

KEPT = (
    "dialogue",
    "cited_ids",
    "new_hidden_ids",
    "rewards",
    "reward_terms",
    "env/new_info",
    "env/hidden_coverage",
    "env/paper_reward",
    "env/questions",
    "env/redundant_rate",
    "return",
)


def by_key(rows):
    return {episode_key(r): r for r in rows}


def test_offline_rescore_reproduces_the_stored_checklist_scores_exactly(
    baseline_run, tmp_path, capsys
):
    out = tmp_path / "rescored"
    assert main(["rescore", str(baseline_run), "--out", str(out), "--no-progress"]) == 0
    old, new = (
        by_key(read_results(baseline_run / "results.jsonl")),
        by_key(read_results(out / "results.jsonl")),
    )
    assert set(old) == set(new) and len(new) == 48
    for key, row in old.items():
        again = new[key]
        assert again["eval/checklist_score"] == row["eval/checklist_score"]  # exactly
        assert again["checklist_met"] == row["checklist_met"] and again["outline"] == row["outline"]
        assert all(again[k] == row[k] for k in KEPT)
        assert again["rescored_from"]["eval/checklist_score"] == row["eval/checklist_score"]
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["rescore"]["specs"] == {"writer": "template", "judge": "lexical"}
    assert meta["rescore"]["from"] == str(baseline_run) and meta["finished"]
    assert (out / "summary.md").read_text().split("\n\n")[2] == (
        baseline_run / "summary.md"
    ).read_text().split("\n\n")[2]
    assert (out / "scores.png").exists() and load_run(out)["meta"]["rescored from"]


def test_llm_judge_on_the_fake_server_records_usage_and_errors(
    baseline_run, fake_llm, tmp_path, capsys
):
    fake_llm.inject("malformed_json", times=2, role="judge")  # one verdict and its repair fail
    out = tmp_path / "llm"
    status = main(
        [
            "rescore",
            str(baseline_run),
            "--out",
            str(out),
            "--no-progress",
            "--no-plots",
            "--judge",
            f"llm:fake-model@{fake_llm.url}",
        ]
    )
    err = capsys.readouterr().err
    lines = [x for x in err.splitlines() if x.startswith("clarify-gym rescore: error:")]
    assert (
        status == 3
        and len(lines) == 1
        and "1 recorded episode(s) have an LLM judge or user error" in lines[0]
    )
    rows = read_results(out / "results.jsonl")
    assert len(rows) == 48 and sum(bool(r["judge_error"]) for r in rows) == 1
    judged = [r for r in rows if r["checklist_met"]]
    assert len(judged) == 47 and all(
        r["llm/calls"] >= 1 and r["llm/prompt_tokens"] > 0 for r in judged
    )
    meta = json.loads((out / "metadata.json").read_text())
    judge = meta["rescore"]["judge"]
    assert (
        judge["class"] == "LLMJudge"
        and judge["base_url"] == fake_llm.url
        and judge["model"] == "fake-model"
    )
    assert (
        meta["env"]["parts"]["judge"] == judge
        and meta["env"]["parts"]["writer"]["class"] == "TemplateWriter"
    )
    assert fake_llm.api_key not in json.dumps(meta)
    assert "1 errored of 12" in (out / "summary.md").read_text()
    # the fake judge reads the same outlines: its scores are real fractions of the checklist
    assert all(0.0 <= r["eval/checklist_score"] <= 1.0 for r in rows)


def test_resume_finishes_a_killed_rescore_without_doing_episodes_twice(baseline_run, tmp_path):
    out = tmp_path / "part"
    rescore(RescoreConfig(str(baseline_run), out=str(out), progress=False, plots=False))
    rows = (out / "results.jsonl").read_text().splitlines(keepends=True)
    (out / "results.jsonl").write_text("".join(rows[:20]) + rows[20][:15])  # killed mid-write
    with pytest.raises(Exception, match="--resume"):
        rescore(RescoreConfig(str(baseline_run), out=str(out), progress=False, plots=False))
    rescore(
        RescoreConfig(
            str(baseline_run), out=str(out), resume=True, concurrency=2, progress=False, plots=False
        ),
    )
    keys = [episode_key(r) for r in read_results(out / "results.jsonl")]
    assert len(keys) == len(set(keys)) == 48


@pytest.mark.parametrize(
    "args, says",
    [
        (["RUN"], "--out"),
        (["EMPTY", "--out", "NEW"], "has no results.jsonl"),
        (["RUN", "--out", "RUN"], "must be a new folder"),
        (["RUN", "--out", "NEW", "--judge", "gpt"], "--judge 'gpt' is not a judge"),
        (["RUN", "--out", "NEW", "--writer", "lexical"], "is not a writer"),
        (["RUN", "--out", "NEW", "--concurrency", "0"], "--concurrency must be >= 1"),
        (["RUN", "--out", "NEW", "--tasks", "NOFILE"], "cannot load the run's tasks"),
    ],
)
def test_bad_input_is_one_error_line_and_exit_2(baseline_run, tmp_path, capsys, args, says):
    (tmp_path / "EMPTY").mkdir()
    subst = {
        "RUN": str(baseline_run),
        "EMPTY": str(tmp_path / "EMPTY"),
        "NEW": str(tmp_path / "new"),
        "NOFILE": str(tmp_path / "no.jsonl"),
    }
    status = main(["rescore", *[subst.get(a, a) for a in args], "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and err[0].startswith("clarify-gym rescore: error: ")
    assert says in err[0]
    assert not (tmp_path / "new" / "results.jsonl").exists()


def test_rescore_refuses_to_resume_with_another_judge(baseline_run, tmp_path, capsys):
    out = tmp_path / "r"
    shutil.rmtree(out, ignore_errors=True)
    rescore(RescoreConfig(str(baseline_run), out=str(out), progress=False, plots=False))
    status = main(
        [
            "rescore",
            str(baseline_run),
            "--out",
            str(out),
            "--resume",
            "--judge",
            "llm:m@http://127.0.0.1:9/v1",
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err
    assert status == 2 and "another writer or judge" in err
