"""The ``clarify-gym`` command.

Subcommands live next to the code they drive: a module listed in :data:`COMMANDS` provides
``add_arguments(parser)`` and ``run(args) -> int``; this file only wires them together, so
``clarify-gym --help`` stays fast (modules import their heavy dependencies inside ``run``).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

__all__ = ["COMMANDS", "build_parser", "main"]

#: name -> (module providing add_arguments/run, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "tasks": ("clarify_gym.cli_tasks", "list and inspect tasks and what is hidden"),
    "bench": ("benchmarks.evaluate", "benchmark agents: agents x tasks x seeds, table and plots"),
    "play": ("clarify_gym.cli_play", "play the assistant (or the user) in the terminal"),
    "train-sb3": (
        "benchmarks.sb3_train",
        "train stable-baselines3 PPO/A2C/DQN on ProactiveGatherBank-v0, test on held-out tasks",
    ),
    "train": ("agents.ppo.cli", "train an LLM questioner with multi-turn PPO (LoRA)"),
}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="clarify-gym",
        description="Benchmark and train LLMs that ask clarifying questions (ProactiveGather).",
    )
    from clarify_gym import __version__

    parser.add_argument("--version", action="version", version=f"clarify-gym {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(module_name)
        command = sub.add_parser(name, help=help_text, description=module.__doc__)
        module.add_arguments(command)
        command.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``clarify-gym`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    from clarify_gym.errors import ClarifyGymError

    try:
        return int(args._run(args) or 0)
    except (ClarifyGymError, FileNotFoundError) as exc:
        print(f"clarify-gym {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
