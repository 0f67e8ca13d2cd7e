"""The ``clarify-gym`` command: the subcommands of every layer, assembled here at the top.

* ``tasks`` (:mod:`clarify_gym.cli`): list and inspect tasks;
* ``play``, ``train``, ``train-sb3`` (:mod:`clarify_agents.cli`): play in the terminal, train;
* ``bench`` (:mod:`clarify_bench.harness.evaluate`): benchmark agents;
* ``view`` (:mod:`clarify_bench.harness.view`): one HTML page of one or more runs;
* ``rescore`` (:mod:`clarify_bench.harness.rescore`): re-write and re-judge a stored run.

Also ``python -m clarify_bench.cli COMMAND ...`` (e.g. under ``accelerate launch``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from clarify_agents import cli as agents_cli

from clarify_bench.harness import evaluate, rescore, view
from clarify_gym import cli as env_cli

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    from clarify_gym import __version__

    parser = env_cli.CommandParser(
        prog="clarify-gym",
        description="Benchmark and train LLMs that ask clarifying questions (ProactiveGather).",
    )
    parser.add_argument("--version", action="version", version=f"clarify-gym {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    env_cli.add_commands(sub)
    env_cli.add_command(
        sub, "bench", evaluate, "benchmark agents: agents x tasks x seeds, table and plots"
    )
    env_cli.add_command(
        sub, "view", view, "one self-contained HTML page of one or more run folders"
    )
    env_cli.add_command(
        sub, "rescore", rescore, "re-write and re-judge a stored run's dialogues (no agent runs)"
    )
    agents_cli.add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``clarify-gym`` console script; returns the exit status."""
    return env_cli.run_command(build_parser(), argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
