from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from clarify_bench.cli import main
from clarify_bench.harness.evaluate import BenchConfig, evaluate, parse_seeds, summarize_run
from clarify_bench.harness.runfiles import RunFilesError, read_results
from clarify_bench.harness.summary import METRICS, run_problems, summarize
from helpers import KILLED_RUN_AGENTS, kill_bench_mid_run

BASELINES = ("passive", "generic", "random", "oracle")


def quiet(**kwargs) -> BenchConfig:
    return BenchConfig(plots=False, progress=False, **kwargs)


def rows_of(folder: Path) -> list[dict]:
    lines = (folder / "results.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]  # every line must parse


def comparable(rows: list[dict]) -> list[dict]:
    out = [{k: v for k, v in r.items() if k != "elapsed_s"} for r in rows]
    return sorted(out, key=lambda r: (r["agent"], r["task_id"], r["seed"]))


@pytest.fixture(scope="module")
def baseline_run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("bench") / "run"
    evaluate(quiet(agents=BASELINES, seeds=(0, 1, 2), out=str(folder)))
    return folder


def test_every_episode_once_with_the_glossary_metrics(baseline_run):
    rows = rows_of(baseline_run)
    keys = [(r["agent"], r["task_id"], r["seed"]) for r in rows]
    assert len(keys) == len(set(keys)) == 4 * 12 * 3
    for r in rows:
        assert set(METRICS) <= set(r)
        n = r["env/questions"]
        assert len(r["dialogue"]) == len(r["rewards"]) == len(r["cited_ids"]) == n
        assert r["outline"].startswith("# Outline")
        # the default reward pays new hidden sentences: the return is the hidden coverage
        assert math.isclose(sum(r["rewards"]), r["env/hidden_coverage"], abs_tol=1e-9)
        assert sum(len(x) for x in r["new_hidden_ids"]) == r["env/new_info"]
    meta = json.loads((baseline_run / "metadata.json").read_text())
    assert meta["env"]["id"] == "ProactiveGather-v1" and meta["env"]["version"] == 1
    assert meta["settings"]["seeds"] == [0, 1, 2] and meta["settings"]["split"] == "test"
    assert meta["agents"]["oracle"]["privileged"] is True
    assert {"date", "git_commit", "packages", "task_source"} <= set(meta)
    assert meta["packages"]["gymnasium"]


def test_ordering_oracle_generic_random_passive(baseline_run):
    rows = rows_of(baseline_run)
    for metric in ("env/new_info", "eval/checklist_score"):
        mean = {a: sum(r[metric] for r in rows if r["agent"] == a) / 36 for a in BASELINES}
        assert mean["oracle"] > mean["generic"] > mean["random"] >= mean["passive"], (metric, mean)


def test_summary_reads_back_what_was_written(baseline_run):
    table = summarize_run(baseline_run, plots=True, echo=False)
    rows = read_results(baseline_run / "results.jsonl")
    saved = (baseline_run / "summary.md").read_text(encoding="utf-8")
    assert table in saved
    for agent in BASELINES:
        mine = [r for r in rows if r["agent"] == agent]
        by_task: dict[str, list[float]] = {}
        for r in mine:
            by_task.setdefault(r["task_id"], []).append(r["eval/checklist_score"])
        expected = sum(sum(v) / len(v) for v in by_task.values()) / len(by_task)
        line = next(x for x in saved.splitlines() if x.startswith(f"| {agent} |"))
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[1] == "36" and cells[2] == "12"
        assert float(cells[-1].split(" ± ")[0]) == pytest.approx(expected, abs=5e-4)
    for name in ("scores.png", "coverage_by_question.png"):
        assert (baseline_run / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = {s.agent: s for s in summarize(rows)}
    assert summary["passive"].metrics["env/questions"] == (0.0, 0.0)


def test_threads_give_the_same_rows_as_one_at_a_time(tmp_path):
    settings = {"agents": ("random", "oracle"), "seeds": (0, 1)}
    evaluate(quiet(out=str(tmp_path / "a"), **settings))
    evaluate(quiet(out=str(tmp_path / "b"), concurrency=3, **settings))
    assert comparable(rows_of(tmp_path / "a")) == comparable(rows_of(tmp_path / "b"))


def test_resume_after_the_run_is_killed(tmp_path):
    out = tmp_path / "run"
    kill_bench_mid_run(out)
    config = quiet(agents=KILLED_RUN_AGENTS, seeds=(0, 1, 2, 3), out=str(out), resume=True)
    evaluate(config)
    rows = rows_of(out)
    keys = [(r["agent"], r["task_id"], r["seed"]) for r in rows]
    assert len(keys) == len(set(keys)) == 2 * 12 * 4
    meta = json.loads((out / "metadata.json").read_text())
    assert len(meta["resumed"]) == 1 and meta["finished"]

    evaluate(config)  # resuming a finished run adds nothing
    assert len(rows_of(out)) == 96


def test_resume_refuses_other_settings_and_a_new_run_refuses_an_old_folder(tmp_path):
    out = str(tmp_path / "run")
    evaluate(quiet(agents=("passive",), out=out, episodes=2))
    with pytest.raises(RunFilesError, match=r"different settings:\n  episodes: 2 .*, 3 now"):
        evaluate(quiet(agents=("passive",), out=out, episodes=3, resume=True))
    with pytest.raises(RunFilesError, match="already holds a run; pass --resume"):
        evaluate(quiet(agents=("passive",), out=out, episodes=2))
    with pytest.raises(RunFilesError, match=r"has no metadata\.json"):
        evaluate(quiet(agents=("passive",), out=str(tmp_path / "none"), resume=True))
    assert len(rows_of(Path(out))) == 2


def test_a_failing_episode_is_left_out_and_retried_on_resume(tmp_path):
    out = str(tmp_path / "run")
    config = quiet(agents=("py:bench_agents:FailsOnLaw",), out=out)
    assert "1 episode(s) failed and were not recorded" in run_problems(evaluate(config))
    tasks = {r["task_id"] for r in rows_of(Path(out))}
    assert len(tasks) == 11 and "cg-law-03" not in tasks
    evaluate(BenchConfig(**{**config.__dict__, "resume": True}))  # retried, fails again
    assert len(rows_of(Path(out))) == 11
    gave_up = evaluate(quiet(agents=("py:bench_agents:AlwaysFails",), out=str(tmp_path / "b")))
    assert "failed its first 5 episodes; giving up" in run_problems(gave_up)
    assert not (gave_up / "summary.md").exists()  # nothing finished, nothing to summarise


def test_a_resumed_run_summarises_what_the_folder_holds(tmp_path):
    """The earlier run's failed episode, rerun by --resume, is no longer reported: not in
    summary.md, metadata.json or the exit status (it used to stay in summary.md)."""
    from bench_agents import FailsOnLawOnce

    FailsOnLawOnce.failed.clear()
    out = tmp_path / "run"
    config = quiet(agents=("py:bench_agents:FailsOnLawOnce",), out=str(out))
    evaluate(config)
    assert "FailsOnLawOnce: 0 errored of 11, 1 failed." in (out / "summary.md").read_text()
    evaluate(BenchConfig(**{**config.__dict__, "resume": True}))
    summary = (out / "summary.md").read_text()
    assert "12 episodes in" in summary and "FailsOnLawOnce: 0 errored of 12.\n" in summary
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["failed_episodes"] == {} and meta["finished"] and run_problems(out) is None


def test_batched_local_model_runs_in_lock_step(tmp_path):
    pytest.importorskip("transformers")
    from clarify_agents.models import tiny_checkpoint

    model = tiny_checkpoint()
    settings = {
        "agents": (f"hf:{model}",),
        "episodes": 3,
        "env_kwargs": {"max_questions": 2},
        "agent_kwargs": {"hf": {"max_new_tokens": 4}},
    }
    evaluate(quiet(out=str(tmp_path / "a"), batch_size=2, **settings))
    evaluate(quiet(out=str(tmp_path / "b"), batch_size=1, **settings))
    rows = rows_of(tmp_path / "a")
    assert len(rows) == 3 and all(r["agent"] == f"hf:{model}" for r in rows)
    assert comparable(rows) == comparable(rows_of(tmp_path / "b"))
    meta = json.loads((tmp_path / "a" / "metadata.json").read_text())
    assert meta["agents"][f"hf:{model}"]["batched"] is True


def test_cli_bench_summarize_and_errors(tmp_path, capsys):
    out = str(tmp_path / "run")
    argv = ["bench", "--agents", "passive,oracle", "--episodes", "3", "--out", out]
    assert main([*argv, "--no-progress", "--no-plots"]) == 0
    printed = capsys.readouterr().out
    assert "| oracle | 3 | 3 |" in printed and "| passive | 3 | 3 |" in printed
    assert main(["bench", "--summarize", out, "--no-plots"]) == 0
    assert "| oracle | 3 | 3 |" in capsys.readouterr().out
    assert main(["bench", "--agents", "passive,gpt-9", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "unknown agent 'gpt-9'" in err and "oracle" in err and "hf:<model>" in err
    assert not (tmp_path / "x").exists()


def test_parse_seeds():
    assert parse_seeds("3") == (3,)
    assert parse_seeds("0-2, 2, 5") == (0, 1, 2, 5)
    with pytest.raises(ValueError):
        parse_seeds("4-1")


def test_chat_agent_benchmarks_against_the_fake_server(tmp_path, fake_llm):
    """`--agents chat:<model>` through the registry, concurrently, against the fake endpoint."""
    folder = tmp_path / "chat"
    evaluate(
        quiet(agents=("chat:fake-model",), split="test", seeds=(0,), concurrency=4, out=str(folder))
    )
    rows = rows_of(folder)
    assert len(rows) == 12 and {r["agent"] for r in rows} == {"chat:fake-model"}
    assert all(r["env/questions"] >= 1 for r in rows)
    assert sum(r["env/new_info"] for r in rows) > 0
    assert fake_llm.stats.requests >= 12
