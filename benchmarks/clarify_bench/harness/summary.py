"""Summaries of a benchmark run, made from its ``results.jsonl`` only: a table of the mean and
95 % confidence interval per agent (printed and saved as ``summary.md``) and two PNG plots
(``scores.png``: checklist score and hidden coverage per agent; ``coverage_by_question.png``:
mean hidden coverage after each question).

Tasks are the unit of the statistics: an agent's episodes on one task (its seeds) are averaged
first, and the table shows the mean over tasks and Student's t interval over those task means,
mean ± t(0.975, n-1) · sd / √n with n tasks. Seeds of a deterministic agent repeat the same
episode, so counting them as independent would shrink the interval for nothing.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clarify_gym.env import EPISODE_METRICS
from clarify_gym.errors import MissingDependencyError

__all__ = [
    "METRICS",
    "AgentSummary",
    "coverage_curves",
    "episode_errored",
    "errors_markdown",
    "llm_markdown",
    "llm_roles",
    "mean_ci",
    "plot_run",
    "run_problems",
    "summarize",
    "summarize_run",
    "summary_markdown",
    "t_quantile",
]

#: The glossary metrics the table reports, with their column titles.
METRICS: dict[str, str] = {key: key.split("/")[1].replace("_", " ") for key in EPISODE_METRICS}


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-14:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t distribution with ``df`` degrees of freedom.

    >>> [round(t_quantile(0.975, df), 3) for df in (1, 2, 11, 30, 1000)]
    [12.706, 4.303, 2.201, 2.042, 1.962]
    """
    if not 0.0 < p < 1.0 or df <= 0:
        raise ValueError("t_quantile needs 0 < p < 1 and df > 0")
    if p < 0.5:
        return -t_quantile(1.0 - p, df)

    def cdf(t: float) -> float:
        return 1.0 - 0.5 * _betainc(df / 2.0, 0.5, df / (df + t * t))

    lo, hi = 0.0, 1.0
    while cdf(hi) < p:
        hi *= 2.0
    for _ in range(100):
        mid = (lo + hi) / 2.0
        lo, hi = (mid, hi) if cdf(mid) < p else (lo, mid)
    return (lo + hi) / 2.0


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """Mean and half-width of the t confidence interval (``nan`` half-width below 2 values).

    >>> mean, half = mean_ci([0.0, 1.0, 0.5, 0.5])
    >>> round(mean, 3), round(half, 3)
    (0.5, 0.65)
    """
    n = len(values)
    if n == 0:
        return math.nan, math.nan
    mean = math.fsum(values) / n
    if n < 2:
        return mean, math.nan
    sd = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    return mean, t_quantile(0.5 + confidence / 2.0, n - 1) * sd / math.sqrt(n)


@dataclass(frozen=True)
class AgentSummary:
    """One agent's row of the table."""

    agent: str
    episodes: int
    tasks: int
    #: metric -> (mean over task means, 95 % CI half-width over task means)
    metrics: dict[str, tuple[float, float]]
    #: Recorded episodes with an LLM error (:func:`episode_errored`): their scores are not real.
    errored: int = 0


def episode_errored(row: dict[str, Any]) -> bool:
    """Whether a results row records an LLM failure: the judge's (``judge_error``) or the user's
    on any turn (``user_errors``).

    >>> episode_errored({"judge_error": None, "user_errors": [None, "bad JSON"]})
    True
    >>> episode_errored({"judge_error": None, "user_errors": []}), episode_errored({})
    (False, False)
    """
    return bool(row.get("judge_error")) or any(row.get("user_errors") or ())


def _agent_order(rows: Sequence[dict[str, Any]], agents: Sequence[str] | None) -> list[str]:
    seen = list(agents or [])
    for row in rows:
        if row["agent"] not in seen:
            seen.append(row["agent"])
    return [a for a in seen if any(r["agent"] == a for r in rows)]


