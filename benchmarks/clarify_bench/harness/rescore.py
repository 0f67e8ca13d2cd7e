"""Re-score a stored run with another writer or judge: ``clarify-gym rescore RUN_DIR --out NEW_DIR``.

The agents are not run again: every stored dialogue (questions, answers, cited ids) is given to
the writer, and its outline to the judge, as at the end of the original episode. By default the
run's own writer and judge run again (``--writer``/``--judge`` pick others: ``template``,
``lexical``, ``llm``, ``llm:<model>`` or ``llm:<model>@<base_url>`` for any OpenAI-compatible
endpoint). The new folder is a normal run folder (``results.jsonl``, ``metadata.json``,
``tasks.json``, ``summary.md``, plots) that ``clarify-gym view`` shows: each episode keeps its
identity (agent, task, seed) and its dialogue, coverage and per-question rewards; the outline,
checklist verdict, checklist score, judge error and LLM usage (``llm/*``: the writer's and the
judge's calls of this re-score) are new, and the episode return changes only by the checklist
term where the env paid one. ``rescored_from`` keeps the original score and usage, and
``metadata.json`` says which writer and judge ran (``rescore``).

Like ``bench``, rows are appended as they finish; ``--resume`` continues a killed re-score, and
an LLM error of the judge is recorded per episode (``judge_error``) and reported at the end
(exit 3).
"""

from __future__ import annotations

import argparse
import copy
import logging
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from clarify_gym.cli import add_dataclass_arguments, flag, from_args
from clarify_gym.errors import ClarifyGymError

__all__ = ["RescoreConfig", "RescoreError", "add_arguments", "make_part", "rescore", "run"]

logger = logging.getLogger(__name__)


class RescoreError(ClarifyGymError, ValueError):
    """A re-score that cannot run as asked; the message names the flag and the fix."""


@dataclass
class RescoreConfig:
    """Settings of ``clarify-gym rescore``."""

    run_dir: str = field(metadata=flag(positional=True, metavar="RUN_DIR"))
    """The clarify-gym bench run to re-score."""
    out: str | None = field(default=None, metadata=flag(metavar="NEW_DIR"))
    """New run folder for the re-scored episodes (required; must not hold a run unless --resume)."""
    writer: str | None = None
    """Writer: template, llm, llm:<model> or llm:<model>@<base_url> (default: the run's own)."""
    judge: str | None = None
    """Judge: lexical, llm, llm:<model> or llm:<model>@<base_url> (default: the run's own)."""
    tasks: str | None = None
    """Task source, when the run's own (metadata task_source) cannot be loaded here."""
    concurrency: int = 1
    """Episodes re-scored at once (threads; for LLM writers and judges)."""
    resume: bool = False
    """Continue a re-score in --out, skipping the episodes already there."""
    plots: bool = True
    """Save the PNG plots."""
    progress: bool = True
    """Show a progress bar (stderr)."""

    def __post_init__(self) -> None:
        if not self.out:
            raise RescoreError("give the new run folder with --out NEW_DIR")
        if self.concurrency < 1:
            raise RescoreError(f"--concurrency must be >= 1, got {self.concurrency}")
        for name, spec, kinds in (
            ("--writer", self.writer, ("template",)),
            ("--judge", self.judge, ("lexical",)),
        ):
            if (
                spec is not None
                and spec not in kinds
                and spec != "llm"
                and not spec.startswith("llm:")
            ):
                raise RescoreError(
                    f"{name} {spec!r} is not a {name[2:]}; use {kinds[0]}, llm, llm:<model> or "
                    "llm:<model>@<base_url>"
                )


def make_part(role: str, spec: str) -> Any:
    """A writer (``role="writer"``) or judge from ``spec``: the offline one, ``llm``,
    ``llm:<model>``, or ``llm:<model>@<base_url>`` (that endpoint, whatever the environment says).

    >>> type(make_part("judge", "lexical")).__name__, type(make_part("writer", "template")).__name__
    ('LexicalJudge', 'TemplateWriter')
    """
    from clarify_gym.writing import make_judge, make_writer

    build = make_writer if role == "writer" else make_judge
    model, at, base_url = spec.partition(":")[2].partition("@")
    if not (spec.startswith("llm:") and at):
        return build(spec)
    from clarify_gym.llm import LLMClient
    from clarify_gym.writing.llm import LLMJudge, LLMWriter

    client = LLMClient(role=role, model=model or None, base_url=base_url)
    return LLMWriter(client=client) if role == "writer" else LLMJudge(client=client)


