"""Every bad command-line input ends in one line, ``clarify-gym <cmd>: error: ...``, and exit 2,
with no traceback and no task text; a failed start-up never blocks the corrected command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from clarify_bench.cli import main
from clarify_bench.harness.evaluate import BenchConfig, evaluate
from conftest import write_jsonl

import clarify_gym as cg

SAMPLE_ROW = json.loads(
    (Path(cg.__file__).parent / "data" / "sample_tasks.jsonl").read_text("utf-8").splitlines()[0]
)
#: Sentences of the bundled tasks' hidden and input text: none may appear in an error.
TASK_TEXT = [
    chunk
    for task in cg.load_tasks("sample")
    for text in (task.procedure, task.output_spec, task.notes, task.example_input)
    for chunk in text.split(". ")
    if len(chunk) > 30
]


def _files(folder: Path) -> dict[str, str]:
    nothing_hidden = json.loads(json.dumps(SAMPLE_ROW))
    for key in ("task_procedure", "task_output", "task_notes"):
        nothing_hidden["task"][key] = ""
    (folder / "latin1.jsonl").write_bytes(b'{"task": "caf\xe9"}\n')
    (folder / "a_dir").mkdir()
    return {
        "dup": str(write_jsonl(folder / "dup.jsonl", [SAMPLE_ROW, SAMPLE_ROW])),
        "nothing_hidden": str(write_jsonl(folder / "nothing_hidden.jsonl", [nothing_hidden])),
        "latin1": str(folder / "latin1.jsonl"),
        "dir": str(folder / "a_dir"),
    }


#: case -> (arguments after the command, what the message must say); {name} is a file of _files
CASES: dict[str, tuple[list[str], str]] = {
    "duplicate-task-ids": (["bench", "--tasks", "{dup}"], "share the id 'cg-medicine-01'"),
    "nothing-hidden": (["bench", "--tasks", "{nothing_hidden}", "--split", "all"], "hides nothing"),
    "bad-utf8": (["bench", "--tasks", "{latin1}"], "is not UTF-8 text"),
    "directory-as-tasks": (["bench", "--tasks", "{dir}"], "is a directory"),
    "duplicate-agents": (["bench", "--agents", "generic,passive,generic"], "more than once"),
    "episodes-0": (["bench", "--episodes", "0"], "--episodes must be >= 1"),
    "unknown-split": (["bench", "--split", "validation"], "no task of split 'validation'"),
    "unknown-env-id": (["bench", "--env-id", "ProactiveGather-v7"], "unknown env id"),
    "env-kwargs-typo": (
        ["bench", "--env-kwargs", '{"max_questionz": 3}'],
        "unexpected keyword argument 'max_questionz'",
    ),
    "env-kwargs-bad-value": (["bench", "--env-kwargs", '{"max_questions": 0}'], "must be >= 1"),
    "unknown-py-agent": (["bench", "--agents", "py:bench_agents:NoSuchAgent"], "no attribute"),
    "resume-without-out": (["bench", "--resume"], "--resume needs --out DIR"),
    "tasks-directory": (["tasks", "list", "--tasks", "{dir}"], "is a directory"),
    "tasks-unknown-split": (["tasks", "list", "--split", "dev"], "no task of split 'dev'"),
    "tasks-unknown-id": (["tasks", "show", "no-such-task"], "no task 'no-such-task'"),
    "play-bad-utf8": (["play", "--tasks", "{latin1}"], "is not UTF-8 text"),
    "play-env-kwargs-typo": (["play", "--env-kwargs", '{"max_questionz": 3}'], "max_questionz"),
    "play-unknown-env-id": (["play", "--env-id", "Nope-v0"], "unknown env id 'Nope-v0'"),
    "train-no-preset": (["train"], "give --preset NAME"),
    "train-question-cost-nan": (
        ["train", "--preset", "tiny", "--question-cost", "nan"],
        "question_cost must be a finite number >= 0, got nan",
    ),
    "train-checklist-weight-inf": (
        ["train", "--preset", "tiny", "--checklist-weight", "inf"],
        "checklist_weight must be a finite number >= 0, got inf",
    ),
    "bench-question-cost-nan": (
        ["bench", "--env-kwargs", '{"question_cost": NaN}'],
        "question_cost must be a finite number >= 0, got nan",
    ),
    "bench-sentence-weight-negative": (
        ["bench", "--env-kwargs", '{"sentence_weights": {"notes": -1}}'],
        "sentence_weights['notes'] must be a finite number >= 0, got -1",
    ),
}
#: argparse's own errors (usage, then one error line)
ARGPARSE_CASES: dict[str, tuple[list[str], str]] = {
    "negative-seed": (["bench", "--seeds=-3"], "argument --seeds: seeds must be >= 0, got -3"),
    "absurd-seed-range": (["bench", "--seeds", "0-99999999"], "lists 100000000 seeds"),
    "seeds-not-a-number": (["bench", "--seeds", "a-b"], "is not a seed list"),
}


def _argv(case: tuple[list[str], str], folder: Path) -> list[str]:
    files = _files(folder)
    argv = [files.get(a.strip("{}"), a) for a in case[0]]
    if argv[0] == "bench" and "--resume" not in argv:
        argv += ["--out", str(folder / "run"), "--no-plots", "--no-progress"]
    return argv


def _run(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # argparse
        return int(exc.code)


@pytest.mark.parametrize("case", sorted(CASES), ids=str)
def test_bad_input_is_one_line_with_exit_status_2(case, tmp_path, capsys):
    argv = _argv(CASES[case], tmp_path)
    assert _run(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith(f"clarify-gym {argv[0]}: error: ") and CASES[case][1] in err, err
    assert not any(chunk in err for chunk in TASK_TEXT), "an error printed task text"
    assert not (tmp_path / "run").exists(), "checked before the run folder is written"


@pytest.mark.parametrize("case", sorted(ARGPARSE_CASES), ids=str)
def test_bad_seeds_get_argparses_own_message(case, tmp_path, capsys):
    argv = _argv(ARGPARSE_CASES[case], tmp_path)
    assert _run(argv) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("clarify-gym bench: error: ") and ARGPARSE_CASES[case][1] in last


@pytest.mark.parametrize("resume", [False, True], ids=["fresh", "resume"])
def test_a_run_that_failed_at_start_up_does_not_block_the_corrected_command(resume, tmp_path):
    out = tmp_path / "run"
    quiet = {"plots": False, "progress": False, "out": str(out), "episodes": 5}
    evaluate(BenchConfig(agents=("py:bench_agents:AlwaysFails",), **quiet))  # gives up
    assert (out / "metadata.json").exists() and not (out / "results.jsonl").read_text()
    evaluate(BenchConfig(agents=("generic",), resume=resume, **quiet))
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["settings"]["agents"] == ["generic"]
    assert len((out / "results.jsonl").read_text().splitlines()) == 5
