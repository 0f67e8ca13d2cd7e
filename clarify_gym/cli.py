"""The env layer's part of the ``clarify-gym`` command, and the helpers every layer's CLI uses.

``clarify-gym tasks list`` lists the tasks; ``clarify-gym tasks show ID [--masked]`` shows one.
The full command is assembled in :mod:`clarify_bench.cli`: each layer (this module,
:mod:`clarify_agents.cli`, :mod:`clarify_bench.cli`) registers its own subcommands with
:func:`add_command`, so no layer imports the one above it. A command module provides
``add_arguments(parser)`` and ``run(args) -> int`` and imports its heavy dependencies inside
``run``, so ``clarify-gym --help`` stays fast.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections import Counter
from collections.abc import Sequence
from types import ModuleType
from typing import Any

from clarify_gym.errors import ClarifyGymError, TaskFormatError
from clarify_gym.masking import mask
from clarify_gym.tasks import load_tasks

__all__ = [
    "add_arguments",
    "add_command",
    "add_commands",
    "add_dataclass_arguments",
    "json_object",
    "run",
    "run_command",
]

_TASKS_HELP = "list and inspect tasks and what is hidden"
_TASKS_DOC = "List tasks (``clarify-gym tasks list``) or show one (``clarify-gym tasks show ID [--masked]``)."


def add_command(
    subparsers: argparse._SubParsersAction,
    name: str,
    module: ModuleType,
    help_text: str,
    description: str | None = None,
) -> argparse.ArgumentParser:
    """Register ``module`` (``add_arguments`` + ``run``) as the subcommand ``name``; its
    ``--help`` shows ``description`` (default: the module's docstring)."""
    description = module.__doc__ if description is None else description
    command = subparsers.add_parser(name, help=help_text, description=description)
    module.add_arguments(command)
    command.set_defaults(_run=module.run)
    return command


def json_object(text: str) -> dict[str, Any]:
    """An argparse type: a JSON object (``--env-kwargs '{"max_questions": 3}'``).

    >>> json_object('{"max_questions": 3}')
    {'max_questions': 3}
    """
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}")
    return value


def _optional(kind: type) -> Any:
    def parse(text: str) -> Any:
        return None if text.lower() in ("none", "null", "") else kind(text)

    parse.__name__ = kind.__name__
    return parse


_FIELD_TYPES: dict[str, Any] = {
    "int": int,
    "float": float,
    "str": str,
    "str | None": _optional(str),
    "int | None": _optional(int),
    "float | None": _optional(float),
}


def add_dataclass_arguments(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    cls: type,
    *,
    docs: dict[str, str] | None = None,
    defaults: bool = True,
) -> None:
    """One flag per field of the dataclass ``cls``, ``--field-name``: the one way settings become
    command-line flags (``clarify-gym train``, ``clarify-gym train-sb3``).

    Help comes from ``docs`` (field name -> text) or the field's ``metadata["help"]``. A bool
    field gets ``--x/--no-x``, a tuple field takes one or more values of its default's element
    type, ``X | None`` fields read ``none`` as None. With ``defaults=False`` a flag that is not
    given stays out of the parsed namespace (``argparse.SUPPRESS``), so only the flags given
    override a preset; otherwise the field's default is the flag's and ``--help`` shows it.
    """
    for f in dataclasses.fields(cls):
        text = (docs or {}).get(f.name) or f.metadata.get("help", "")
        options: dict[str, Any] = {"dest": f.name, "help": text.replace("%", "%%")}
        default = f.default
        if defaults:
            shown = " ".join(map(str, default)) if isinstance(default, tuple) else default
            options["default"] = list(default) if isinstance(default, tuple) else default
            options["help"] += f" (default: {shown})".replace("%", "%%")
        else:
            options["default"] = argparse.SUPPRESS
        flag = "--" + f.name.replace("_", "-")
        if f.type in ("bool", bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, **options)
        elif isinstance(default, tuple):
            parser.add_argument(flag, nargs="+", type=type(default[0]), metavar="X", **options)
        else:
            kind = _FIELD_TYPES.get(str(f.type)) or type(default)
            parser.add_argument(flag, type=kind, metavar="X", **options)


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register the env layer's subcommands: ``tasks``."""
    add_command(subparsers, "tasks", sys.modules[__name__], _TASKS_HELP, _TASKS_DOC)


