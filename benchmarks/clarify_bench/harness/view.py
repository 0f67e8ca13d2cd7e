"""See what happened in a run: ``clarify-gym view RUN_DIR [RUN_DIR ...] [--out FILE] [--serve PORT]``.

Writes one self-contained HTML file (``RUN_DIR/index.html`` by default; with several runs,
``compare.html`` in the first run's folder): no server, no network, no external script or
font; the plots are inlined. It shows, per run, the metadata (env id and version, user, writer,
judge, agents and their models, commit), the summary table (mean and 95 % CI over task means,
as ``summary.md``; ``eval/unclear_rate`` and ``eval/question_rate`` too when the rows have
them), the plots, and a grid of tasks × agents coloured by hidden coverage whose cells open the
episodes. An episode page shows the visible task, the dialogue turn by turn with the sentences
each answer cited, the reward terms of each turn, the task's hidden sentences marked with the
question that first drew each out (and the ones never drawn out), the writer's outline, the
judge's verdict per checklist item, and errors and LLM usage. Two episodes (two agents on one
task, or one task in two runs) open side by side, and two (run, agent) pairs compare task by
task (e.g. the base model and a trained adapter).

A run folder is a ``clarify-gym bench`` or ``rescore`` run (``results.jsonl``,
``metadata.json``, ``tasks.json``) or a ``clarify-gym train`` folder whose ``samples.jsonl``
holds sample dialogues logged during training (each update becomes a column, so the page shows
how the policy's questions changed). Runs made before ``tasks.json`` existed still view: the
task text is reloaded from the run's task source when it can be, else the page shows sentence
ids only.

The page renders lazily: only the page on screen is built (the grid shows the first 300 tasks,
then more on demand), so a run of thousands of episodes stays usable.
"""

from __future__ import annotations

import argparse
import base64
import datetime as _dt
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clarify_gym.cli import add_dataclass_arguments, flag, from_args
from clarify_gym.errors import ClarifyGymError

__all__ = [
    "SAMPLES",
    "ViewConfig",
    "ViewError",
    "add_arguments",
    "load_run",
    "page_html",
    "run",
    "serve",
    "write_view",
]

logger = logging.getLogger(__name__)

#: The sample dialogues ``clarify-gym train`` logs into its output folder.
SAMPLES = "samples.jsonl"
#: Plots inlined in the page, in this order (others in the folder are left out).
PLOTS = ("scores.png", "coverage_by_question.png", "learning_curve.png")
#: The row keys the page uses (anything else in a row stays out of the file).
_ROW_KEYS = (
    "agent",
    "task_id",
    "seed",
    "field",
    "num_hidden",
    "return",
    "stopped",
    "dialogue",
    "rewards",
    "reward_terms",
    "answer_kinds",
    "cited_ids",
    "new_hidden_ids",
    "invalid",
    "user_errors",
    "judge_error",
    "outline",
    "checklist_met",
    "checklist_items",
    "elapsed_s",
    "update",
    "rescored_from",
)


class ViewError(ClarifyGymError, ValueError):
    """A folder cannot be viewed (not a run folder, no episodes); the message says why."""


@dataclass
class ViewConfig:
    """Settings of ``clarify-gym view``."""

    run_dirs: tuple[str, ...] = field(metadata=flag(positional=True, metavar="RUN_DIR"))
    """Run folders (clarify-gym bench, rescore or train output); several open side by side."""
    out: str | None = field(default=None, metadata=flag(metavar="FILE"))
    """HTML file to write (default: RUN_DIR/index.html; with several runs, compare.html in the first)."""
    serve: int | None = field(default=None, metadata=flag(metavar="PORT"))
    """Also serve the page on http://127.0.0.1:PORT until Ctrl-C (default: only write the file)."""

    def __post_init__(self) -> None:
        if not self.run_dirs:
            raise ViewError("give at least one run folder")
        if self.serve is not None and not 1 <= self.serve <= 65535:
            raise ViewError(f"--serve takes a port from 1 to 65535, got {self.serve}")


# ---- reading a run -----------------------------------------------------------------------------


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    from clarify_bench.harness.runfiles import read_results

    return read_results(path)


def _part(described: Any) -> str:
    """One line for a user, writer or judge from ``metadata.json``'s ``env.parts``.

    >>> _part({"class": "LLMJudge", "model": "gpt-4o", "base_url": "https://api.openai.com/v1"})
    'LLMJudge: gpt-4o at https://api.openai.com/v1'
    >>> _part({"class": "LexicalJudge"}), _part(None)
    ('LexicalJudge', '?')
    """
    if not isinstance(described, dict):
        return "?" if described is None else str(described)
    text = str(described.get("class", "?"))
    model = described.get("served_model") or described.get("model")
    if model:
        text += f": {model}"
        if described.get("base_url"):
            text += f" at {described['base_url']}"
    return text


def _agent_line(spec: str, meta: Any) -> str:
    if not isinstance(meta, dict):
        return spec
    parts = [str(meta.get("class", "")).rsplit(".", 1)[-1]]
    for key in ("model", "served_model", "adapter", "dtype"):
        if meta.get(key):
            parts.append(f"{key} {meta[key]}")
    return ", ".join(p for p in parts if p)