def summarize(
    rows: Sequence[dict[str, Any]],
    agents: Sequence[str] | None = None,
    metrics: Sequence[str] | None = None,
) -> list[AgentSummary]:
    """Mean and 95 % CI over task means of every metric in ``metrics`` (default :data:`METRICS`),
    per agent (in ``agents`` order, then first appearance). Rows without a metric (runs made
    before it existed) are left out of its mean; with none it is ``nan`` (shown ``n/a``).

    >>> rows = [{"agent": "a", "task_id": t, "seed": s, **{m: v for m in METRICS}}
    ...         for t, s, v in [("t1", 0, 1.0), ("t1", 1, 0.0), ("t2", 0, 1.0)]]
    >>> summary = summarize(rows)[0]
    >>> summary.episodes, summary.tasks, summary.metrics["env/new_info"][0]
    (3, 2, 0.75)
    """
    out = []
    for agent in _agent_order(rows, agents):
        mine = [r for r in rows if r["agent"] == agent]
        by_task: dict[str, list[dict[str, Any]]] = {}
        for r in mine:
            by_task.setdefault(str(r["task_id"]), []).append(r)
        table = {}
        for m in METRICS if metrics is None else metrics:
            task_means = []
            for group in by_task.values():
                values = [float(r[m]) for r in group if r.get(m) is not None]
                if values:
                    task_means.append(math.fsum(values) / len(values))
            table[m] = mean_ci(task_means)
        errored = sum(episode_errored(r) for r in mine)
        out.append(AgentSummary(agent, len(mine), len(by_task), table, errored))
    return out


def _cell(mean: float, half: float, digits: int) -> str:
    if math.isnan(mean):
        return "n/a"
    if math.isnan(half):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {half:.{digits}f}"


