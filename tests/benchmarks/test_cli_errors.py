"""Every bad command-line input ends in one line, ``clarify-gym <cmd>: error: ...``, and exit 2,
before any work starts: no traceback, no task text, and nothing written (so nothing can block the
corrected command)."""

from __future__ import annotations

import json
import re
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
COMMANDS = ("tasks", "play", "bench", "train", "train-sb3", "view", "rescore")


def _files(folder: Path) -> dict[str, str]:
    """The files the cases name as ``{name}``; ``out`` is a folder no command may create."""
    nothing_hidden = json.loads(json.dumps(SAMPLE_ROW))
    for key in ("task_procedure", "task_output", "task_notes"):
        nothing_hidden["task"][key] = ""
    (folder / "latin1.jsonl").write_bytes(b'{"task": "caf\xe9"}\n')
    (folder / "a_dir").mkdir()
    (folder / "a_file.txt").write_text("not a folder\n")
    return {
        "dup": str(write_jsonl(folder / "dup.jsonl", [SAMPLE_ROW, SAMPLE_ROW])),
        "nothing_hidden": str(write_jsonl(folder / "nothing_hidden.jsonl", [nothing_hidden])),
        "latin1": str(folder / "latin1.jsonl"),
        "dir": str(folder / "a_dir"),
        "file": str(folder / "a_file.txt"),
        "missing": str(folder / "no" / "such" / "file.jsonl"),
        "missing_dir": str(folder / "no" / "such" / "folder"),
        "out": str(folder / "out"),
    }