def _bench_meta(metadata: dict[str, Any]) -> dict[str, Any]:
    env = metadata.get("env", {})
    parts = env.get("parts", {})
    kwargs = env.get("kwargs", {})
    source = metadata.get("task_source", {})
    settings = metadata.get("settings", {})
    rescore = metadata.get("rescore")
    meta = {
        "env": f"{env.get('id', '?')} (version {env.get('version', '?')})",
        "env kwargs": json.dumps(kwargs, sort_keys=True),
        "user": _part(parts.get("user") or {"class": kwargs.get("user", "?")}),
        "writer": _part(parts.get("writer") or {"class": kwargs.get("writer", "template")}),
        "judge": _part(parts.get("judge") or {"class": kwargs.get("judge", "lexical")}),
        "agents": "; ".join(
            f"{spec} ({_agent_line(spec, m)})" for spec, m in metadata.get("agents", {}).items()
        ),
        "tasks": f"{source.get('tasks', '?')} (split {source.get('split')}, "
        f"{source.get('num_tasks', '?')} tasks), seeds {settings.get('seeds', '?')}",
        "commit": str(metadata.get("git_commit")),
        "date": str(metadata.get("date")),
        "command": " ".join(metadata.get("command") or []),
    }
    if rescore:
        meta["rescored from"] = (
            f"{rescore.get('from')} (commit {rescore.get('from_commit')}); writer and judge "
            "re-run on the stored dialogues"
        )
    if metadata.get("failed_episodes"):
        meta["failed episodes"] = json.dumps(metadata["failed_episodes"])
    return meta


def _train_meta(config: dict[str, Any]) -> dict[str, Any]:
    env, model, log = config.get("env", {}), config.get("model", {}), config.get("log", {})
    return {
        "env": str(env.get("env_id", "?")),
        "model": str(model.get("model", "?")),
        "tasks": f"{env.get('tasks', '?')} (split {env.get('split')})",
        "updates": str(log.get("updates", "?")),
        "samples every": f"{log.get('sample_every', '?')} updates",
        "settings": json.dumps(config, sort_keys=True)[:2000],
    }


def _tasks_from_source(source: Any, split: Any, task_ids: set[str]) -> dict[str, dict[str, Any]]:
    """``tasks.json``-style records of ``task_ids``, loaded from the run's task source (for
    runs made before ``tasks.json``); empty when the source cannot be loaded here."""
    from clarify_bench.harness.runfiles import task_record
    from clarify_gym.masking import mask
    from clarify_gym.tasks import load_tasks

    try:
        tasks = load_tasks(str(source), split=split)
    except (ClarifyGymError, OSError, ValueError, ImportError) as exc:
        logger.warning("task text unavailable (%s): the page shows sentence ids only", exc)
        return {}
    return {t.id: task_record(mask(t)) for t in tasks if t.id in task_ids}


