"""Run records: ``metrics.jsonl`` (one line per update, appended and flushed as it finishes) and
the learning-curve PNG drawn from it.

Metric names follow the glossary in the README (flat, slash-named keys).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

__all__ = ["append_metrics", "plot_learning_curve", "read_metrics", "truncate_metrics"]

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