#: case -> (arguments, what the one error line must say); {name} is a path of _files.
#: `bench` cases get `--out {out}` unless they name --out or --resume.
CASES: dict[str, tuple[list[str], str]] = {
    # the command itself
    "no-command": ([], "give a command"),
    "unknown-command": (["nope"], "invalid choice: 'nope'"),
    # tasks
    "tasks-directory": (["tasks", "list", "--tasks", "{dir}"], "is a directory"),
    "tasks-missing-file": (["tasks", "list", "--tasks", "{missing}"], "does not exist"),
    "tasks-unknown-split": (["tasks", "list", "--split", "dev"], "no task of split 'dev'"),
    "tasks-unknown-id": (["tasks", "show", "no-such-task"], "no task 'no-such-task'"),
    "tasks-nothing-hidden": (
        ["tasks", "list", "--tasks", "{nothing_hidden}", "--split", "all"],
        "hides nothing",
    ),
    "tasks-no-action": (["tasks"], "required: ACTION"),
    "tasks-unknown-action": (["tasks", "delete"], "invalid choice: 'delete'"),
    "tasks-show-without-id": (["tasks", "show"], "required: task_id"),
    "tasks-unknown-flag": (["tasks", "list", "--bogus"], "unrecognized arguments: --bogus"),
    # play
    "play-bad-utf8": (["play", "--tasks", "{latin1}"], "is not UTF-8 text"),
    "play-env-kwargs-typo": (["play", "--env-kwargs", '{"max_questionz": 3}'], "max_questionz"),
    "play-env-kwargs-not-an-object": (["play", "--env-kwargs", "[1]"], "expected a JSON object"),
    "play-unknown-env-id": (["play", "--env-id", "Nope-v0"], "unknown env id 'Nope-v0'"),
    "play-bank-env": (["play", "--env-id", "ProactiveGatherBank-v1"], "not text"),
    "play-unknown-task": (["play", "--task", "nope"], "no task 'nope' in sample"),
    "play-unknown-split": (["play", "--split", "nope"], "no task of split 'nope'"),
    "play-negative-seed": (["play", "--seed", "-1"], "argument --seed: must be >= 0, got -1"),
    "play-unknown-role": (["play", "--as", "nobody"], "invalid choice: 'nobody'"),
    "play-unknown-agent": (["play", "--as", "user", "--agent", "nope"], "unknown agent 'nope'"),
    "play-not-an-agent": (
        ["play", "--as", "user", "--agent", "py:json:loads"],
        "agent 'py:json:loads' cannot be built",
    ),
    # bench: tasks, env, settings
    "duplicate-task-ids": (["bench", "--tasks", "{dup}"], "share the id 'cg-medicine-01'"),
    "nothing-hidden": (["bench", "--tasks", "{nothing_hidden}", "--split", "all"], "hides nothing"),
    "bad-utf8": (["bench", "--tasks", "{latin1}"], "is not UTF-8 text"),
    "directory-as-tasks": (["bench", "--tasks", "{dir}"], "is a directory"),
    "unknown-split": (["bench", "--split", "validation"], "no task of split 'validation'"),
    "unknown-env-id": (["bench", "--env-id", "ProactiveGather-v7"], "unknown env id"),
    "bank-env": (["bench", "--env-id", "ProactiveGatherBank-v1"], "not text"),
    "env-kwargs-typo": (
        ["bench", "--env-kwargs", '{"max_questionz": 3}'],
        "unexpected keyword argument 'max_questionz'",
    ),
    "env-kwargs-bad-value": (["bench", "--env-kwargs", '{"max_questions": 0}'], "must be >= 1"),
    "question-cost-nan": (
        ["bench", "--env-kwargs", '{"question_cost": NaN}'],
        "question_cost must be a finite number >= 0, got nan",
    ),
    "sentence-weight-negative": (
        ["bench", "--env-kwargs", '{"sentence_weights": {"notes": -1}}'],
        "sentence_weights['notes'] must be a finite number >= 0, got -1",
    ),
    "env-kwargs-not-json": (["bench", "--env-kwargs", "{bad"], "argument --env-kwargs: not JSON"),
    "episodes-0": (["bench", "--episodes", "0"], "--episodes must be >= 1"),
    "episodes-not-a-number": (["bench", "--episodes", "x"], "invalid int value: 'x'"),
    "negative-seed": (["bench", "--seeds=-3"], "argument --seeds: seeds must be >= 0, got -3"),
    "absurd-seed-range": (["bench", "--seeds", "0-99999999"], "lists 100000000 seeds"),
    "seeds-not-a-number": (["bench", "--seeds", "a-b"], "is not a seed list"),
    "threads-negative": (["bench", "--threads", "-2"], "--threads must be >= 1, got -2"),
    "concurrency-0": (["bench", "--concurrency", "0"], "--concurrency and --batch-size"),
    "ray-actors-0": (["bench", "--ray-actors", "0"], "argument --ray-actors: must be >= 1"),
    "bench-unknown-flag": (["bench", "--bogus"], "unrecognized arguments: --bogus"),
    # bench: agents, all checked before any episode of the first one runs
    "duplicate-agents": (["bench", "--agents", "generic,passive,generic"], "more than once"),
    "no-agents": (["bench", "--agents", ","], "give at least one agent"),
    "unknown-agent": (["bench", "--agents", "generic,gpt-9"], "unknown agent 'gpt-9'"),
    "unknown-py-agent": (["bench", "--agents", "py:bench_agents:NoSuchAgent"], "no attribute"),
    "not-an-agent-after-a-good-one": (
        ["bench", "--agents", "generic,py:json:loads"],
        "agent 'py:json:loads' cannot be built",
    ),
    "not-an-agent-class": (["bench", "--agents", "py:pathlib:Path"], "is not a"),
    "missing-model-folder": (["bench", "--agents", "hf:{missing_dir}"], "does not exist"),
    "folder-without-adapter": (
        ["bench", "--agents", "hf:smollm2-135m@{dir}"],
        "has no adapter_config.json",
    ),
    "agent-kwargs-bad-value": (
        ["bench", "--agents", "smollm2", "--agent-kwargs", '{"smollm2": {"max_new_tokens": 0}}'],
        "max_new_tokens must be >= 1",
    ),
    "agent-kwargs-typo": (
        ["bench", "--agents", "generic", "--agent-kwargs", '{"generic": {"nope": 1}}'],
        "unexpected keyword argument 'nope'",
    ),
    "agent-kwargs-for-no-agent": (
        ["bench", "--agents", "generic", "--agent-kwargs", '{"hf": {}}'],
        "neither an agent of --agents nor its kind",
    ),
    "agent-kwargs-not-an-object": (
        ["bench", "--agents", "generic", "--agent-kwargs", '{"generic": 3}'],
        "must be a JSON object",
    ),
    # bench: the run folder
    "out-is-a-file": (["bench", "--out", "{file}"], "is a file, not a folder"),
    "out-under-a-file": (["bench", "--out", "{file}/run"], "no folder can be made under it"),
    "out-unwritable": (["bench", "--out", "/proc/clarify-gym-test/run"], "cannot write in /proc"),
    "resume-without-out": (["bench", "--resume"], "--resume needs --out DIR"),
    "resume-a-missing-run": (["bench", "--resume", "--out", "{out}"], "has no metadata.json"),
    "summarize-a-missing-run": (["bench", "--summarize", "{missing_dir}"], "no such run folder"),
    # train: all checked before the model loads
    "train-no-preset": (["train"], "give --preset NAME"),
    "train-question-cost-nan": (
        ["train", "--preset", "tiny", "--question-cost", "nan"],
        "question_cost must be a finite number >= 0, got nan",
    ),
    "train-checklist-weight-inf": (
        ["train", "--preset", "tiny", "--checklist-weight", "inf"],
        "checklist_weight must be a finite number >= 0, got inf",
    ),
    "train-unknown-preset": (["train", "--preset", "gpt-9"], "invalid choice: 'gpt-9'"),
    "train-unknown-env-id": (
        ["train", "--preset", "tiny", "--env-id", "NoSuch-v0"],
        "unknown env id 'NoSuch-v0'",
    ),
    "train-negative-threads": (
        ["train", "--preset", "tiny", "--threads", "-2"],
        "argument --threads: must be >= 1, got -2",
    ),
    "train-lora-r-0": (["train", "--preset", "tiny", "--lora-r", "0"], "lora_r must be >= 1"),
    "train-unknown-dtype": (["train", "--preset", "tiny", "--dtype", "int3"], "dtype must be one"),
    "train-batch-geometry": (
        ["train", "--preset", "tiny", "--episodes-per-batch", "3"],
        "must be a multiple of minibatch_size",
    ),
    "train-unknown-split": (["train", "--preset", "tiny", "--split", "nope"], "split 'nope'"),
    "train-missing-model": (
        ["train", "--preset", "tiny", "--model", "{missing_dir}"],
        "does not exist",
    ),
    "train-output-dir-is-a-file": (
        ["train", "--preset", "tiny", "--output-dir", "{file}"],
        "--output-dir {file} is a file",
    ),
    "train-resume-a-missing-run": (["train", "--resume", "{missing_dir}"], "no such folder"),
    "train-resume-without-checkpoint": (["train", "--resume", "{dir}"], "no checkpoint yet"),
    "train-unknown-flag": (["train", "--preset", "tiny", "--bogus"], "unrecognized arguments"),
    # train-sb3: all checked before training
    "sb3-unknown-algo": (["train-sb3", "--algos", "ppo", "sac"], "invalid choice: 'sac'"),
    "sb3-torch-threads-0": (["train-sb3", "--torch-threads", "0"], "--torch-threads 0: must be"),
    "sb3-timesteps-0": (["train-sb3", "--timesteps", "0"], "--timesteps 0: must be >= 1"),
    "sb3-negative-seed": (["train-sb3", "--seeds", "0", "-1"], "--seeds must be >= 0"),
    "sb3-out-is-a-file": (["train-sb3", "--out", "{file}"], "is a file, not a folder"),
    "sb3-unknown-user": (["train-sb3", "--user", "nope", "--out", "{out}"], "unknown user 'nope'"),
    "sb3-unknown-features": (
        ["train-sb3", "--text-features", "words", "--out", "{out}"],
        "text_features must be one of",
    ),
    "sb3-unknown-split": (
        ["train-sb3", "--test-split", "nope", "--out", "{out}"],
        "no task of split 'nope'",
    ),
    "sb3-missing-tasks": (["train-sb3", "--tasks", "{missing}", "--out", "{out}"], "not exist"),
    # view and rescore: checked before anything is read or written
    "view-no-run": (["view"], "the following arguments are required: RUN_DIR"),
    "view-missing-run": (["view", "{missing_dir}"], "{missing_dir} is not a folder"),
    "view-not-a-run": (["view", "{dir}"], "has no results.jsonl"),
    "view-file-as-run": (["view", "{file}"], "is not a folder"),
    "view-bad-port": (["view", "{dir}", "--serve", "0"], "--serve takes a port from 1 to 65535"),
    "rescore-no-out": (["rescore", "{dir}"], "give the new run folder with --out"),
    "rescore-not-a-run": (["rescore", "{dir}", "--out", "{out}"], "has no results.jsonl"),
    "rescore-bad-judge": (
        ["rescore", "{dir}", "--out", "{out}", "--judge", "gpt"],
        "is not a judge",
    ),
    "rescore-bad-concurrency": (
        ["rescore", "{dir}", "--out", "{out}", "--concurrency", "0"],
        "--concurrency must be >= 1",
    ),
}
#: Cases that load a (tiny) model before they can tell: the model loader may draw a progress
#: bar on stderr before the one error line.
LOADS_A_MODEL: dict[str, tuple[list[str], str]] = {
    "train-unknown-lora-target": (
        ["train", "--preset", "tiny", "--lora-targets", "no_such_module", "--output-dir", "{out}"],
        "Target modules {'no_such_module'} not found",
    ),
}


