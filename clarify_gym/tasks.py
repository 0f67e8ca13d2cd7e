"""DOLOMITES tasks: the :class:`Task` record and :func:`load_tasks` for every published format.

Accepted sources (all go through :func:`load_tasks`):

* ``"sample"`` — the DOLOMITES-format tasks bundled with clarify-gym (``clarify_gym/data``),
  written for this project, with a fixed ``train`` / ``test`` split.
* a path to a DOLOMITES *examples* file (``dolomites_examples.dev.public.jsonl``,
  ``dolomites_examples.test.noreference.jsonl``, the Hugging Face mirror's ``*.hf.jsonl``);
* a path to the DOLOMITES *tasks* file (``dolomites_tasks_anon.jsonl``: templates without an
  example input);
* a path to the released ``dolomites_examples.zip`` archive (members under
  ``dolomites_examples/``);
* ``"hf:cmalaviya/dolomites"`` (or ``"hf:<repo>"``) through the ``datasets`` library.

A row is either *nested* (``{"example_id", "task": {"task_objective", ...}, "example_input",
...}``) or *flat* (the ``task_*`` keys at the top level). Extra keys are ignored.
"""

from __future__ import annotations

import io
import json
import os
import socket
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from clarify_gym.errors import DatasetUnavailableError, TaskFormatError, require

__all__ = ["SAMPLE_SOURCE", "Task", "load_tasks", "task_from_row"]

SAMPLE_SOURCE = "sample"
SAMPLE_FILE = "sample_tasks.jsonl"
HF_PREFIX = "hf:"
REQUIRED_TASK_KEYS = ("task_objective", "task_procedure", "task_input", "task_output")
SPLIT_HINTS = (("dev", "dev"), ("test", "test"), ("train", "train"))


@dataclass(frozen=True)
class Task:
    """One DOLOMITES task with its concrete example input.

    Attributes:
        id: Unique id (``example_id`` when the row has one, else the task id).
        field: The expert field, e.g. ``"Medicine"``.
        objective: One-sentence task objective (visible to the assistant by default).
        procedure: How an expert performs the task (hidden by default).
        input_spec: ``* Section: description`` bullets of the input (visible).
        output_spec: ``* Section: description`` bullets of the required output (hidden).
        notes: Additional notes (hidden).
        example_input: The concrete input, ``**Input Sections**`` then ``**Section:** text``
            blocks; empty for rows of the tasks file.
        example_output: The reference output (DOLOMITES dev split only), else ``None``.
        split: ``"train"``/``"test"`` (bundled sample), ``"dev"``/``"test"`` (DOLOMITES), or
            ``None`` when unknown.
        name: A short title when the source has one.
    """

    id: str
    field: str
    objective: str
    procedure: str
    input_spec: str
    output_spec: str
    notes: str = ""
    example_input: str = ""
    example_output: str | None = None
    split: str | None = None
    name: str = ""

    def __repr__(self) -> str:
        """Id, field and split only: task text (hidden parts included) stays out of logs and
        error messages."""
        return f"Task(id={self.id!r}, field={self.field!r}, split={self.split!r})"


def _text(value: Any, *, key: str, path: str | None, line: int | None) -> str:
    if value is None:
        return ""
    if isinstance(value, list):  # some dumps store bullets as a list of strings
        return "\n".join(str(v) for v in value)
    if not isinstance(value, str):
        raise TaskFormatError(
            f"expected a string, got {type(value).__name__}", path=path, line=line, key=key
        )
    return value.strip()


