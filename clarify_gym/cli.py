"""The env layer's part of the ``clarify-gym`` command, and the helpers every layer's CLI uses.

``clarify-gym tasks list`` lists the tasks; ``clarify-gym tasks show ID [--masked]`` shows one.
The full command is assembled in :mod:`clarify_bench.cli`: each layer (this module,
:mod:`clarify_agents.cli`, :mod:`clarify_bench.cli`) registers its own subcommands with
:func:`add_command`, so no layer imports the one above it. A command module provides
``add_arguments(parser)`` and ``run(args) -> int`` and imports its heavy dependencies inside
``run``, so ``clarify-gym --help`` stays fast.

**Settings become flags one way.** Every flag of every subcommand is a field of a dataclass
with a one-line docstring under it: :func:`add_dataclass_arguments` adds one flag per field
(``--field-name``; the docstring is its ``--help``, followed by the default) and
:func:`from_args` builds the dataclass back from the parsed arguments. The field's type gives
the flag's shape:

* ``bool``: ``--x`` / ``--no-x``;
* ``int``, ``float``, ``str``: one value; ``X | None``: ``none`` (or ``null``) gives None;
* ``Literal["a", "b"]``: one of the choices;
* ``tuple[T, ...]``: one or more values (``--seeds 0 1 2``);
* ``dict[...]``: a JSON object (``--env-kwargs '{"max_questions": 3}'``).

``field(..., metadata=flag(...))`` changes what the type alone cannot say: the parser of the
value (``flag(parse=comma_list)`` reads ``--agents a,b`` as one value), the flag's name
(``flag(name="--as")``), choices known only at run time, a value for the bare flag
(``flag(const="local")``: ``--ray`` alone), or a positional argument. Options of the command
itself that are no setting of the library (``bench --summarize``, ``train --preset``) are fields of
a small options dataclass next to the command. A new command writes::

    @dataclass
    class ShowOptions:
        run: str = field(default="", metadata=flag(positional=True, metavar="RUN"))
        '''The run folder to show.'''
        port: int = 8000
        '''Port to listen on.'''

    def add_arguments(parser):
        add_dataclass_arguments(parser, ShowOptions)

    def run(args):
        options = from_args(ShowOptions, args)  # a ValueError of __post_init__: one error line
        ...

and registers with :func:`add_command`. A bad value ends in one line,
``clarify-gym <command>: error: ...``, and exit status 2 (:class:`CommandParser` for argparse's
own errors, :func:`run_command` for a :class:`~clarify_gym.errors.ClarifyGymError`), before any
work starts.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import itertools
import json
import sys
import types
import typing
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import cache
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal, NoReturn, TypeVar

from clarify_gym.errors import ClarifyGymError, ConfigError, TaskFormatError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

    from clarify_gym.tasks import Task

__all__ = [
    "CommandParser",
    "FlagSpec",
    "TasksOptions",
    "TasksShowOptions",
    "add_arguments",
    "add_command",
    "add_commands",
    "add_dataclass_arguments",
    "comma_list",
    "field_docs",
    "flag",
    "from_args",
    "json_object",
    "make_text_env",
    "nonnegative_int",
    "positive_int",
    "run",
    "run_command",
    "task_by_id",
]

T = TypeVar("T", bound="DataclassInstance")

_TASKS_HELP = "list and inspect tasks and what is hidden"
_TASKS_DOC = "List tasks (``clarify-gym tasks list``) or show one (``clarify-gym tasks show ID [--masked]``)."


class CommandParser(argparse.ArgumentParser):
    """An :class:`argparse.ArgumentParser` whose errors are one line, ``<prog>: error: <what>
    (see <prog> --help)``, and exit status 2 (argparse's own print the usage first)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


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
    command.set_defaults(_run=module.run, _parser=command)
    return command


# ---- value parsers -------------------------------------------------------------------------


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


def comma_list(text: str) -> tuple[str, ...]:
    """An argparse type: comma-separated names, blanks dropped (``--agents generic,random``).

    >>> comma_list("generic, random,,oracle")
    ('generic', 'random', 'oracle')
    """
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _int_at_least(text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
    return value


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1.

    >>> positive_int("3")
    3
    """
    return _int_at_least(text, 1)


def nonnegative_int(text: str) -> int:
    """An argparse type: an integer >= 0 (a seed).

    >>> nonnegative_int("0")
    0
    """
    return _int_at_least(text, 0)


def _named(parse: Callable[[str], Any], name: str) -> Callable[[str], Any]:
    """``parse`` under ``name`` (argparse names the type in "invalid <name> value: 'x'")."""

    def wrapped(text: str) -> Any:
        return parse(text)

    wrapped.__name__ = name
    return wrapped


def _or_none(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """``parse``, but ``none``, ``null`` and the empty string give None."""

    def wrapped(text: str) -> Any:
        return None if text.lower() in ("none", "null", "") else parse(text)

    wrapped.__name__ = getattr(parse, "__name__", "value")
    return wrapped


# ---- settings become flags -------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class FlagSpec:
    """How one dataclass field becomes a flag beyond what its type says (see :func:`flag`)."""

    parse: Callable[[str], Any] | None = None
    metavar: str | None = None
    choices: Iterable[Any] | Callable[[], Iterable[Any]] | None = None
    name: str | None = None
    const: Any = None
    positional: bool = False
    show: str | None = None


def flag(
    *,
    parse: Callable[[str], Any] | None = None,
    metavar: str | None = None,
    choices: Iterable[Any] | Callable[[], Iterable[Any]] | None = None,
    name: str | None = None,
    const: Any = None,
    positional: bool = False,
    show: str | None = None,
) -> dict[str, FlagSpec]:
    """Field metadata for :func:`add_dataclass_arguments`: ``field(default=..., metadata=flag(...))``.

    ``parse`` turns the flag's one text value into the field's value (default: from the field's
    type; argparse's ``ArgumentTypeError`` is the way to reject one); ``metavar`` names the
    value in ``--help``; ``choices`` (or a function returning them, called when the parser is
    built) limits it; ``name`` is the flag (default ``--field-name``); ``const`` is the value
    of the flag given alone (the value is then optional); ``positional`` makes it an argument
    instead of a flag; ``show`` is the default as ``--help`` shows it.
    """
    return {"flag": FlagSpec(parse, metavar, choices, name, const, positional, show)}


def _class_docs(cls: type) -> dict[str, str]:
    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):  # no source (a class made at run time)
        return {}
    node = ast.parse(inspect.cleandoc("\n" + source) if source[:1].isspace() else source)
    body = node.body[0].body if node.body and isinstance(node.body[0], ast.ClassDef) else []
    docs: dict[str, str] = {}
    for item, following in itertools.pairwise(body):
        if (
            isinstance(item, ast.AnnAssign)
            and isinstance(item.target, ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            docs[item.target.id] = " ".join(following.value.value.split())
    return docs


@cache
def field_docs(cls: type) -> dict[str, str]:
    """The one-line docstring under each field of a dataclass (and of its dataclass bases),
    read from the source.

    >>> field_docs(TasksShowOptions)["json"]
    'Print JSON instead of text.'
    """
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if dataclasses.is_dataclass(klass):
            docs.update(_class_docs(klass))
    return docs


def _unwrap_optional(kind: Any) -> tuple[Any, bool]:
    """``(X, True)`` for ``X | None``, else ``(kind, False)``."""
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        if len(args) == 1 and len(args) < len(typing.get_args(kind)):
            return args[0], True
    return kind, False


_SCALARS: dict[Any, Callable[[str], Any]] = {int: int, float: float, str: str}


def _flag_options(f: dataclasses.Field[Any], kind: Any, spec: FlagSpec) -> dict[str, Any]:
    """argparse keyword arguments (type, nargs, action, choices) for a field of type ``kind``."""
    kind, optional = _unwrap_optional(kind)
    origin = typing.get_origin(kind)
    options: dict[str, Any] = {}
    parse: Callable[[str], Any] | None = spec.parse
    if kind is bool and not optional:
        if spec.positional:
            raise TypeError(f"field {f.name!r}: a bool cannot be a positional argument")
        return {"action": argparse.BooleanOptionalAction}
    if origin is Literal:
        values = typing.get_args(kind)
        options["choices"] = values
        parse = parse or _SCALARS.get(type(values[0]), str)
    elif origin is tuple and parse is None:
        element = typing.get_args(kind)[0]
        if typing.get_origin(element) is Literal:
            options["choices"] = typing.get_args(element)
            element = type(options["choices"][0])
        if element not in _SCALARS:
            raise TypeError(f"field {f.name!r}: no flag for {kind}; give flag(parse=...)")
        options["nargs"] = "+"
        parse = _SCALARS[element]
    elif (origin or kind) in (dict, Mapping) and parse is None:
        parse = json_object
    elif parse is None:
        if kind not in _SCALARS:
            raise TypeError(f"field {f.name!r}: no flag for {kind}; give flag(parse=...)")
        parse = _SCALARS[kind]
    options["type"] = _or_none(parse) if optional else parse
    if parse in (int, float, positive_int, nonnegative_int) and "choices" not in options:
        options["metavar"] = "X" if parse is float else "N"
    return options


def _default(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def _shown(value: Any, spec: FlagSpec) -> str | None:
    """The default as ``--help`` shows it (None: not shown)."""
    if spec.show is not None:
        return spec.show
    if value is None or value is dataclasses.MISSING or value == {}:
        return None
    if isinstance(value, tuple):
        return (",".join if spec.parse else " ".join)(map(str, value))
    if isinstance(value, dict):
        return json.dumps(value)
    return str(value)


def add_dataclass_arguments(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    cls: type,
    *,
    docs: Mapping[str, str] | None = None,
    defaults: bool = True,
) -> None:
    """One flag per field of the dataclass ``cls``: the one way settings become flags (see the
    module docstring).

    Help is the field's docstring (``docs`` overrides it per field name); a field without one is
    an error. With ``defaults=False`` a flag that is not given stays out of the parsed namespace
    (``argparse.SUPPRESS``), so only the flags given override a preset (``clarify-gym train``);
    otherwise the field's default is the flag's and ``--help`` shows it.

    >>> parser = CommandParser(prog="clarify-gym tasks show")
    >>> add_dataclass_arguments(parser, TasksShowOptions)
    >>> from_args(TasksShowOptions, parser.parse_args(["cg-law-03", "--masked", "--split", "test"]))
    TasksShowOptions(tasks='sample', split='test', json=False, task_id='cg-law-03', masked=True)
    """
    texts = {**field_docs(cls), **(docs or {})}
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        text = texts.get(f.name, "")
        if not text:
            raise TypeError(
                f"{cls.__name__}.{f.name} has no docstring: write a one-line docstring under "
                "the field (it is the flag's --help)"
            )
        spec: FlagSpec = f.metadata.get("flag", FlagSpec())
        options = _flag_options(f, hints[f.name], spec)
        choices = spec.choices() if callable(spec.choices) else spec.choices
        if choices is not None:
            options["choices"] = list(choices)
        if spec.metavar:
            options["metavar"] = spec.metavar
        default = _default(f)
        if not defaults:
            options["default"] = argparse.SUPPRESS
        elif default is not dataclasses.MISSING:
            options["default"] = list(default) if options.get("nargs") == "+" else default
            shown = _shown(default, spec)
            text += f" (default: {shown})" if shown is not None else ""
        options["help"] = text.replace("%", "%%")
        if spec.const is not None:
            options["nargs"], options["const"] = "?", spec.const
        if spec.positional:
            if default is not dataclasses.MISSING and "nargs" not in options:
                options["nargs"] = "?"
            parser.add_argument(f.name, **options)
        else:
            name = spec.name or "--" + f.name.replace("_", "-")
            parser.add_argument(name, dest=f.name, **options)


def from_args(cls: type[T], args: argparse.Namespace, **values: Any) -> T:
    """The dataclass ``cls`` from the parsed arguments (its fields' flags; ``values`` override
    them). A ``ValueError`` of its ``__post_init__`` becomes a
    :class:`~clarify_gym.errors.ConfigError` (one error line from :func:`run_command`)."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.init and f.name not in values and hasattr(args, f.name):
            value = getattr(args, f.name)
            kind, _ = _unwrap_optional(hints[f.name])
            if isinstance(value, list) and typing.get_origin(kind) is tuple:
                value = tuple(value)
            values[f.name] = value
    try:
        return cls(**values)
    except ClarifyGymError:
        raise
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register the env layer's subcommands: ``tasks``."""
    add_command(subparsers, "tasks", sys.modules[__name__], _TASKS_HELP, _TASKS_DOC)


def run_command(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen subcommand; return the exit status.

    A :class:`~clarify_gym.errors.ClarifyGymError` or a missing file ends in one line,
    ``<prog> <command>: error: ...``, and status 2. ``parser`` is the whole command (its
    subcommands set ``_run``) or one command (``parser.set_defaults(_run=run)``).
    """
    args, extra = parser.parse_known_args(argv)
    if extra:  # reported by the (sub)command they were given to
        command: argparse.ArgumentParser = getattr(args, "_parser", None) or parser
        command.error(f"unrecognized arguments: {' '.join(extra)}")
    if not getattr(args, "_run", None):
        parser.error("give a command")
    name = " ".join(filter(None, (parser.prog, getattr(args, "command", None))))
    try:
        return int(args._run(args) or 0)
    except (ClarifyGymError, FileNotFoundError) as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def make_text_env(env_id: str, **kwargs: Any) -> Any:
    """:func:`clarify_gym.registration.make_env` for commands whose agent writes text (``play``,
    ``bench``): an env whose actions are not text (the bank ids) is refused with a
    :class:`~clarify_gym.errors.ConfigError` naming ``--env-id``."""
    from gymnasium import spaces

    from clarify_gym.registration import DEFAULT_ENV_ID, make_env

    env = make_env(env_id, **kwargs)
    if not isinstance(env.action_space, spaces.Text):
        env.close()
        raise ConfigError(
            f"--env-id {env_id} takes {type(env.action_space).__name__} actions (a question "
            f"bank), not text; use an env the agent writes questions to, e.g. {DEFAULT_ENV_ID}"
        )
    return env


# ---- clarify-gym tasks -----------------------------------------------------------------------


def task_by_id(tasks: Sequence[Task], task_id: str, source: str) -> Task:
    """The task ``task_id`` of ``tasks`` (loaded from ``source``), or a
    :class:`~clarify_gym.errors.TaskFormatError` naming close ids.

    >>> from clarify_gym.tasks import load_tasks
    >>> task_by_id(load_tasks("sample"), "software-02", "sample")
    Traceback (most recent call last):
    ...
    clarify_gym.errors.TaskFormatError: no task 'software-02' in sample. Did you mean cg-software-02?
    """
    by_id = {t.id: t for t in tasks}
    if task_id not in by_id:
        close = [i for i in by_id if task_id.lower() in i.lower()][:5]
        hint = f" Did you mean {', '.join(close)}?" if close else " See `clarify-gym tasks list`."
        raise TaskFormatError(f"no task {task_id!r} in {source}.{hint}")
    return by_id[task_id]


@dataclasses.dataclass
class TasksOptions:
    """Options of ``clarify-gym tasks list``."""

    tasks: str = "sample"
    """Task source: 'sample', 'hf:cmalaviya/dolomites', or a DOLOMITES .jsonl/.zip path."""
    split: str | None = None
    """Keep one split (train/test, dev/test)."""
    json: bool = False
    """Print JSON instead of text."""


@dataclasses.dataclass(kw_only=True)
class TasksShowOptions(TasksOptions):
    """Options of ``clarify-gym tasks show``."""

    task_id: str = dataclasses.field(metadata=flag(positional=True))
    """The task id (see `clarify-gym tasks list`)."""
    masked: bool = False
    """Show the numbered sentences, which are hidden, and the checklist."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``clarify-gym tasks``: ``list`` and ``show``."""
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, help_text, options in (
        ("list", "one line per task", TasksOptions),
        ("show", "one task in full", TasksShowOptions),
    ):
        action = actions.add_parser(name, help=help_text)
        add_dataclass_arguments(action, options)
        action.set_defaults(_parser=action)


def run(args: argparse.Namespace) -> int:
    """Run ``clarify-gym tasks``."""
    from clarify_gym.masking import mask
    from clarify_gym.tasks import load_tasks

    tasks = load_tasks(args.tasks, split=args.split)
    if args.action == "list":
        rows: list[dict[str, Any]] = []
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
    task = task_by_id(tasks, args.task_id, args.tasks)
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