def _metric_keys(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The glossary metrics first, then any other ``env/`` or ``eval/`` key the rows carry (e.g.
    ``eval/unclear_rate`` in runs that have it)."""
    from clarify_bench.harness.summary import METRICS

    present = {k for r in rows for k in r if k.startswith(("env/", "eval/"))}
    extra = sorted(present - set(METRICS))
    return [m for m in METRICS if m in present] + extra


def _plot(path: Path) -> dict[str, str]:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return {"name": path.name, "src": f"data:image/png;base64,{data}"}


def load_run(folder: Path) -> dict[str, Any]:
    """Everything the page shows of one run folder (raises :class:`ViewError` if it is none)."""
    from clarify_bench.harness.runfiles import METADATA, RESULTS, read_tasks
    from clarify_bench.harness.summary import summarize

    folder = Path(folder)
    if not folder.is_dir():
        raise ViewError(
            f"{folder} is not a folder; give a run folder (clarify-gym bench --out DIR)"
        )
    if (folder / RESULTS).exists():
        kind = "bench"
        rows = _read_jsonl(folder / RESULTS)
        metadata = (
            json.loads((folder / METADATA).read_text(encoding="utf-8"))
            if (folder / METADATA).exists()
            else {}
        )
        meta = _bench_meta(metadata)
        agents_order = metadata.get("settings", {}).get("agents")
        source = metadata.get("task_source", {})
        task_source, split = source.get("tasks"), source.get("split")
    elif (folder / SAMPLES).exists():
        kind = "train"
        rows = _read_jsonl(folder / SAMPLES)
        config_path = folder / "config.json"
        config = json.loads(config_path.read_text(encoding="utf-8")) if config_path.exists() else {}
        meta = _train_meta(config)
        agents_order = None
        env = config.get("env", {})
        task_source, split = env.get("tasks"), env.get("split")
    else:
        raise ViewError(
            f"{folder} has no {RESULTS} (a clarify-gym bench or rescore run) and no {SAMPLES} "
            "(a clarify-gym train run); give a run folder"
        )
    if not rows:
        raise ViewError(f"{folder} has no episodes yet; view it once some have finished")
    metrics = _metric_keys(rows)
    summaries = summarize(rows, agents_order, metrics)
    task_ids = list(dict.fromkeys(str(r["task_id"]) for r in rows))
    tasks = read_tasks(folder)
    if tasks is None and task_source is not None:
        tasks = _tasks_from_source(task_source, split, set(task_ids))
    tasks = {t: tasks[t] for t in task_ids if tasks and t in tasks}
    episodes = [{k: r[k] for k in (*_ROW_KEYS, *metrics) if k in r} for r in rows]
    for e, r in zip(episodes, rows, strict=True):
        e.update({k: v for k, v in r.items() if k.startswith("llm/")})
    return {
        "name": folder.resolve().name,
        "kind": kind,
        "meta": meta,
        "metrics": metrics,
        "summary": [
            {
                "agent": s.agent,
                "episodes": s.episodes,
                "tasks": s.tasks,
                "errored": s.errored,
                "metrics": {m: [_finite(v) for v in s.metrics[m]] for m in metrics},
            }
            for s in summaries
        ],
        "agents": [s.agent for s in summaries],
        "task_ids": task_ids,
        "tasks": tasks,
        "plots": [_plot(folder / p) for p in PLOTS if (folder / p).exists()],
        "episodes": episodes,
    }


def _finite(value: float) -> float | None:
    return None if value != value else round(value, 6)  # nan -> null


# ---- the page ----------------------------------------------------------------------------------


def _json_for_script(payload: Any) -> str:
    """JSON safe inside ``<script type="application/json">`` (no ``</`` can close it).

    >>> _json_for_script({"a": "</script><b>"})
    '{"a":"<\\\\/script><b>"}'
    """
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.replace("</", "<\\/")


def page_html(runs: Sequence[dict[str, Any]]) -> str:
    """The self-contained page of ``runs`` (each from :func:`load_run`)."""
    from clarify_gym import __version__

    payload = {
        "runs": list(runs),
        "generated": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
        "version": __version__,
    }
    title = "clarify-gym view: " + ", ".join(r["name"] for r in runs)
    return (
        _TEMPLATE.replace("__TITLE__", _escape(title))
        .replace("__CSS__", _CSS)
        .replace("__JS__", _JS)
        .replace("__DATA__", _json_for_script(payload))
    )


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def default_out(run_dirs: Sequence[Path]) -> Path:
    """``RUN_DIR/index.html``; with several runs ``compare.html`` in the first run's folder."""
    return Path(run_dirs[0]) / ("index.html" if len(run_dirs) == 1 else "compare.html")


def write_view(run_dirs: Sequence[Path], out: Path | None = None) -> Path:
    """Write the page of ``run_dirs`` to ``out`` (default :func:`default_out`); return its path."""
    from clarify_gym.files import write_text_atomic

    runs = [load_run(Path(d)) for d in run_dirs]
    path = Path(out) if out is not None else default_out(run_dirs)
    write_text_atomic(path, page_html(runs))
    return path


def serve(path: Path, port: int, *, ready: Any = None) -> None:
    """Serve the page at ``http://127.0.0.1:port/`` until interrupted (``ready(server)`` is
    called once it listens; a test shuts it down with ``server.shutdown()``)."""
    import http.server

    body = Path(path).read_bytes()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?")[0] not in ("/", "/index.html", "/" + Path(path).name):
                self.send_error(404, "only the page is served here")
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            logger.debug(format, *args)

    try:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    except OSError as exc:
        raise ViewError(
            f"cannot serve on 127.0.0.1:{port} ({exc.strerror}); pick another --serve port"
        ) from exc
    with server:
        if ready is not None:
            ready(server)
        server.serve_forever()


# ---- command line ------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``clarify-gym view``: one per :class:`ViewConfig` field."""
    add_dataclass_arguments(parser, ViewConfig)


def run(args: argparse.Namespace) -> int:
    """Run ``clarify-gym view``."""
    cfg = from_args(ViewConfig, args)
    dirs = [Path(d) for d in cfg.run_dirs]
    for d in dirs:
        if not d.is_dir():
            raise ViewError(f"{d} is not a folder; give a run folder (clarify-gym bench --out DIR)")
    out = Path(cfg.out) if cfg.out else default_out(dirs)
    if out.is_dir():
        raise ViewError(f"--out {out} is a folder; give a file name, e.g. {out / 'index.html'}")
    if not out.parent.is_dir():
        raise ViewError(f"--out {out}: folder {out.parent} does not exist; create it first")
    started = time.perf_counter()
    path = write_view(dirs, out)
    size = path.stat().st_size
    print(f"wrote {path} ({size / 1e6:.2f} MB in {time.perf_counter() - started:.2f} s)")
    if cfg.serve is not None:

        def ready(_: Any) -> None:
            print(f"serving on http://127.0.0.1:{cfg.serve}/ (Ctrl-C stops)", flush=True)

        serve(path, cfg.serve, ready=ready)
    return 0


# ---- the template (inline CSS and JavaScript, no external resource) ----------------------------

_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>__TITLE__</title>
<style>__CSS__</style>
</head>
<body>
<header><a href="#" id="home">clarify-gym view</a> <span id="crumbs"></span></header>
<main id="app"><p>Loading…</p></main>
<script type="application/json" id="data">__DATA__</script>
<script>__JS__</script>
</body>
</html>
"""

_CSS = """
:root { --fg: #1d2329; --muted: #5f6b76; --line: #d8dde2; --bg: #fff; --soft: #f4f6f8;
  --new: #1a7f37; --hid: #8250df; --bad: #cf222e; --link: #0a58ca; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg);
  background: var(--bg); }
header { padding: 8px 16px; border-bottom: 1px solid var(--line); background: var(--soft);
  position: sticky; top: 0; z-index: 2; }
header a { color: var(--fg); font-weight: 600; text-decoration: none; }
#crumbs { color: var(--muted); }
main { padding: 12px 16px 40px; max-width: 1500px; }
a { color: var(--link); }
h2 { margin: 18px 0 6px; font-size: 18px; }
h3 { margin: 14px 0 6px; font-size: 15px; }
table { border-collapse: collapse; margin: 6px 0; }
th, td { border: 1px solid var(--line); padding: 3px 7px; text-align: left; vertical-align: top; }
th { background: var(--soft); font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.meta td:first-child { color: var(--muted); white-space: nowrap; }
.meta td { max-width: 1100px; overflow-wrap: anywhere; }
.muted { color: var(--muted); }
.plots { display: flex; flex-wrap: wrap; align-items: flex-start; gap: 8px; }
.plots img { max-width: 460px; width: 100%; border: 1px solid var(--line); }
.grid td.cell { padding: 0; width: 56px; height: 22px; }
.grid .seeds { display: flex; height: 100%; }
.grid .seeds a { flex: 1; display: block; text-align: center; font-size: 11px; line-height: 22px;
  color: inherit; text-decoration: none; min-width: 10px; }
.grid .seeds a:hover { outline: 2px solid #000; outline-offset: -2px; }
.grid .seeds a.err { box-shadow: inset 0 0 0 2px var(--bad); }
.grid th.task { font-weight: normal; white-space: nowrap; }
.legend span { display: inline-block; width: 34px; text-align: center; font-size: 11px; }
.cols { display: flex; gap: 18px; align-items: flex-start; }
.cols > div { flex: 1; min-width: 0; }
.turn { border: 1px solid var(--line); border-radius: 6px; padding: 6px 9px; margin: 8px 0; }
.q { font-weight: 600; }
.q::before { content: attr(data-n) " "; color: var(--muted); font-weight: normal; }
.a { margin: 4px 0 2px; white-space: pre-wrap; }
.kind { font-size: 11px; padding: 0 5px; border-radius: 8px; background: var(--soft);
  border: 1px solid var(--line); color: var(--muted); margin-left: 6px; }
.cites { margin: 4px 0 0 0; padding: 0; list-style: none; font-size: 12.5px; }
.cites li { margin: 2px 0; }
.sid { font-family: ui-monospace, monospace; font-size: 12px; color: var(--muted); }
.hidden-s { color: var(--hid); }
.new-s { color: var(--new); font-weight: 600; }
.terms { font-size: 12px; color: var(--muted); margin-top: 3px; }
.badge { display: inline-block; font-size: 11px; padding: 0 6px; border-radius: 8px; margin-right: 4px;
  white-space: nowrap; }
.drawn { background: #dafbe1; color: var(--new); border: 1px solid #a8e6b6; }
.never { background: #ffebe9; color: var(--bad); border: 1px solid #ffc1bc; }
.met { color: var(--new); font-weight: 700; }
.unmet { color: var(--bad); font-weight: 700; }
.errors { border: 1px solid #ffc1bc; background: #fff5f4; padding: 6px 10px; border-radius: 6px; }
pre { white-space: pre-wrap; background: var(--soft); padding: 8px; border-radius: 6px; margin: 4px 0;
  font: 12.5px/1.4 ui-monospace, monospace; max-height: 520px; overflow: auto; }
.chips span { display: inline-block; border: 1px solid var(--line); border-radius: 10px; padding: 0 8px;
  margin: 2px 4px 2px 0; background: var(--soft); font-size: 12.5px; }
nav.ep { margin: 4px 0 8px; }
nav.ep a, nav.ep select, nav.ep button { margin-right: 10px; }
ol.sents { padding-left: 0; list-style: none; }
ol.sents li { margin: 3px 0; }
details > summary { cursor: pointer; color: var(--muted); }
"""

_JS = r"""
"use strict";
const DATA = JSON.parse(document.getElementById("data").textContent);
const RUNS = DATA.runs;
const app = document.getElementById("app");
const crumbs = document.getElementById("crumbs");
const GRID_PAGE = 300;

function el(tag, attrs, ...kids) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const kid of kids.flat()) {
    if (kid === null || kid === undefined || kid === false) continue;
    node.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return node;
}
function fmt(x, digits) {
  if (x === null || x === undefined || Number.isNaN(x)) return "n/a";
  return Number(x).toFixed(digits === undefined ? 3 : digits);
}
const COUNTS = new Set(["env/new_info", "env/paper_reward", "env/questions"]);
function cellText(metric, pair) {
  const d = COUNTS.has(metric) ? 2 : 3;
  if (!pair || pair[0] === null) return "n/a";
  return pair[1] === null ? fmt(pair[0], d) : fmt(pair[0], d) + " ± " + fmt(pair[1], d);
}
function metricTitle(m) { return m.split("/")[1].replace(/_/g, " "); }
function colour(c) {  // hidden coverage in [0, 1] -> white .. deep blue
  if (c === null || c === undefined) return "#eee";
  const light = 96 - 58 * Math.max(0, Math.min(1, c));
  return "hsl(212, 75%, " + light + "%)";
}
function ink(c) { return c !== null && c > 0.62 ? "#fff" : "#1d2329"; }
function href(...parts) { return "#" + parts.map((p) => encodeURIComponent(String(p))).join("/"); }
function runLabel(r) { return RUNS.length > 1 ? RUNS[r].name + " · " : ""; }
function epLabel(r, ep) { return runLabel(r) + ep.agent + " on " + ep.task_id + " (seed " + ep.seed + ")"; }
function cov(ep) { const v = ep["env/hidden_coverage"]; return v === undefined ? null : v; }
function errored(ep) { return Boolean(ep.judge_error) || (ep.user_errors || []).some(Boolean); }

// t quantile at 0.975 (table to 30 degrees of freedom, Cornish-Fisher beyond)
const T975 = [NaN, 12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201,
  2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060,
  2.056, 2.052, 2.048, 2.045, 2.042];
function t975(df) {
  if (df < T975.length) return T975[df];
  const z = 1.959964;
  return z + (z ** 3 + z) / (4 * df) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * df * df);
}
function meanCI(xs) {
  const n = xs.length;
  if (!n) return [null, null];
  const m = xs.reduce((a, b) => a + b, 0) / n;
  if (n < 2) return [m, null];
  const sd = Math.sqrt(xs.reduce((a, b) => a + (b - m) ** 2, 0) / (n - 1));
  return [m, t975(n - 1) * sd / Math.sqrt(n)];
}

// ---- indexes, built once per run on first use ----
const INDEX = [];
function index(r) {
  if (INDEX[r]) return INDEX[r];
  const run = RUNS[r];
  const byCell = new Map();  // agent \u0000 task -> [episode index]
  const byTask = new Map();
  run.episodes.forEach((ep, i) => {
    const key = ep.agent + "\u0000" + ep.task_id;
    if (!byCell.has(key)) byCell.set(key, []);
    byCell.get(key).push(i);
    if (!byTask.has(ep.task_id)) byTask.set(ep.task_id, []);
    byTask.get(ep.task_id).push(i);
  });
  for (const list of byCell.values()) list.sort((a, b) => run.episodes[a].seed - run.episodes[b].seed);
  INDEX[r] = { byCell, byTask };
  return INDEX[r];
}

// ---- overview ----
function overview() {
  crumbs.textContent = "";
  app.replaceChildren();
  if (RUNS.length > 1 || RUNS.some((run) => run.agents.length > 1)) app.append(compareForm());
  RUNS.forEach((run, r) => app.append(runSection(run, r)));
  app.append(el("p", { class: "muted" }, "Made by clarify-gym " + DATA.version + " on " + DATA.generated +
    ". The hidden task text appears only here and in the run folder, never in what an agent saw."));
}
function runSection(run, r) {
  const sec = el("section", { id: "run-" + r });
  sec.append(el("h2", {}, (RUNS.length > 1 ? "Run " + (r + 1) + ": " : "") + run.name +
    (run.kind === "train" ? " (training samples)" : "")));
  const meta = el("table", { class: "meta" });
  for (const [k, v] of Object.entries(run.meta)) meta.append(el("tr", {}, el("td", {}, k), el("td", {}, v)));
  sec.append(el("details", { open: run.kind === "bench" ? "" : null }, el("summary", {}, "Run metadata"), meta));
  sec.append(summaryTable(run));
  sec.append(grid(run, r));
  if (run.plots.length) {
    const box = el("div", { class: "plots" });
    for (const p of run.plots) box.append(el("img", { src: p.src, alt: p.name, title: p.name }));
    sec.append(el("details", { open: "" }, el("summary", {}, "Plots"), box));
  }
  return sec;
}
function summaryTable(run) {
  const head = el("tr", {}, el("th", {}, run.kind === "train" ? "update" : "agent"),
    el("th", { class: "num" }, "episodes"), el("th", { class: "num" }, "tasks"),
    run.metrics.map((m) => el("th", { class: "num", title: m }, metricTitle(m))),
    el("th", { class: "num", title: "episodes with an LLM judge or user error" }, "errored"));
  const table = el("table", { class: "summary" }, head);
  for (const s of run.summary) {
    table.append(el("tr", {}, el("td", {}, s.agent), el("td", { class: "num" }, s.episodes),
      el("td", { class: "num" }, s.tasks),
      run.metrics.map((m) => el("td", { class: "num" }, cellText(m, s.metrics[m]))),
      el("td", { class: "num" }, s.errored)));
  }
  return el("div", {}, el("h3", {}, "Summary"), table,
    el("p", { class: "muted" }, "Mean over tasks ± half-width of the 95 % Student t interval over task means (a task's seeds are averaged first)."));
}
function grid(run, r) {
  const idx = index(r);
  const wrap = el("div", {});
  wrap.append(el("h3", {}, "Tasks × " + (run.kind === "train" ? "updates" : "agents") +
    ", coloured by hidden coverage (click a cell for the episode; one square per seed; red edge: an LLM error)"));
  const legend = el("div", { class: "legend" });
  for (const c of [0, 0.2, 0.4, 0.6, 0.8, 1]) legend.append(el("span", { style: "background:" + colour(c) + ";color:" + ink(c) }, c.toFixed(1)));
  wrap.append(legend);
  const table = el("table", { class: "grid" });
  table.append(el("tr", {}, el("th", {}, "task"), el("th", {}, "field"),
    run.agents.map((a) => el("th", { title: a }, a.length > 18 ? a.slice(0, 16) + "…" : a))));
  const tbody = el("tbody", {});
  table.append(tbody);
  let shown = 0;
  function more() {
    const stop = Math.min(run.task_ids.length, shown + GRID_PAGE);
    for (; shown < stop; shown++) {
      const t = run.task_ids[shown];
      const tr = el("tr", {}, el("th", { class: "task" }, el("a", { href: href("t", r, t) }, t)),
        el("td", { class: "muted" }, (run.tasks[t] || {}).field || (run.episodes[idx.byTask.get(t)[0]] || {}).field || ""));
      for (const a of run.agents) {
        const eps = idx.byCell.get(a + "\u0000" + t) || [];
        const seeds = el("div", { class: "seeds" });
        for (const i of eps) {
          const ep = run.episodes[i];
          const c = cov(ep);
          seeds.append(el("a", { href: href("e", r, i), class: errored(ep) ? "err" : null,
            style: "background:" + colour(c) + ";color:" + ink(c),
            title: epLabel(r, ep) + ": coverage " + fmt(c) + ", checklist " + fmt(ep["eval/checklist_score"]) },
            eps.length <= 2 ? fmt(c, 2) : ""));
        }
        tr.append(el("td", { class: "cell" }, seeds));
      }
      tbody.append(tr);
    }
    button.hidden = shown >= run.task_ids.length;
    button.textContent = "show " + Math.min(GRID_PAGE, run.task_ids.length - shown) + " more tasks (" + (run.task_ids.length - shown) + " left)";
  }
  const button = el("button", { onclick: more });
  wrap.append(table, button);
  more();
  return wrap;
}
function pairOptions() {
  const opts = [];
  RUNS.forEach((run, r) => run.agents.forEach((a) => opts.push([r, a])));
  return opts;
}
function compareForm() {
  const opts = pairOptions();
  const mk = (sel) => { const s = el("select", {}); opts.forEach(([r, a], k) => s.append(el("option", { value: k, selected: k === sel ? "" : null }, runLabel(r) + a))); return s; };
  const a = mk(0), b = mk(Math.min(1, opts.length - 1));
  const go = el("button", { id: "compare-go", onclick: () => { const [ra, aa] = opts[a.value], [rb, ab] = opts[b.value]; location.hash = href("c", ra, aa, rb, ab); } }, "compare task by task");
  return el("p", {}, "Compare ", a, " with ", b, " ", go);
}

// ---- task page: every agent on one task ----
function taskPage(r, t) {
  const run = RUNS[r], task = run.tasks[t], eps = (index(r).byTask.get(t) || []).map((i) => [i, run.episodes[i]]);
  crumbs.textContent = "› " + runLabel(r) + t;
  app.replaceChildren(el("h2", {}, t + (task ? " · " + task.field : "")));
  if (task) app.append(el("details", {}, el("summary", {}, "Visible task (what every agent saw)"), el("pre", {}, task.visible_text)));
  const head = el("tr", {}, el("th", {}, "hidden sentence"), eps.map(([i, ep]) => el("th", {}, el("a", { href: href("e", r, i) }, ep.agent + (eps.length > run.agents.length ? " s" + ep.seed : "")))));
  const table = el("table", {}, head);
  const hidden = task ? task.sentences.filter((s) => s[2]) : [];
  for (const s of hidden) {
    table.append(el("tr", {}, el("td", {}, el("span", { class: "sid" }, "[" + s[0] + "] " + s[1] + " "), s[3]),
      eps.map(([, ep]) => { const n = firstTurn(ep, s[0]); return el("td", { class: "num" }, n ? el("span", { class: "badge drawn" }, "Q" + n) : el("span", { class: "badge never" }, "never")); })));
  }
  if (hidden.length) app.append(el("h3", {}, "Which question first drew out each hidden sentence"), table);
  app.append(el("h3", {}, "Questions asked"));
  const qs = el("table", {}, el("tr", {}, el("th", {}, "episode"), el("th", { class: "num" }, "coverage"), el("th", {}, "questions")));
  for (const [i, ep] of eps) {
    qs.append(el("tr", {}, el("td", {}, el("a", { href: href("e", r, i) }, ep.agent + " s" + ep.seed)),
      el("td", { class: "num" }, fmt(cov(ep))),
      el("td", {}, el("ol", {}, (ep.dialogue || []).map((d, k) => el("li", {}, d.question, " ", el("span", { class: "muted" }, "(+" + ((ep.new_hidden_ids || [])[k] || []).length + " new)")))))));
  }
  app.append(qs);
}
function firstTurn(ep, id) {
  const turns = ep.new_hidden_ids || [];
  for (let k = 0; k < turns.length; k++) if (turns[k].includes(id)) return k + 1;
  return 0;
}

// ---- episode page ----
function episodeNav(r, i) {
  const run = RUNS[r], ep = run.episodes[i];
  const nav = el("nav", { class: "ep" });
  nav.append(el("a", { href: href("t", r, ep.task_id) }, "all agents on " + ep.task_id));
  const seeds = index(r).byCell.get(ep.agent + "\u0000" + ep.task_id) || [];
  if (seeds.length > 1) nav.append("seeds: ", seeds.map((j) => j === i ? el("b", {}, ep.seed + " ") : el("a", { href: href("e", r, j) }, run.episodes[j].seed)));
  const same = [];
  RUNS.forEach((other, r2) => (index(r2).byTask.get(ep.task_id) || []).forEach((j) => {
    if (r2 === r && j === i) return;
    const o = other.episodes[j];
    if (o.seed === ep.seed || other.agents.length === 1 || RUNS.length > 1) same.push([r2, j, epLabel(r2, o)]);
  }));
  if (same.length) {
    const sel = el("select", { id: "pair-with" }, same.map(([r2, j, label]) => el("option", { value: r2 + "/" + j }, label)));
    nav.append("side by side with ", sel, el("button", { id: "pair-go", onclick: () => { const [r2, j] = sel.value.split("/"); location.hash = href("p", r, i, r2, j); } }, "open"));
  }
  return nav;
}
function episodePage(r, i) {
  const run = RUNS[r], ep = run.episodes[i];
  if (!ep) return notFound();
  crumbs.textContent = "› " + epLabel(r, ep);
  app.replaceChildren(el("h2", {}, epLabel(r, ep)), episodeNav(r, i));
  const task = run.tasks[ep.task_id];
  const left = el("div", {}, task ? el("details", { open: "" }, el("summary", {}, "Visible task (what the agent saw)"), el("pre", { id: "visible" }, task.visible_text)) : null,
    el("h3", {}, "Dialogue"), dialogue(ep, task));
  const right = el("div", {}, hiddenList(ep, task), checklist(ep, task), outline(ep));
  app.append(...[header(run, ep), errorsBox(ep), el("div", { class: "cols" }, left, right)].filter(Boolean));
}
function pairPage(r1, i1, r2, i2) {
  const a = RUNS[r1] && RUNS[r1].episodes[i1], b = RUNS[r2] && RUNS[r2].episodes[i2];
  if (!a || !b) return notFound();
  crumbs.textContent = "› side by side";
  app.replaceChildren(el("h2", {}, "Side by side: " + a.task_id + (a.task_id !== b.task_id ? " / " + b.task_id : "")));
  const col = (r, i, ep) => {
    const task = RUNS[r].tasks[ep.task_id];
    return el("div", {}, el("h3", {}, el("a", { href: href("e", r, i) }, epLabel(r, ep))), header(RUNS[r], ep), errorsBox(ep),
      el("h3", {}, "Dialogue"), dialogue(ep, task), hiddenList(ep, task), checklist(ep, task), outline(ep));
  };
  app.append(el("div", { class: "cols" }, col(r1, i1, a), col(r2, i2, b)));
}
function header(run, ep) {
  const chips = el("div", { class: "chips" });
  for (const m of run.metrics) if (ep[m] !== undefined) chips.append(el("span", { title: m }, metricTitle(m) + " " + fmt(ep[m], COUNTS.has(m) ? 0 : 3)));
  if (ep.return !== undefined) chips.append(el("span", {}, "return " + fmt(ep.return)));
  if (ep.stopped !== undefined) chips.append(el("span", {}, ep.stopped ? "ended by STOP" : "question budget spent"));
  if (ep.elapsed_s !== undefined) chips.append(el("span", {}, fmt(ep.elapsed_s, 2) + " s"));
  const usage = Object.keys(ep).filter((k) => k.startsWith("llm/"));
  if (usage.length) chips.append(el("span", { title: "LLM usage of the user, writer and judge" }, "LLM " + usage.map((k) => k.slice(4).replace(/_/g, " ") + " " + ep[k]).join(", ")));
  return chips;
}
function errorsBox(ep) {
  const items = [];
  if (ep.judge_error) items.push("judge: " + ep.judge_error);
  (ep.user_errors || []).forEach((e, k) => { if (e) items.push("user, question " + (k + 1) + ": " + e); });
  (ep.invalid || []).forEach((e, k) => { if (e) items.push("question " + (k + 1) + " invalid: " + e); });
  if (!items.length) return null;
  return el("div", { class: "errors" }, el("b", {}, "Errors"), el("ul", {}, items.map((t) => el("li", {}, t))));
}
function sentence(task, id) {
  if (!task) return null;
  const s = task.sentences[id];
  return s && s[0] === id ? s : task.sentences.find((x) => x[0] === id) || null;
}
function dialogue(ep, task) {
  const box = el("div", { class: "dialogue" });
  const turns = ep.dialogue || [];
  if (!turns.length) box.append(el("p", { class: "muted" }, "No questions: the agent said STOP at once."));
  turns.forEach((turn, k) => {
    const cited = (ep.cited_ids || [])[k] || [], fresh = new Set((ep.new_hidden_ids || [])[k] || []);
    const kind = (ep.answer_kinds || [])[k];
    const list = el("ul", { class: "cites" });
    for (const id of cited) {
      const s = sentence(task, id);
      const hidden = s ? s[2] : fresh.has(id);
      list.append(el("li", { class: fresh.has(id) ? "new-s" : hidden ? "hidden-s" : null },
        el("span", { class: "sid" }, "[" + id + "]" + (s ? " " + s[1] : "") + (fresh.has(id) ? " new" : hidden ? " hidden, drawn out before" : " visible") + " "),
        s ? s[3] : ""));
    }
    const terms = (ep.reward_terms || [])[k];
    const reward = (ep.rewards || [])[k];
    const termText = terms ? Object.entries(terms).map(([n, v]) => n.replace(/_/g, " ") + " " + fmt(v)).join(", ") : "";
    box.append(el("div", { class: "turn" },
      el("div", { class: "q", "data-n": "Q" + (k + 1) }, turn.question),
      el("div", { class: "a" }, turn.answer, kind ? el("span", { class: "kind" }, kind) : null),
      cited.length ? list : el("div", { class: "terms" }, "cited nothing"),
      el("div", { class: "terms" }, "reward " + fmt(reward) + (termText ? " = " + termText : ""))));
  });
  return box;
}
function hiddenList(ep, task) {
  const box = el("div", {});
  if (!task) {
    const drawn = (ep.new_hidden_ids || []).flat();
    box.append(el("h3", {}, "Hidden sentences"), el("p", { class: "muted" },
      "Task text unavailable (no tasks.json, and the task source cannot be loaded here). Drawn out: " + (drawn.join(", ") || "none") + " of " + ep.num_hidden + "."));
    return box;
  }
  const hidden = task.sentences.filter((s) => s[2]);
  const drawn = hidden.filter((s) => firstTurn(ep, s[0])).length;
  box.append(el("h3", {}, "Hidden sentences: " + drawn + " of " + hidden.length + " drawn out"));
  const list = el("ol", { class: "sents" });
  for (const s of hidden) {
    const n = firstTurn(ep, s[0]);
    const again = [];
    (ep.cited_ids || []).forEach((c, k) => { if (c.includes(s[0]) && k + 1 !== n) again.push("Q" + (k + 1)); });
    list.append(el("li", { class: n ? null : "muted" },
      n ? el("span", { class: "badge drawn" }, "Q" + n) : el("span", { class: "badge never" }, "never"),
      el("span", { class: "sid" }, "[" + s[0] + "] " + s[1] + " "), s[3],
      again.length ? el("span", { class: "muted" }, " (cited again: " + again.join(", ") + ")") : null));
  }
  box.append(list);
  return box;
}
function checklist(ep, task) {
  const box = el("div", {});
  const met = ep.checklist_met || [];
  const items = ep.checklist_items ? ep.checklist_items.map((t) => [t, ""]) : task ? task.checklist : null;
  const score = ep["eval/checklist_score"];
  box.append(el("h3", {}, "Judge's verdict per checklist item (score " + fmt(score) + ")"));
  if (!met.length) { box.append(el("p", { class: "muted" }, ep.judge_error ? "No verdict: " + ep.judge_error : "No checklist items.")); return box; }
  const list = el("ol", { class: "sents" });
  met.forEach((ok, k) => {
    const item = items && items[k];
    list.append(el("li", {}, el("span", { class: ok ? "met" : "unmet" }, ok ? "✓ " : "✗ "),
      item ? item[0] : "item " + (k + 1), item && item[1] ? el("span", { class: "sid" }, " (" + item[1] + ")") : null));
  });
  box.append(list);
  return box;
}
function outline(ep) {
  if (ep.outline === undefined) return null;
  return el("div", {}, el("h3", {}, "Writer's outline"), el("pre", { class: "outline" }, ep.outline || "(empty)"));
}

// ---- two (run, agent) pairs task by task ----
function comparePage(ra, aa, rb, ab) {
  const A = RUNS[ra], B = RUNS[rb];
  if (!A || !B) return notFound();
  crumbs.textContent = "› compare";
  app.replaceChildren(el("h2", {}, runLabel(ra) + aa + " vs " + runLabel(rb) + ab));
  const pick = (run, r, agent, t) => (index(r).byCell.get(agent + "\u0000" + t) || []).map((i) => [i, run.episodes[i]]);
  const mean = (eps, m) => { const v = eps.map(([, e]) => e[m]).filter((x) => x !== undefined && x !== null); return v.length ? v.reduce((a, b) => a + b, 0) / v.length : null; };
  const metrics = ["env/hidden_coverage", "eval/checklist_score"].filter((m) => A.metrics.includes(m) && B.metrics.includes(m));
  const diffs = Object.fromEntries(metrics.map((m) => [m, []]));
  const table = el("table", {}, el("tr", {}, el("th", {}, "task"),
    metrics.map((m) => [el("th", { class: "num" }, metricTitle(m) + " A"), el("th", { class: "num" }, "B"), el("th", { class: "num" }, "B − A")]),
    el("th", {}, "side by side")));
  for (const t of A.task_ids) {
    const ea = pick(A, ra, aa, t), eb = pick(B, rb, ab, t);
    if (!ea.length || !eb.length) continue;
    const cells = metrics.map((m) => {
      const x = mean(ea, m), y = mean(eb, m);
      if (x !== null && y !== null) diffs[m].push(y - x);
      return [el("td", { class: "num" }, fmt(x)), el("td", { class: "num" }, fmt(y)), el("td", { class: "num" }, x === null || y === null ? "n/a" : (y - x >= 0 ? "+" : "") + fmt(y - x))];
    });
    const seed = eb.find(([, e]) => e.seed === ea[0][1].seed) || eb[0];
    table.append(el("tr", {}, el("td", {}, el("a", { href: href("t", ra, t) }, t)), cells,
      el("td", {}, el("a", { href: href("p", ra, ea[0][0], rb, seed[0]) }, "open"))));
  }
  const lines = metrics.map((m) => { const [d, h] = meanCI(diffs[m]); return el("li", {}, metricTitle(m) + ": B − A = " + (d === null ? "n/a" : (d >= 0 ? "+" : "") + fmt(d) + (h === null ? "" : " ± " + fmt(h))) + " over " + diffs[m].length + " paired tasks (95 % t interval)"); });
  app.append(el("ul", {}, lines), table);
}

function notFound() {
  crumbs.textContent = "";
  app.replaceChildren(el("p", {}, "Nothing here. ", el("a", { href: "#" }, "Back to the overview.")));
}
function route() {
  const started = performance.now();
  render();
  window.viewRenderMs = performance.now() - started;  // read by the browser study
}
function render() {
  const parts = location.hash.slice(1).split("/").filter((p) => p !== "").map(decodeURIComponent);
  const n = (k) => Number(parts[k]);
  window.scrollTo(0, 0);
  if (!parts.length) return overview();
  if (parts[0] === "e" && RUNS[n(1)]) return episodePage(n(1), n(2));
  if (parts[0] === "t" && RUNS[n(1)]) return taskPage(n(1), parts[2]);
  if (parts[0] === "p") return pairPage(n(1), n(2), n(3), n(4));
  if (parts[0] === "c") return comparePage(n(1), parts[2], n(3), parts[4]);
  return notFound();
}
window.addEventListener("hashchange", route);
route();
"""