def task_from_row(
    row: dict[str, Any],
    *,
    path: str | None = None,
    line: int | None = None,
    default_split: str | None = None,
) -> Task:
    """Build a :class:`Task` from one DOLOMITES row (nested or flat); extra keys are ignored.

    >>> row = {"example_id": "x1", "task": {"field": "Law", "task_objective": "Write a memo.",
    ...        "task_procedure": "Read the file.", "task_input": "* Facts: the facts",
    ...        "task_output": "* Issue: one line", "task_notes": ""},
    ...        "example_input": "**Input Sections**\\n\\n**Facts:** A sold B a car."}
    >>> task_from_row(row).field, task_from_row(row).id
    ('Law', 'x1')
    """
    if not isinstance(row, dict):
        raise TaskFormatError(
            f"each line must be a JSON object, got {type(row).__name__}", path=path, line=line
        )
    spec = row.get("task", row)
    if not isinstance(spec, dict):
        raise TaskFormatError("'task' must be a JSON object", path=path, line=line, key="task")
    for key in REQUIRED_TASK_KEYS:
        if key not in spec:
            raise TaskFormatError(
                "missing required key (a DOLOMITES task needs task_objective, task_procedure, "
                "task_input and task_output)",
                path=path,
                line=line,
                key=key,
            )
    objective = _text(spec["task_objective"], key="task_objective", path=path, line=line)
    if not objective:
        raise TaskFormatError(
            "the task objective is empty", path=path, line=line, key="task_objective"
        )
    task_id = row.get("example_id") or spec.get("task_id") or row.get("task_id") or spec.get("id")
    if not task_id:
        task_id = f"{Path(path).stem if path else 'row'}:{line}"
    field = spec.get("field") or row.get("field") or spec.get("domain") or "unknown"
    output = row.get("example_output")
    return Task(
        id=str(task_id),
        field=str(field).strip(),
        objective=objective,
        procedure=_text(spec["task_procedure"], key="task_procedure", path=path, line=line),
        input_spec=_text(spec["task_input"], key="task_input", path=path, line=line),
        output_spec=_text(spec["task_output"], key="task_output", path=path, line=line),
        notes=_text(spec.get("task_notes"), key="task_notes", path=path, line=line),
        example_input=_text(row.get("example_input"), key="example_input", path=path, line=line),
        example_output=output.strip() if isinstance(output, str) and output.strip() else None,
        split=row.get("split") or default_split,
        name=str(spec.get("task_name") or spec.get("title") or row.get("title") or "").strip(),
    )


def _split_from_name(name: str) -> str | None:
    lowered = os.path.basename(name).lower()
    for hint, split in SPLIT_HINTS:
        if f".{hint}." in lowered or f"_{hint}." in lowered or f"-{hint}." in lowered:
            return split
    return None


def _read_jsonl(lines: Iterable[str], *, path: str, default_split: str | None) -> Iterator[Task]:
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise TaskFormatError(
                f"malformed JSON ({exc.msg} at column {exc.colno}); each line must be one JSON object",
                path=path,
                line=number,
            ) from None
        yield task_from_row(row, path=path, line=number, default_split=default_split)


def _load_path(path: Path) -> list[Task]:
    if not path.exists():
        raise FileNotFoundError(
            f"task source {str(path)!r} does not exist; pass 'sample', 'hf:cmalaviya/dolomites', "
            "or the path of a DOLOMITES .jsonl file or dolomites_examples.zip"
        )
    if path.is_dir():
        raise TaskFormatError(
            "is a directory; pass the DOLOMITES .jsonl file or dolomites_examples.zip in it",
            path=str(path),
        )
    try:
        return _read_path(path)
    except UnicodeDecodeError as exc:
        raise TaskFormatError(
            f"is not UTF-8 text ({exc.reason}); save it as UTF-8", path=str(path)
        ) from None
    except zipfile.BadZipFile:
        raise TaskFormatError(
            "is not a zip archive; pass a .jsonl file or the released dolomites_examples.zip",
            path=str(path),
        ) from None


def _read_path(path: Path) -> list[Task]:
    if path.suffix == ".zip":
        tasks: list[Task] = []
        with zipfile.ZipFile(path) as archive:
            members = sorted(n for n in archive.namelist() if n.endswith(".jsonl"))
            if not members:
                raise TaskFormatError("the archive holds no .jsonl member", path=str(path))
            for member in members:
                with archive.open(member) as handle:
                    text = io.TextIOWrapper(handle, encoding="utf-8")
                    tasks.extend(
                        _read_jsonl(
                            text, path=f"{path}!{member}", default_split=_split_from_name(member)
                        )
                    )
        return tasks
    with path.open(encoding="utf-8") as handle:
        return list(_read_jsonl(handle, path=str(path), default_split=_split_from_name(path.name)))


