"""How faithful is an offline user, and how hard is it to game? Gold labels and adversaries.

Run: ``python -m clarify_bench.studies.user_fidelity [--labels FILE ...] [--tasks SOURCE]
[--users faithful,lexical,embedding,faithful-hybrid,llm]``. Default labels: the bundled test
split (``clarify_gym/data/oracle_labels_test.jsonl``); the faithful user was tuned on the train
split only.

1. **Fidelity**, per user and per label ``type``: each label's question is put to the user at
   the start of an episode; precision / recall / F1 of the cited *hidden* ids against the gold
   citations (micro-averaged), accuracy of the answer kind (answer / pointer / nothing /
   unclear), and Spearman / MAE of the per-question new-info reward ``|A(q) ∩ H| / |H|``.
2. **Adversaries**, for the default user (:data:`DEFAULT_USER`): the mean episode return of
   each question set on the test tasks, as a ratio to the ``generic`` agent's
   (:data:`~clarify_gym.questions.TOP_GENERIC_QUESTIONS`, five questions), under the
   new-info reward and under the paper's binary reward. Sets are built from the tasks with
   fixed seeds (:mod:`clarify_bench.studies.adversaries`); the two sets that are *chosen* (``cue_words``:
   the five bare cue words that score best; ``legit_train_choice``: the five bank questions
   that score best) are chosen on the train tasks and measured on the test tasks.

An ``llm`` user takes its endpoint from ``CLARIFY_GYM_USER_BASE_URL`` /
``CLARIFY_GYM_LLM_BASE_URL`` (or ``--llm-base-url`` / ``--llm-model``). The last line printed
is one JSON object ``{"default_user": ..., "users": {...}, "adversaries": {...}, ...}``, also
stored in ``benchmarks/results/user_fidelity.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from clarify_bench.studies.adversaries import adversary_table
from clarify_bench.studies.fidelity_metrics import Outcome, fidelity
from clarify_gym.dialogue import EpisodeState
from clarify_gym.errors import ClarifyGymError
from clarify_gym.files import git_commit, write_json_atomic
from clarify_gym.labels import GoldLabel, bundled_labels, load_labels
from clarify_gym.masking import mask
from clarify_gym.tasks import Task, load_tasks
from clarify_gym.users import SimulatedUser, make_user

__all__ = ["DEFAULT_USER", "USERS", "answer_labels", "main", "run"]

RESULTS = Path(__file__).resolve().parents[2] / "results" / "user_fidelity.json"
#: The default user of ``ProactiveGather-v1``.
DEFAULT_USER = "faithful"
#: Users the benchmark knows by name (any :func:`~clarify_gym.users.make_user` name works).
USERS = ("faithful", "lexical", "embedding", "faithful-hybrid", "llm")
#: Targets of issue 11, on the test labels.
TARGETS = {"hidden_f1": 0.75, "kind_accuracy": 0.85, "salad_stuffing_max": 0.3, "any_max": 0.8}


def answer_labels(
    user: SimulatedUser, labels: Sequence[GoldLabel], tasks: Sequence[Task], *, k: int = 3
) -> list[Outcome]:
    """Each label's question answered by ``user`` at the start of an episode."""
    masked = {t.id: mask(t) for t in tasks}
    outcomes = []
    for label in labels:
        task = masked[label.task_id]
        answer = user.answer(label.question, EpisodeState(task=task, max_questions=5))
        hidden = frozenset(i for i in answer.cited_ids[:k] if i in task.hidden_ids)
        outcomes.append(
            Outcome(
                type=label.type,
                gold_kind=label.answer_kind,
                kind=answer.kind,
                gold_hidden=label.hidden_ids(task),
                hidden=hidden,
                num_hidden=len(task.hidden_ids),
            )
        )
    return outcomes


