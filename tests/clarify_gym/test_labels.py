"""The gold-label loader."""

from __future__ import annotations

import json

import pytest

from clarify_gym.labels import LabelFormatError, bundled_labels, load_labels
from clarify_gym.masking import mask
from clarify_gym.tasks import load_tasks

TASKS = load_tasks("sample")
MASKED = mask(TASKS[0])
HIDDEN = MASKED.hidden_sentences[0]


def _write(tmp_path, *rows):
    path = tmp_path / "labels.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


def _row(**over):
    row = {
        "task_id": MASKED.task.id,
        "question": "What do you do first?",
        "type": "targeted",
        "answer_kind": "answer",
        "cited": [{"id": HIDDEN.id, "text": HIDDEN.text}],
    }
    return {**row, **over}


def test_text_wins_over_a_stale_id(tmp_path):
    path = _write(tmp_path, _row(cited=[{"id": 999, "text": HIDDEN.text}]))
    (label,) = load_labels(path, TASKS)
    assert label.cited_ids == (HIDDEN.id,) and label.hidden_ids(MASKED) == {HIDDEN.id}


def test_a_text_that_matches_no_sentence_names_the_file_and_line(tmp_path):
    path = _write(tmp_path, _row(), _row(cited=[{"id": HIDDEN.id, "text": "Not in the task."}]))
    with pytest.raises(LabelFormatError, match=r"labels\.jsonl:2: cited text 'Not in the task\.'"):
        load_labels(path, TASKS)


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"task_id": "nope"}, "unknown task_id"),
        ({"type": "odd"}, "unknown type"),
        ({"answer_kind": "unclear"}, "must cite nothing"),
        ({"cited": [{"text": HIDDEN.text}] * 4}, "at most 3"),
    ],
)
def test_bad_labels_are_one_line_errors(tmp_path, over, message):
    with pytest.raises(LabelFormatError, match=message):
        load_labels(_write(tmp_path, _row(**over)), TASKS)


def test_bundled_label_files_load_and_follow_the_task_split():
    split_of = {t.id: t.split for t in TASKS}
    for split in ("train", "test"):
        labels = load_labels(bundled_labels(split), TASKS)
        assert labels and {split_of[label.task_id] for label in labels} == {split}
