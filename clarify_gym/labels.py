"""Gold oracle labels: which task sentences a faithful task author would cite for a question.

A label file is JSON Lines, one label per line, in the format of the labelling guide
(``ORACLE_LABELS.md``)::

    {"task_id": "cg-medicine-01", "question": "Which sections must the summary have?",
     "type": "targeted", "answer_kind": "answer",
     "cited": [{"id": 12, "text": "<the sentence exactly as mask() produced it>"}],
     "note": "optional"}

:func:`load_labels` resolves every cited sentence by its ``text`` first (so labels survive a
change of sentence numbering) and by ``id`` only when the text is not given; a text that matches
no sentence of the masked task is an error naming the file and line, never a silent skip. The
bundled files are ``clarify_gym/data/oracle_labels_train.jsonl`` and ``..._test.jsonl``; the
label split follows the task split.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from clarify_gym.errors import ClarifyGymError
from clarify_gym.masking import DEFAULT_POLICY, MaskedTask, MaskPolicy, mask
from clarify_gym.tasks import Task

__all__ = [
    "ANSWER_KINDS",
    "LABELS_DIR",
    "LABEL_TYPES",
    "GoldLabel",
    "LabelFormatError",
    "bundled_labels",
    "load_labels",
]

#: What the author does with a question (see the guide).
ANSWER_KINDS = ("answer", "pointer", "nothing", "unclear")
#: The probe types a label can have, for per-type reporting.
LABEL_TYPES = (
    "targeted",
    "generic",
    "vague",
    "visible",
    "cue_word",
    "keyword_salad",
    "visible_stuffing",
    "multi",
    "injection",
    "paraphrase",
    "foreign",
    "copy_visible",
)
LABELS_DIR = Path(__file__).parent / "data"
_MAX_CITED = 3


class LabelFormatError(ClarifyGymError, ValueError):
    """A label file is missing or a line of it is not a valid label (the message says where)."""


@dataclass(frozen=True)
class GoldLabel:
    """One resolved label: the question and the sentence ids the author would cite."""

    task_id: str
    question: str
    type: str
    answer_kind: str
    cited_ids: tuple[int, ...]
    note: str = ""
    source: str = ""  # "file:line", for messages

    def hidden_ids(self, task: MaskedTask) -> frozenset[int]:
        """The cited ids that are hidden in ``task``."""
        return frozenset(i for i in self.cited_ids if i in task.hidden_ids)


def bundled_labels(split: str) -> Path:
    """The path of the bundled label file of ``split`` (``"train"`` or ``"test"``).

    >>> bundled_labels("test").name
    'oracle_labels_test.jsonl'
    """
    if split not in ("train", "test"):
        raise LabelFormatError(f"label split must be 'train' or 'test', got {split!r}")
    return LABELS_DIR / f"oracle_labels_{split}.jsonl"


def _resolve(entry: object, masked: MaskedTask, by_text: Mapping[str, int], where: str) -> int:
    if not isinstance(entry, Mapping):
        raise LabelFormatError(
            f"{where}: each 'cited' entry must be an object with 'text' (and 'id')"
        )
    text = entry.get("text")
    if isinstance(text, str) and text.strip():
        found = by_text.get(" ".join(text.split()))
        if found is None:
            raise LabelFormatError(
                f"{where}: cited text {text[:70]!r} matches no sentence of task "
                f"{masked.task.id!r}; copy it from `clarify-gym tasks show {masked.task.id} --masked`"
            )
        return found
    ident = entry.get("id")
    if type(ident) is int and 0 <= ident < len(masked.sentences):
        return ident
    raise LabelFormatError(f"{where}: a 'cited' entry needs the sentence 'text' (or a valid 'id')")


def _parse(
    raw: object,
    where: str,
    masked_by_id: Mapping[str, MaskedTask],
    by_text: dict[str, dict[str, int]],
) -> GoldLabel:
    if not isinstance(raw, Mapping):
        raise LabelFormatError(f"{where}: a label must be a JSON object")
    for key in ("task_id", "question", "type", "answer_kind", "cited"):
        if key not in raw:
            raise LabelFormatError(f"{where}: the label has no {key!r}; see the labelling guide")
    task_id = raw["task_id"]
    masked = masked_by_id.get(task_id)
    if masked is None:
        raise LabelFormatError(
            f"{where}: unknown task_id {task_id!r}; pass the task source (--tasks)"
        )
    if raw["type"] not in LABEL_TYPES:
        raise LabelFormatError(f"{where}: unknown type {raw['type']!r}; use one of {LABEL_TYPES}")
    if raw["answer_kind"] not in ANSWER_KINDS:
        raise LabelFormatError(
            f"{where}: unknown answer_kind {raw['answer_kind']!r}; use one of {ANSWER_KINDS}"
        )
    cited_raw = raw["cited"]
    if not isinstance(cited_raw, list) or len(cited_raw) > _MAX_CITED:
        raise LabelFormatError(f"{where}: 'cited' must be a list of at most {_MAX_CITED} sentences")
    if task_id not in by_text:
        by_text[task_id] = {}
        for s in masked.sentences:
            by_text[task_id].setdefault(" ".join(s.text.split()), s.id)
    cited = tuple(dict.fromkeys(_resolve(e, masked, by_text[task_id], where) for e in cited_raw))
    if raw["answer_kind"] in ("nothing", "unclear") and cited:
        raise LabelFormatError(f"{where}: answer_kind {raw['answer_kind']!r} must cite nothing")
    return GoldLabel(
        task_id=task_id,
        question=str(raw["question"]),
        type=raw["type"],
        answer_kind=raw["answer_kind"],
        cited_ids=cited,
        note=str(raw.get("note", "")),
        source=where,
    )


def load_labels(
    paths: str | Path | Iterable[str | Path],
    tasks: Sequence[Task],
    policy: MaskPolicy = DEFAULT_POLICY,
) -> list[GoldLabel]:
    """Read label files and resolve their citations against ``tasks`` masked by ``policy``.

    Raises:
        LabelFormatError: A file is missing, or a line is not a valid label (the message names the
            file and line and says how to fix it).
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    masked_by_id = {t.id: mask(t, policy) for t in tasks}
    by_text: dict[str, dict[str, int]] = {}
    labels: list[GoldLabel] = []
    for path in map(Path, paths):
        if not path.is_file():
            raise LabelFormatError(f"label file {str(path)!r} does not exist")
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                where = f"{path}:{number}"
                try:
                    raw = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise LabelFormatError(f"{where}: not valid JSON ({exc.msg})") from None
                labels.append(_parse(raw, where, masked_by_id, by_text))
    return labels