def _user(name: str, args: argparse.Namespace) -> SimulatedUser:
    if name == "llm" and (args.llm_base_url or args.llm_model):
        from clarify_gym.llm import LLMClient, LLMConfig
        from clarify_gym.users.llm import LLMUser

        config = LLMConfig(base_url=args.llm_base_url, model=args.llm_model)
        return LLMUser(k=3, client=LLMClient(config, role="user"))
    return make_user(name, k=3)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """The whole benchmark as one JSON-ready dict."""
    tasks = load_tasks(args.tasks)
    label_files = args.labels or [str(bundled_labels("test"))]
    labels = load_labels(label_files, tasks)
    users: dict[str, Any] = {}
    for name in args.users:
        start = time.perf_counter()
        outcomes = answer_labels(_user(name, args), labels, tasks)
        by_type: dict[str, list[Outcome]] = defaultdict(list)
        for o in outcomes:
            by_type[o.type].append(o)
        users[name] = {
            **fidelity(outcomes),
            "seconds": round(time.perf_counter() - start, 2),
            "by_type": {t: fidelity(rows) for t, rows in sorted(by_type.items())},
        }
    result: dict[str, Any] = {
        "benchmark": "user_fidelity",
        "default_user": args.default_user,
        "labels": [Path(f).name for f in label_files],
        "tasks": args.tasks,
        "users": users,
    }
    if not args.no_adversaries:
        table = adversary_table(tasks, user=args.default_user, seed=args.seed)
        result.update(table)
    result["targets"] = _targets(result)
    result["git_commit"] = git_commit()
    return result


def _targets(result: dict[str, Any]) -> dict[str, Any]:
    default = result["users"].get(result["default_user"], {})
    out: dict[str, Any] = {
        "hidden_f1_ge_0.75": (default.get("hidden_f1") or 0) >= TARGETS["hidden_f1"],
        "kind_accuracy_ge_0.85": (default.get("kind_accuracy") or 0) >= TARGETS["kind_accuracy"],
    }
    ratios = result.get("adversaries")
    if ratios:
        worst = TARGETS["salad_stuffing_max"]
        out["salad_and_stuffing_le_0.3"] = all(
            ratios[s] <= worst for s in ("keyword_salad", "visible_stuffing")
        )
        out["no_adversary_ge_0.8"] = all(v < TARGETS["any_max"] for v in ratios.values())
        out["legit_train_choice_beats_generic"] = result["legit_train_choice_ratio"] > 1.0
    return out


def build_parser() -> argparse.ArgumentParser:
    """The benchmark's command-line options."""
    p = argparse.ArgumentParser(
        prog="python -m clarify_bench.studies.user_fidelity", description=__doc__
    )
    p.add_argument("--labels", action="append", help="a label file (repeatable); default: test")
    p.add_argument("--tasks", default="sample", help="task source (default: the bundled tasks)")
    p.add_argument(
        "--users", default="faithful,lexical,embedding,faithful-hybrid", help="comma-separated"
    )
    p.add_argument("--default-user", default=DEFAULT_USER, help="the user of the adversary table")
    p.add_argument("--seed", type=int, default=0, help="seed of the generated adversary sets")
    p.add_argument("--no-adversaries", action="store_true", help="fidelity only")
    p.add_argument("--llm-base-url", help="endpoint of the llm user (else from the environment)")
    p.add_argument("--llm-model", help="model of the llm user (else from the environment)")
    p.add_argument("--out", default=str(RESULTS), help="where to store the JSON ('' to skip)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.users = [u.strip() for u in args.users.split(",") if u.strip()]
    try:
        result = run(args)
    except (ClarifyGymError, ValueError) as exc:
        print(f"user_fidelity: {exc}", file=sys.stderr)
        return 2
    for name, row in result["users"].items():
        print(
            f"{name:16} hidden F1 {row['hidden_f1']:.3f}  kind acc {row['kind_accuracy']:.3f}  "
            f"reward rho {row['reward_spearman']}  MAE {row['reward_mae']}",
            file=sys.stderr,
        )
    if args.out:
        write_json_atomic(Path(args.out), result)
    print(json.dumps(result, sort_keys=False))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