def _argv(args: list[str], files: dict[str, str]) -> list[str]:
    argv = [re.sub(r"\{(\w+)\}", lambda m: files[m.group(1)], a) for a in args]
    if argv[:1] == ["bench"] and "--out" not in argv and "--resume" not in argv:
        argv += ["--out", files["out"]]
    if argv[:1] == ["bench"]:
        argv += ["--no-plots", "--no-progress"]
    return argv


def _run(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # argparse
        return int(exc.code or 0)


def _check(case: tuple[list[str], str], folder, capsys, monkeypatch, *, one_line: bool) -> None:
    monkeypatch.chdir(folder)  # a default output folder would land here too
    files = _files(folder)
    argv = _argv(case[0], files)
    before = sorted(folder.rglob("*"))
    assert _run(argv) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    command = argv[0] if argv and argv[0] in COMMANDS else ""
    prefix = re.compile(
        rf"^clarify-gym( {re.escape(command)}( \w+)?)?: error: "
        if command
        else "^clarify-gym: error: "
    )
    errors = [line for line in lines if ": error: " in line]
    assert len(errors) == 1 and lines[-1] == errors[0], err
    if one_line:
        assert len(lines) == 1, err
    assert prefix.match(errors[0]), errors[0]
    expected = re.sub(r"\{(\w+)\}", lambda m: files[m.group(1)], case[1])
    assert expected in errors[0], errors[0]
    assert "Traceback" not in err
    assert not any(chunk in err for chunk in TASK_TEXT), "an error printed task text"
    assert sorted(folder.rglob("*")) == before, "a failed command wrote files"


@pytest.mark.parametrize("case", sorted(CASES), ids=str)
def test_bad_input_is_one_line_with_exit_status_2_and_writes_nothing(
    case, tmp_path, capsys, monkeypatch
):
    _check(CASES[case], tmp_path, capsys, monkeypatch, one_line=True)


@pytest.mark.parametrize("case", sorted(LOADS_A_MODEL), ids=str)
def test_bad_input_found_once_a_model_loaded_is_still_one_error_line(
    case, tmp_path, capsys, monkeypatch
):
    _check(LOADS_A_MODEL[case], tmp_path, capsys, monkeypatch, one_line=False)


def test_the_table_covers_every_command():
    cases = [args for args, _ in (*CASES.values(), *LOADS_A_MODEL.values())]
    assert len(cases) >= 40
    assert {args[0] for args in cases if args} >= set(COMMANDS)


def test_a_bad_agent_after_a_good_one_blocks_nothing(tmp_path, capsys):
    out = tmp_path / "run"
    base = ["bench", "--out", str(out), "--episodes", "2", "--no-plots", "--no-progress"]
    assert main([*base, "--agents", "generic,py:json:loads"]) == 2
    assert not out.exists()  # refused before the run folder or any episode
    capsys.readouterr()
    assert main([*base, "--agents", "generic,passive"]) == 0
    assert main([*base, "--agents", "generic,passive", "--resume"]) == 0
    rows = (out / "results.jsonl").read_text().splitlines()
    assert sorted(json.loads(r)["agent"] for r in rows) == ["generic"] * 2 + ["passive"] * 2


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