def _own_spec(metadata: dict[str, Any], role: str) -> str:
    """The run's own writer or judge as a spec: the env kwargs' string, with the model and the
    endpoint the run recorded for an LLM part."""
    env = metadata.get("env", {})
    spec = env.get("kwargs", {}).get(role) or ("template" if role == "writer" else "lexical")
    described = env.get("parts", {}).get(role) or {}
    if isinstance(spec, str) and (spec == "llm" or spec.startswith("llm:")):
        model = described.get("model") or spec.partition(":")[2]
        url = described.get("base_url")
        return f"llm:{model or ''}" + (f"@{url}" if url else "")
    return str(spec)


def _describe(part: Any) -> dict[str, Any]:
    describe = getattr(part, "describe", None)
    return describe() if callable(describe) else {"class": type(part).__name__}


def _checklist_weight(kwargs: dict[str, Any]) -> float:
    """The weight the run's env gave the checklist term of the return."""
    from clarify_gym.rewards import resolve_reward

    weight = kwargs.get("checklist_weight")
    if weight is not None:
        return float(weight)
    return float(resolve_reward(kwargs.get("reward", "new_info")).checklist)


def _load_masked(
    metadata: dict[str, Any], source: str | None, task_ids: set[str]
) -> dict[str, Any]:
    from clarify_gym.masking import mask
    from clarify_gym.tasks import load_tasks

    task_source = metadata.get("task_source", {})
    tasks_from = source or task_source.get("tasks")
    if tasks_from is None:
        raise RescoreError("the run's metadata names no task source; pass --tasks SOURCE")
    try:
        tasks = load_tasks(str(tasks_from), split=None if source else task_source.get("split"))
    except (ClarifyGymError, OSError, ImportError) as exc:
        raise RescoreError(
            f"cannot load the run's tasks from {tasks_from!r} ({exc}); pass --tasks SOURCE"
        ) from exc
    masked = {t.id: mask(t) for t in tasks if t.id in task_ids}
    missing = sorted(task_ids - set(masked))
    if missing:
        raise RescoreError(
            f"{len(missing)} task(s) of the run are not in {tasks_from!r} (e.g. {missing[0]}); "
            "pass the run's task source with --tasks"
        )
    return masked


def rescore_row(
    row: dict[str, Any], masked: Any, writer: Any, judge: Any, weight: float, source: str
) -> dict[str, Any]:
    """One stored episode, written and judged again (see the module docstring)."""
    from clarify_gym.dialogue import Turn

    n = len(row.get("dialogue", []))

    def per_turn(key: str, default: Any) -> list[Any]:
        values = row.get(key) or []
        return [values[k] if k < len(values) else default for k in range(n)]

    turns = [
        Turn(
            d["question"],
            d["answer"],
            tuple(cited),
            tuple(new),
            float(reward),
            invalid,
            user_error,
        )
        for d, cited, new, reward, invalid, user_error in zip(
            row.get("dialogue", []),
            per_turn("cited_ids", []),
            per_turn("new_hidden_ids", []),
            per_turn("rewards", 0.0),
            per_turn("invalid", None),
            per_turn("user_errors", None),
            strict=True,
        )
    ]
    outline = writer.write(masked, turns)
    writer_usage = getattr(writer, "last_usage", None)
    verdict = judge.judge(masked, outline)
    usage: dict[str, int] = {}
    for part in (writer_usage, verdict.usage):
        for key in ("prompt_tokens", "completion_tokens", "calls"):
            if part and key in part:
                usage[key] = usage.get(key, 0) + int(part[key])
    old_score = float(row.get("eval/checklist_score", 0.0))
    new = {k: v for k, v in row.items() if not k.startswith("llm/")}
    new.pop("checklist_items", None)
    new.update(
        {
            "outline": outline,
            "checklist_met": list(verdict.met),
            "judge_error": verdict.error,
            "eval/checklist_score": verdict.score,
            **{f"llm/{k}": v for k, v in usage.items()},
            "rescored_from": {
                "run": source,
                "eval/checklist_score": old_score,
                "judge_error": row.get("judge_error"),
                **{k: v for k, v in row.items() if k.startswith("llm/")},
            },
        }
    )
    if verdict.items is not None:
        new["checklist_items"] = list(verdict.items)
    if "return" in row and weight:
        new["return"] = float(row["return"]) + weight * (verdict.score - old_score)
    return new