def summary_markdown(summaries: Sequence[AgentSummary]) -> str:
    """The table as Markdown (mean ± 95 % CI half-width).

    >>> s = summarize([{"agent": "a", "task_id": "t", "seed": 0, **{m: 1.0 for m in METRICS}}])
    >>> print(summary_markdown(s).splitlines()[2])
    | a | 1 | 1 | 1.00 | 1.000 | 1.00 | 1.00 | 1.000 | 1.000 |
    """
    counts = {"env/new_info", "env/paper_reward", "env/questions"}
    header = "| agent | episodes | tasks | " + " | ".join(METRICS.values()) + " |"
    rule = "|---|---:|---:|" + "---:|" * len(METRICS)
    lines = [header, rule]
    for s in summaries:
        cells = [_cell(*s.metrics[m], 2 if m in counts else 3) for m in METRICS]
        lines.append(f"| {s.agent} | {s.episodes} | {s.tasks} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def errors_markdown(summaries: Sequence[AgentSummary], failed: dict[str, int] | None = None) -> str:
    """Per agent: recorded episodes with an LLM error (scores not real) and episodes that failed
    and were not recorded (``failed``, from the run's metadata).

    >>> s = summarize([{"agent": "a", "task_id": "t", "seed": 0, "judge_error": "bad JSON",
    ...                 **{m: 0.0 for m in METRICS}}])
    >>> print(errors_markdown(s, {"a": 2}))
    Errored episodes (an LLM judge or user error; their scores are not real) and failed ones (not recorded): a: 1 errored of 1, 2 failed.
    """
    failed = failed or {}
    cells = [
        f"{s.agent}: {s.errored} errored of {s.episodes}"
        + (f", {failed[s.agent]} failed" if failed.get(s.agent) else "")
        for s in summaries
    ]
    cells += [
        f"{a}: {n} failed" for a, n in failed.items() if n and a not in {s.agent for s in summaries}
    ]
    return (
        "Errored episodes (an LLM judge or user error; their scores are not real) and failed ones "
        "(not recorded): " + "; ".join(cells) + "."
    )


#: The per-role counts a row holds for each LLM part (``llm/<role>/<count>``), in table order.
LLM_COUNTS = ("calls", "json_replies", "parsed_first_try", "repairs", "length_retries",
              "parse_failures", "retries", "timeouts", "fallbacks")  # fmt: skip
_ROLE_ORDER = ("user", "writer", "judge", "agent")


def llm_roles(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per LLM role (user, writer, judge, agent) over ``rows``: the sum of each count of
    :data:`LLM_COUNTS`, the episodes that used it and the models its server said it served.

    >>> llm_roles([{"llm/user/calls": 2, "llm/user/repairs": 1, "llm/user/served_model": "m"},
    ...            {"llm/user/calls": 1, "llm/user/served_model": "m"}])["user"]["repairs"]
    1
    >>> llm_roles([{"agent": "passive"}])
    {}
    """
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        for key, value in row.items():
            parts = key.split("/")
            if len(parts) != 3 or parts[0] != "llm":
                continue
            role = out.setdefault(parts[1], {"episodes": 0, **dict.fromkeys(LLM_COUNTS, 0)})
            if parts[2] == "served_model":
                models = role.setdefault("served_models", [])
                if value and value not in models:
                    models.append(value)
            elif parts[2] in LLM_COUNTS:
                role[parts[2]] += int(value or 0)
        for name in {k.split("/")[1] for k in row if k.count("/") == 2 and k.startswith("llm/")}:
            out[name]["episodes"] += 1
    order = [r for r in _ROLE_ORDER if r in out] + sorted(set(out) - set(_ROLE_ORDER))
    return {r: {**out[r], "served_models": out[r].get("served_models", [])} for r in order}


def llm_markdown(roles: dict[str, dict[str, Any]]) -> str:
    """The per-role table of :func:`llm_roles` as Markdown ("" when no LLM part ran).

    >>> print(llm_markdown(llm_roles([{"llm/judge/calls": 2, "llm/judge/json_replies": 1,
    ...     "llm/judge/parsed_first_try": 0, "llm/judge/repairs": 1,
    ...     "llm/judge/served_model": "m"}])).splitlines()[-1])
    | judge | 1 | m | 2 | 1 | 0 of 1 (0 %) | 1 | 0 | 0 | 0 | 0 | 0 |
    """
    if not roles:
        return ""
    lines = [
        "LLM parts (summed over the recorded episodes; parse = JSON replies usable on the first "
        "try; retries, timeouts and fallbacks count the requests made in this run, none for "
        "replies replayed from the cache):",
        "",
        "| role | episodes | served model | calls | JSON replies | parsed first try | repairs "
        "| length retries | parse failures | retries | timeouts | fallbacks |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for role, c in roles.items():
        asked = c["json_replies"]
        parsed = (
            f"{c['parsed_first_try']} of {asked} ({100 * c['parsed_first_try'] / asked:.0f} %)"
            if asked
            else "n/a"
        )
        served = ", ".join(c["served_models"]) or "n/a"
        lines.append(
            f"| {role} | {c['episodes']} | {served} | {c['calls']} | {asked} | {parsed} | "
            f"{c['repairs']} | {c['length_retries']} | {c['parse_failures']} | {c['retries']} | "
            f"{c['timeouts']} | {c['fallbacks']} |"
        )
    return "\n".join(lines)


def run_problems(folder: Path) -> str | None:
    """What went wrong in a run, as one sentence (``None``: every episode was recorded without
    an LLM error): episodes that failed and were not recorded, agents given up on, and recorded
    episodes whose judge or user reported an error (their scores are not real)."""
    from clarify_bench.harness.runfiles import RESULTS, read_metadata, read_results

    metadata = read_metadata(folder) or {}
    failed = metadata.get("failed_episodes") or {}
    rows = read_results(folder / RESULTS) if (folder / RESULTS).exists() else []
    errored: dict[str, int] = {}
    for row in rows:
        if episode_errored(row):
            errored[row["agent"]] = errored.get(row["agent"], 0) + 1
    parts = []
    if failed:
        per = ", ".join(f"{a}: {n}" for a, n in failed.items())
        parts.append(f"{sum(failed.values())} episode(s) failed and were not recorded ({per})")
    if metadata.get("gave_up"):
        parts.append("; ".join(metadata["gave_up"]))
    if errored:
        per = ", ".join(f"{a}: {n}" for a, n in errored.items())
        parts.append(
            f"{sum(errored.values())} recorded episode(s) have an LLM judge or user error ({per}; "
            "see judge_error / user_errors in results.jsonl)"
        )
    if not parts:
        return None
    return (
        "; ".join(parts)
        + f". Summary of what finished: {folder / 'summary.md'}; run again with --resume --out {folder} to retry failed episodes"
    )


def coverage_curves(
    rows: Sequence[dict[str, Any]], agents: Sequence[str] | None = None
) -> dict[str, list[float]]:
    """Mean hidden coverage after 0, 1, 2, ... questions, per agent, up to the longest episode
    of any agent. An episode that ended earlier keeps its final coverage for the later indices.

    >>> rows = [{"agent": "a", "num_hidden": 4, "new_hidden_ids": [[1, 2], [3]]},
    ...         {"agent": "a", "num_hidden": 2, "new_hidden_ids": [[]]}]
    >>> coverage_curves(rows)
    {'a': [0.0, 0.25, 0.375]}
    """
    curves = {}
    length = max((len(r["new_hidden_ids"]) for r in rows), default=0)  # one x axis for all
    for agent in _agent_order(rows, agents):
        mine = [r for r in rows if r["agent"] == agent]
        per_episode = []
        for r in mine:
            total, curve = 0, [0.0]
            for new in r["new_hidden_ids"]:
                total += len(new)
                curve.append(total / r["num_hidden"])
            curve += [curve[-1]] * (length + 1 - len(curve))
            per_episode.append(curve)
        curves[agent] = [
            sum(c[i] for c in per_episode) / len(per_episode) for i in range(length + 1)
        ]
    return curves


def plot_run(
    rows: Sequence[dict[str, Any]], folder: Path, agents: Sequence[str] | None = None
) -> list[Path]:
    """Save ``scores.png`` and ``coverage_by_question.png`` in ``folder``; return their paths."""
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise MissingDependencyError("matplotlib", "bench", "Benchmark plots") from exc

    summaries = summarize(rows, agents)
    names = [s.agent for s in summaries]
    fig = Figure(figsize=(max(5.0, 1.3 * len(names) + 2.0), 4.0), layout="constrained")
    ax = fig.add_subplot()
    width = 0.38
    for offset, (metric, label) in zip(
        (-width / 2, width / 2),
        (("eval/checklist_score", "checklist score"), ("env/hidden_coverage", "hidden coverage")),
        strict=True,
    ):
        means = [s.metrics[metric][0] for s in summaries]
        halves = [
            0.0 if math.isnan(s.metrics[metric][1]) else s.metrics[metric][1] for s in summaries
        ]
        ax.bar(
            [i + offset for i in range(len(names))],
            means,
            width,
            yerr=halves,
            capsize=3,
            label=label,
        )
    ax.set_xticks(range(len(names)), names, rotation=20, ha="right")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("mean over tasks (95 % CI)")
    ax.set_title(f"Score per agent ({sum(s.episodes for s in summaries)} episodes)")
    ax.legend(loc="upper left")
    folder.mkdir(parents=True, exist_ok=True)
    scores = folder / "scores.png"
    fig.savefig(scores, dpi=120)

    fig = Figure(figsize=(6.0, 4.0), layout="constrained")
    ax = fig.add_subplot()
    for agent, curve in coverage_curves(rows, names).items():
        ax.plot(range(len(curve)), curve, marker="o", label=agent)
    ax.set_xlabel("questions asked")
    ax.set_ylabel("mean hidden coverage")
    ax.set_ylim(0, 1.05)
    ax.set_title("Hidden coverage against question index")
    ax.legend(loc="upper left")
    coverage = folder / "coverage_by_question.png"
    fig.savefig(coverage, dpi=120)
    return [scores, coverage]


def summarize_run(folder: Path, *, plots: bool = True, echo: bool = True) -> str:
    """Rebuild ``summary.md`` (and the plots) from ``folder/results.jsonl``; return the table."""
    from clarify_bench.harness.runfiles import RESULTS, RunFilesError, read_metadata, read_results

    rows = read_results(folder / RESULTS)
    if not rows:
        raise RunFilesError(f"{folder / RESULTS} has no episodes to summarise")
    metadata = read_metadata(folder) or {}
    agents = metadata.get("settings", {}).get("agents")
    summaries = summarize(rows, agents)
    table = summary_markdown(summaries)
    errors = errors_markdown(summaries, metadata.get("failed_episodes"))
    env = metadata.get("env", {}).get("id", "?")
    source = metadata.get("task_source", {})
    note = (
        f"{len(rows)} episodes in {folder}; env {env}, tasks {source.get('tasks', '?')} "
        f"(split {source.get('split')}), seeds {metadata.get('settings', {}).get('seeds', '?')}. "
        "Mean over tasks ± 95 % CI half-width (Student t over task means; seeds averaged within "
        "a task). The oracle reads the hidden task: an upper bound, not a baseline."
    )
    llm = llm_markdown(llm_roles(rows))
    llm_part = f"\n{llm}\n" if llm else ""
    (folder / "summary.md").write_text(
        f"# Benchmark summary\n\n{note}\n\n{table}\n\n{errors}\n{llm_part}", encoding="utf-8"
    )
    if echo:
        print(f"\n{table}\n\n{note}\n{errors}" + (f"\n\n{llm}" if llm else ""))
    if plots:
        try:
            paths = plot_run(rows, folder, agents)
        except ImportError as exc:
            print(f"plots skipped: {exc}", file=sys.stderr)
        else:
            if echo:
                print("plots: " + ", ".join(str(p) for p in paths))
    return table
