from __future__ import annotations

import json
import socket
from collections import Counter
from pathlib import Path

import pytest
from conftest import dolomites_row, write_jsonl

import clarify_gym as cg
from clarify_gym.errors import DatasetUnavailableError, TaskFormatError
from clarify_gym.masking import parse_bullets, parse_input_sections


def test_examples_file_nested_rows(dolomites_files):
    tasks = cg.load_tasks(dolomites_files["dev"])
    assert [t.id for t in tasks] == ["d1", "d2"]
    t = tasks[0]
    assert (t.field, t.split, t.name) == ("Law", "dev", "Case brief")
    assert t.objective == "Write a case brief for a junior associate."
    assert t.example_output == "Reference output."
    assert t.example_input.startswith("**Input Sections**")


def test_test_file_has_no_reference_and_split_from_name(dolomites_files):
    (t,) = cg.load_tasks(dolomites_files["test"])
    assert t.example_output is None and t.split == "test"


def test_hf_mirror_file(dolomites_files):
    (t,) = cg.load_tasks(dolomites_files["hf"])
    assert t.id == "h1" and t.split == "dev"


def test_tasks_file_flat_rows_without_example_input(dolomites_files):
    tasks = cg.load_tasks(dolomites_files["tasks"])
    assert [t.id for t in tasks] == ["a", "b"]
    assert tasks[0].field == "Biology" and tasks[0].example_input == ""
    masked = cg.mask(tasks[0])  # a template with no example input still masks
    assert masked.hidden_ids and not any(s.field == "example_input" for s in masked.sentences)


def test_zip_archive_reads_every_member_with_splits(dolomites_files):
    tasks = cg.load_tasks(dolomites_files["zip"])
    assert Counter(t.split for t in tasks) == {"dev": 2, "test": 1}
    assert [t.id for t in cg.load_tasks(dolomites_files["zip"], split="test")] == ["t1"]


def test_list_of_tasks_and_split_filter():
    tasks = cg.load_tasks("sample")
    assert cg.load_tasks(tasks, split="train") == [t for t in tasks if t.split == "train"]
    with pytest.raises(ValueError, match="no task of split 'dev'"):
        cg.load_tasks("sample", split="dev")
    with pytest.raises(TypeError, match=r"must hold clarify_gym\.Task"):
        cg.load_tasks(["not a task"])  # type: ignore[list-item]


def test_malformed_line_names_file_and_line(tmp_path: Path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(dolomites_row("ok")) + "\n{not json\n", encoding="utf-8")
    with pytest.raises(TaskFormatError, match=r"bad\.jsonl, line 2: malformed JSON") as info:
        cg.load_tasks(path)
    assert info.value.line == 2 and info.value.path == str(path)


def test_missing_key_names_file_line_and_key(tmp_path: Path):
    row = dolomites_row("x")
    del row["task"]["task_output"]
    path = write_jsonl(tmp_path / "missing.jsonl", [dolomites_row("y"), row])
    with pytest.raises(TaskFormatError, match=r"line 2, key 'task_output': missing required key"):
        cg.load_tasks(path)


def test_empty_objective_is_an_error(tmp_path: Path):
    row = dolomites_row("x")
    row["task"]["task_objective"] = "   "
    path = write_jsonl(tmp_path / "empty.jsonl", [row])
    with pytest.raises(
        TaskFormatError, match=r"line 1, key 'task_objective': the task objective is empty"
    ):
        cg.load_tasks(path)


def test_non_object_line_and_wrong_type(tmp_path: Path):
    with pytest.raises(TaskFormatError, match="line 1: each line must be a JSON object"):
        cg.load_tasks(write_jsonl(tmp_path / "list.jsonl", [[1, 2]]))
    row = dolomites_row("x")
    row["task"]["task_procedure"] = 42
    with pytest.raises(TaskFormatError, match="key 'task_procedure': expected a string, got int"):
        cg.load_tasks(write_jsonl(tmp_path / "type.jsonl", [row]))


def test_duplicate_ids_and_missing_file(tmp_path: Path):
    path = write_jsonl(tmp_path / "dup.jsonl", [dolomites_row("same"), dolomites_row("same")])
    with pytest.raises(ValueError, match="share the id 'same'"):
        cg.load_tasks(path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        cg.load_tasks(tmp_path / "nowhere.jsonl")


def test_hf_source_fails_fast_offline(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("no network in this test")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with pytest.raises(DatasetUnavailableError, match="pass the path instead"):
        cg.load_tasks("hf:cmalaviya/dolomites")


# ---- the bundled sample -------------------------------------------------------------------

SAMPLE = cg.load_tasks("sample")


def test_sample_size_fields_and_split():
    assert len(SAMPLE) >= 30
    fields = Counter(t.field for t in SAMPLE)
    assert len(fields) >= 12
    splits = Counter(t.split for t in SAMPLE)
    assert set(splits) == {"train", "test"}
    assert 1.5 <= splits["train"] / splits["test"] <= 2.5  # about 2:1


@pytest.mark.parametrize("task", SAMPLE, ids=lambda t: t.id)
def test_sample_task_shape(task: cg.Task):
    from clarify_gym.masking import split_sentences

    assert len(split_sentences(task.objective)) == 1
    assert 4 <= len(split_sentences(task.procedure)) <= 7
    inputs, outputs = parse_bullets(task.input_spec), parse_bullets(task.output_spec)
    assert all(name for name, _ in inputs + outputs), "every bullet is '* Section: description'"
    assert len(outputs) >= 4
    assert 1 <= len(split_sentences(task.notes)) <= 3
    assert task.example_input.startswith("**Input Sections**")
    sections = [name for name, _ in parse_input_sections(task.example_input)]
    assert sections == [name for name, _ in inputs], "example input blocks follow the input spec"