def run_command(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen subcommand; return the exit status.

    A :class:`~clarify_gym.errors.ClarifyGymError` or a missing file ends in one line,
    ``<prog> <command>: error: ...``, and status 2.
    """
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except (ClarifyGymError, FileNotFoundError) as exc:
        print(f"{parser.prog} {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``clarify-gym tasks``."""
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, help_text in (("list", "one line per task"), ("show", "one task in full")):
        sub = actions.add_parser(name, help=help_text)
        if name == "show":
            sub.add_argument("task_id", help="the task id (see `clarify-gym tasks list`)")
            sub.add_argument(
                "--masked",
                action="store_true",
                help="show the numbered sentences, which are hidden, and the checklist",
            )
        sub.add_argument(
            "--tasks",
            default="sample",
            help="task source: 'sample', 'hf:cmalaviya/dolomites', or a DOLOMITES .jsonl/.zip path",
        )
        sub.add_argument("--split", default=None, help="keep one split (train/test, dev/test)")
        sub.add_argument("--json", action="store_true", help="print JSON instead of text")


def run(args: argparse.Namespace) -> int:
    """Run ``clarify-gym tasks``."""
    tasks = load_tasks(args.tasks, split=args.split)
    if args.action == "list":
        rows = []
        for task in tasks:
            masked = mask(task)
            rows.append(
                {
                    "id": task.id,
                    "split": task.split,
                    "field": task.field,
                    "sentences": len(masked.sentences),
                    "hidden": len(masked.hidden_ids),
                    "checklist": len(masked.checklist),
                    "objective": task.objective,
                }
            )
        if args.json:
            print(json.dumps(rows, indent=2))
            return 0
        print(f"{'id':<28} {'split':<6} {'field':<24} {'sent':>4} {'|H|':>4} {'chk':>4}  objective")
        for r in rows:
            objective = r["objective"] if len(r["objective"]) <= 70 else r["objective"][:67] + "..."
            print(
                f"{r['id']:<28} {r['split']!s:<6} {r['field'][:24]:<24} {r['sentences']:>4} "
                f"{r['hidden']:>4} {r['checklist']:>4}  {objective}"
            )
        splits = Counter(str(r["split"]) for r in rows)
        print(
            f"\n{len(rows)} tasks in {len({r['field'] for r in rows})} fields; "
            + ", ".join(f"{k}: {v}" for k, v in sorted(splits.items()))
        )
        return 0
    by_id = {t.id: t for t in tasks}
    if args.task_id not in by_id:
        close = [i for i in by_id if args.task_id.lower() in i.lower()][:5]
        hint = f" Did you mean {', '.join(close)}?" if close else " See `clarify-gym tasks list`."
        raise TaskFormatError(f"no task {args.task_id!r} in {args.tasks}.{hint}")
    task = by_id[args.task_id]
    masked = mask(task)
    if args.json:
        payload = {
            "id": task.id,
            "field": task.field,
            "split": task.split,
            "visible_text": masked.visible_text,
            "sentences": [
                {
                    "id": s.id,
                    "field": s.field,
                    "section": s.section,
                    "hidden": s.hidden,
                    "text": s.text,
                }
                for s in masked.sentences
            ],
            "checklist": [item.text for item in masked.checklist],
        }
        print(json.dumps(payload, indent=2, ensure_ascii=False))
        return 0
    print(
        f"# {task.id} ({task.field}, split {task.split}){' - ' + task.name if task.name else ''}\n"
    )
    if not args.masked:
        print(masked.visible_text)
        print(f"\n({len(masked.hidden_ids)} hidden sentences; add --masked to see them)")
        return 0
    print("## What the assistant sees\n")
    print(masked.visible_text)
    print("\n## Numbered sentences (H = hidden)\n")
    for s in masked.sentences:
        print(f"{'H' if s.hidden else ' '} [{s.id:>3}] {s.field:<13} {s.text}")
    print("\n## Checklist\n")
    for item in masked.checklist:
        print(f"- [{item.id}] ({item.field}) {item.text}")
    return 0
