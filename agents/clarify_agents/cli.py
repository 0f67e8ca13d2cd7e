"""The agents layer's part of the ``clarify-gym`` command: ``play``, ``train-sb3``, ``train``.

Each subcommand lives next to the code it drives: :mod:`clarify_agents.play`, :mod:`clarify_agents.sb3`,
:mod:`clarify_agents.ppo.cli`; :mod:`clarify_bench.cli` assembles the whole command.
"""

from __future__ import annotations

import argparse

from clarify_agents import play, sb3
from clarify_agents.ppo import cli as ppo_cli
from clarify_gym.cli import add_command

__all__ = ["add_commands"]

_SB3_HELP = "train stable-baselines3 PPO/A2C/DQN on ProactiveGatherBank-v0, test on held-out tasks"


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register the agents layer's subcommands: ``play``, ``train-sb3``, ``train``."""
    add_command(subparsers, "play", play, "play the assistant (or the user) in the terminal")
    add_command(subparsers, "train-sb3", sb3, _SB3_HELP)
    add_command(subparsers, "train", ppo_cli, "train an LLM questioner with multi-turn PPO (LoRA)")