def _hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face endpoint answers a TCP connection within ``timeout`` seconds."""
    from urllib.parse import urlparse

    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "huggingface.co", port), timeout=timeout):
            return True
    except OSError:
        return False


def _load_hf(repo: str, split: str | None) -> list[Task]:
    datasets = require(
        "datasets", extra="data", feature="Loading DOLOMITES from the Hugging Face hub"
    )
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes"}
    if not offline and not _hub_reachable():
        raise DatasetUnavailableError(
            f"cannot reach the Hugging Face hub to load {repo!r} (no network?). Download the "
            "DOLOMITES files once and pass the path instead, e.g. "
            "load_tasks('dolomites_examples.zip') or load_tasks('dolomites_examples.dev.public.jsonl'), "
            "or set HF_HUB_OFFLINE=1 to use a copy already in the datasets cache."
        )
    try:
        data = datasets.load_dataset(repo)  # type: ignore[attr-defined]
    except Exception as exc:  # network, auth, missing repo: all end the same way for the user
        raise DatasetUnavailableError(
            f"could not load {repo!r} from the Hugging Face hub ({type(exc).__name__}: "
            f"{str(exc)[:200]}). Offline, download the DOLOMITES files once and pass the path "
            "instead, e.g. load_tasks('dolomites_examples.zip') or "
            "load_tasks('dolomites_examples.dev.public.jsonl')."
        ) from exc
    tasks: list[Task] = []
    for split_name in sorted(data.keys()):
        if split is not None and split_name != split:
            continue
        for number, row in enumerate(data[split_name], start=1):
            tasks.append(
                task_from_row(
                    dict(row),
                    path=f"hf:{repo}[{split_name}]",
                    line=number,
                    default_split=split_name,
                )
            )
    return tasks


def load_tasks(
    source: str | os.PathLike[str] | Sequence[Task] = SAMPLE_SOURCE, split: str | None = None
) -> list[Task]:
    """Load DOLOMITES tasks from any supported source, optionally keeping one split.

    Args:
        source: ``"sample"``, ``"hf:<repo>"``, a path (``.jsonl`` or ``.zip``), or tasks.
        split: Keep only tasks of this split (``"train"``/``"test"`` for the sample,
            ``"dev"``/``"test"`` for DOLOMITES). ``None`` or ``"all"`` keeps every task.

    Raises:
        TaskFormatError: a malformed line, a missing key or an empty objective (names the
            file, line and key).
        DatasetUnavailableError: an ``hf:`` source could not be reached.
        TaskFormatError: also when no task matched ``split``, two tasks share an id, or the
            path is a directory, not UTF-8 text or not a zip archive.

    >>> tasks = load_tasks("sample", split="test")
    >>> {t.split for t in tasks}
    {'test'}
    """
    split = None if split in (None, "all") else split
    if isinstance(source, (list, tuple)):
        tasks = list(source)
        if not all(isinstance(t, Task) for t in tasks):
            raise TypeError("a sequence source must hold clarify_gym.Task objects")
        label = "the given tasks"
    elif isinstance(source, str) and source == SAMPLE_SOURCE:
        text = (
            resources.files("clarify_gym").joinpath("data").joinpath(SAMPLE_FILE).read_text("utf-8")
        )
        tasks = list(
            _read_jsonl(
                text.splitlines(), path=f"clarify_gym/data/{SAMPLE_FILE}", default_split=None
            )
        )
        label = "the bundled sample"
    elif isinstance(source, str) and source.startswith(HF_PREFIX):
        repo = source[len(HF_PREFIX) :]
        tasks = _load_hf(repo, split)
        label = source
    elif isinstance(source, (str, os.PathLike)):
        tasks = _load_path(Path(source))
        label = str(source)
    else:
        raise TypeError(
            f"task source must be 'sample', 'hf:<repo>', a path or a list of Task, got {type(source).__name__}"
        )
    if split is not None:
        found = sorted({str(t.split) for t in tasks})
        tasks = [t for t in tasks if t.split == split]
        if not tasks:
            raise TaskFormatError(
                f"no task of split {split!r} in {label}; its splits are {found} "
                "(pass one of them, or 'all')"
            )
    seen: set[str] = set()
    for task in tasks:
        if task.id in seen:
            raise TaskFormatError(
                f"two tasks in {label} share the id {task.id!r}; task ids must be unique "
                "(rename or remove one)"
            )
        seen.add(task.id)
    return tasks