def rescore(cfg: RescoreConfig) -> Path:
    """Re-score ``cfg.run_dir`` into ``cfg.out``; returns the new folder (raises
    :class:`RescoreError` or :class:`~clarify_bench.harness.runfiles.RunFilesError` before any
    work when the input cannot be used)."""
    from tqdm.auto import tqdm

    from clarify_bench.harness.runfiles import (
        METADATA,
        RESULTS,
        ResultsWriter,
        episode_key,
        git_commit,
        now_iso,
        package_versions,
        read_metadata,
        read_results,
        write_json_atomic,
        write_tasks,
    )
    from clarify_bench.harness.summary import summarize_run

    run_dir = Path(cfg.run_dir)
    if not (run_dir / RESULTS).exists():
        raise RescoreError(f"{run_dir} has no {RESULTS}; give a clarify-gym bench run folder")
    rows = read_results(run_dir / RESULTS)
    if not rows:
        raise RescoreError(f"{run_dir / RESULTS} has no episodes to re-score")
    metadata = read_metadata(run_dir) or {}
    assert cfg.out is not None
    out = Path(cfg.out)
    if out.resolve() == run_dir.resolve():
        raise RescoreError("--out must be a new folder, not the run being re-scored")
    if out.exists() and not out.is_dir():
        raise RescoreError(f"--out {out} is a file; give a folder")
    started = (out / RESULTS).exists() and (out / RESULTS).stat().st_size > 0
    if started and not cfg.resume:
        raise RescoreError(
            f"{out} already holds a run; pass --resume to continue it, or choose another --out"
        )
    writer_spec = cfg.writer or _own_spec(metadata, "writer")
    judge_spec = cfg.judge or _own_spec(metadata, "judge")
    specs = {"writer": writer_spec, "judge": judge_spec}
    if started:
        before = (read_metadata(out) or {}).get("rescore") or {}
        if before.get("specs") != specs:
            raise RescoreError(
                f"cannot resume {out}: it was re-scored with another writer or judge "
                f"({before.get('specs')}); use the same flags, or another --out"
            )
    try:
        writer, judge = make_part("writer", writer_spec), make_part("judge", judge_spec)
    except ValueError as exc:
        raise RescoreError(str(exc)) from exc
    masked = _load_masked(metadata, cfg.tasks, {str(r["task_id"]) for r in rows})
    weight = _checklist_weight(metadata.get("env", {}).get("kwargs", {}))

    parts = {"writer": _describe(writer), "judge": _describe(judge)}
    new_meta = copy.deepcopy(metadata)
    new_meta.setdefault("env", {}).setdefault("parts", {}).update(parts)
    new_meta["rescore"] = {
        "from": str(run_dir),
        "from_commit": metadata.get("git_commit"),
        "specs": specs,
        **parts,
    }
    new_meta.update(
        {
            "date": now_iso(),
            "git_commit": git_commit(),
            "packages": package_versions(),
            "command": sys.argv,
        }
    )
    new_meta["failed_episodes"] = {}
    new_meta["finished"] = None
    write_json_atomic(out / METADATA, new_meta)
    write_tasks(out, masked.values())

    done = {episode_key(r) for r in read_results(out / RESULTS, repair=True)} if started else set()
    todo = [r for r in rows if episode_key(r) not in done]
    failed: dict[str, int] = {}
    lock = threading.Lock()
    bar = tqdm(
        total=len(todo), desc="rescore", unit="ep", disable=not cfg.progress, file=sys.stderr
    )
    with ResultsWriter(out / RESULTS) as results:

        def one(row: dict[str, Any]) -> Callable[[], None]:
            new = rescore_row(row, masked[str(row["task_id"])], writer, judge, weight, str(run_dir))

            def emit() -> None:
                results.write(new)
                bar.update(1)

            return emit

        def settle(row: dict[str, Any], produce: Callable[[], Callable[[], None]]) -> None:
            try:
                emit = produce()
            except Exception as exc:  # one episode's failure is counted, the rest go on
                logger.error(
                    "re-scoring %s failed: %s: %s", episode_key(row), type(exc).__name__, exc
                )
                with lock:
                    failed[row["agent"]] = failed.get(row["agent"], 0) + 1
                return
            with lock:
                emit()

        if cfg.concurrency == 1:
            for row in todo:
                settle(row, partial(one, row))
        else:
            with ThreadPoolExecutor(cfg.concurrency, thread_name_prefix="rescore") as pool:
                futures = [(row, pool.submit(one, row)) for row in todo]
                for row, future in futures:
                    settle(row, future.result)
    bar.close()
    new_meta["failed_episodes"] = failed
    write_json_atomic(out / METADATA, new_meta)
    summarize_run(out, plots=cfg.plots, echo=True)
    new_meta["finished"] = now_iso() if not failed else None
    write_json_atomic(out / METADATA, new_meta)
    return out


# ---- command line ------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``clarify-gym rescore``: one per :class:`RescoreConfig` field."""
    add_dataclass_arguments(parser, RescoreConfig)


def run(args: argparse.Namespace) -> int:
    """Run ``clarify-gym rescore``."""
    cfg = from_args(RescoreConfig, args)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    folder = rescore(cfg)
    print(f"results: {folder / 'results.jsonl'} (view: clarify-gym view {folder})")
    from clarify_bench.harness.summary import run_problems

    problems = run_problems(folder)
    if problems:
        print(f"clarify-gym rescore: error: {problems}", file=sys.stderr)
        return 3
    return 0
