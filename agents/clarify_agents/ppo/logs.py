"""Run records: ``metrics.jsonl`` (one line per update, appended and flushed as it finishes),
``samples.jsonl`` (a few sample dialogues every ``sample_every`` updates, in the row format of
``clarify-gym bench``, so ``clarify-gym view`` shows how the policy's questions changed) and
the learning-curve PNG drawn from the metrics.

Metric names follow the glossary in the README (flat, slash-named keys).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

__all__ = [
    "SAMPLE_DIALOGUES",
    "append_metrics",
    "plot_learning_curve",
    "read_metrics",
    "sample_rows",
    "samples_markdown",
    "truncate_metrics",
]

#: Sample dialogues logged per sampling update (distinct tasks first).
SAMPLE_DIALOGUES = 4

#: Panels of the learning curve: (title, metric keys).
CURVE_PANELS = (
    ("episode return (env reward)", ("env/return",)),
    ("hidden coverage / checklist", ("env/hidden_coverage", "eval/checklist_score")),
    ("KL(policy || reference) per episode", ("objective/kl",)),
    ("losses", ("losses/policy", "losses/value")),
)


def append_metrics(path: str | os.PathLike[str], row: dict[str, Any]) -> None:
    """Append one JSON line and flush it to disk."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(row, allow_nan=True) + "\n")
        f.flush()
        os.fsync(f.fileno())


def sample_rows(update: int, episodes: Any, n: int = SAMPLE_DIALOGUES) -> list[dict[str, Any]]:
    """Rows of ``samples.jsonl`` for up to ``n`` of an update's played episodes (rollout
    ``Episode`` objects), distinct tasks first: agent ``update <n>``, task, seed, the dialogue,
    the cited and newly elicited ids, outline, checklist verdict and the episode metrics."""
    chosen: list[Any] = []
    seen: set[str] = set()
    for pass_ in (0, 1):
        for e in episodes:
            if len(chosen) >= n:
                break
            if e in chosen or (pass_ == 0 and e.task_id in seen):
                continue
            chosen.append(e)
            seen.add(e.task_id)
    rows = []
    for e in chosen:
        info = e.final or {}
        messages = info.get("dialogue") or []
        dialogue = [
            {"question": q["content"], "answer": a["content"]}
            for q, a in zip(messages[0::2], messages[1::2], strict=False)
        ]
        rows.append(
            {
                "agent": f"update {update}",
                "update": update,
                "task_id": e.task_id,
                "seed": e.seed,
                "field": info.get("field"),
                "num_hidden": info.get("num_hidden"),
                **{k: v for k, v in e.metrics.items()},
                "return": e.env_return,
                "stopped": e.ended_by == "stop",
                "ended_by": e.ended_by,
                "dialogue": dialogue,
                "cited_ids": [list(c) for c in info.get("cited_ids", [])],
                "new_hidden_ids": [list(c) for c in info.get("new_hidden_ids", [])],
                "judge_error": info.get("judge_error"),
                "outline": info.get("outline", ""),
                "checklist_met": list(info.get("checklist_met", ())),
            }
        )
    return rows


def samples_markdown(rows: list[dict[str, Any]]) -> str:
    """The sample dialogues as Markdown (TensorBoard's text tab renders it).

    >>> print(samples_markdown([{"task_id": "t1", "seed": 3, "env/hidden_coverage": 0.5,
    ...     "dialogue": [{"question": "Which sections?", "answer": "A summary."}]}]))
    **t1** (seed 3), hidden coverage 0.50
    <BLANKLINE>
    1. Q: Which sections?
       A: A summary.
    """
    blocks = []
    for r in rows:
        lines = [
            f"**{r['task_id']}** (seed {r['seed']}), hidden coverage "
            f"{float(r.get('env/hidden_coverage', 0.0)):.2f}",
            "",
        ]
        for k, d in enumerate(r["dialogue"], start=1):
            lines += [f"{k}. Q: {d['question']}", f"   A: {d['answer']}"]
        if not r["dialogue"]:
            lines.append("(no questions: STOP at once)")
        blocks.append("\n".join(lines))
    return "\n\n---\n\n".join(blocks)


def read_metrics(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The rows of a metrics file. A torn last line (a crash mid-write) is skipped; a corrupt
    line anywhere else raises ``ValueError`` naming it (the file was damaged, not torn)."""
    rows: list[dict[str, Any]] = []
    path = Path(path)
    if not path.exists():
        return rows
    lines = path.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, start=1):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            if number == len(lines):
                continue
            raise ValueError(
                f"{path} line {number} is not JSON ({exc.msg}); only a torn last line is "
                "expected after a crash: repair or delete that line, then run again"
            ) from exc
    return rows


def truncate_metrics(path: str | os.PathLike[str], last_update: int) -> None:
    """Keep only rows with ``update <= last_update`` (a resumed run re-does later updates)."""
    path = Path(path)
    if not path.exists():
        return
    rows = [r for r in read_metrics(path) if r.get("update", 0) <= last_update]
    tmp = path.with_suffix(".jsonl.tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    os.replace(tmp, path)


def plot_learning_curve(metrics_file: str | os.PathLike[str], png: str | os.PathLike[str]) -> Path:
    """Draw the learning curve (return, coverage, KL, losses against the update) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    rows = read_metrics(metrics_file)
    fig, axes = plt.subplots(2, 2, figsize=(10, 7))
    for ax, (title, keys) in zip(axes.flat, CURVE_PANELS, strict=True):
        for key in keys:
            points = [
                (r["update"], r[key])
                for r in rows
                if isinstance(r.get(key), int | float) and math.isfinite(r[key])
            ]
            if points:
                xs, ys = zip(*points, strict=True)
                ax.plot(xs, ys, marker="o", markersize=3, label=key)
        ax.set_title(title)
        ax.set_xlabel("update")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.suptitle(f"PPO learning curve ({Path(metrics_file).parent.name})")
    fig.tight_layout()
    png = Path(png)
    fig.savefig(png, dpi=100)
    plt.close(fig)
    return png
