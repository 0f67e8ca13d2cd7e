"""Train an LLM questioner with token-level multi-turn PPO (LoRA policy, value head, one backbone).

  clarify-gym train --preset tiny                      # seconds, random tiny model (tests)
  clarify-gym train --preset smollm2-135m --updates 3  # a real small chat model, on a CPU
  clarify-gym train --preset qwen2.5-7b                # the paper's set-up, one or more GPUs
  clarify-gym train --resume runs/ppo-tiny --updates 4 # continue a run (same settings)

Every setting of the preset can be overridden with its flag (below). Multi-GPU: launch the
same command through accelerate, e.g. ``accelerate launch --config_file
agents/clarify_agents/ppo/accelerate_configs/zero2.yaml -m clarify_bench.cli train --preset qwen2.5-7b``.
Outputs (in --output-dir): metrics.jsonl, TensorBoard logs, checkpoints/update-*/ (each a peft
adapter that benchmarks with `clarify-gym bench`) and learning_curve.png.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from dataclasses import dataclass, field

from clarify_agents.ppo.config import GROUPS, TrainConfig
from clarify_agents.ppo.presets import PRESETS, preset
from clarify_gym.cli import add_dataclass_arguments, flag, positive_int
from clarify_gym.errors import ClarifyGymError

__all__ = ["TrainOptions", "add_arguments", "check_settings", "config_from_args", "run"]


@dataclass
class TrainOptions:
    """Options of ``clarify-gym train`` that are not settings of the run."""

    preset: str | None = field(default=None, metadata=flag(choices=lambda: sorted(PRESETS)))
    """Starting settings (required unless --resume)."""
    resume: str | None = field(default=None, metadata=flag(metavar="DIR"))
    """Continue a run: its output dir (latest checkpoint) or one checkpoint folder; the run's saved settings are used, flags override them (e.g. --updates)."""
    threads: int | None = field(default=None, metadata=flag(parse=positive_int))
    """torch CPU threads (default: torch's choice)."""
    print_config: bool = False
    """Print the resolved settings as JSON and exit."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``clarify-gym train``: the :class:`TrainOptions`, then one flag per setting
    (flags not given keep the preset's value)."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    add_dataclass_arguments(parser, TrainOptions)
    for group, cls in GROUPS.items():
        section = parser.add_argument_group(f"{group} settings")
        add_dataclass_arguments(section, cls, defaults=False)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The preset (or the resumed run's saved settings) with the flags' overrides applied."""
    names = {f.name for cls in GROUPS.values() for f in dataclasses.fields(cls)}
    overrides = {name: getattr(args, name) for name in names if hasattr(args, name)}
    if args.resume:
        from clarify_agents.policy_folder import PolicyFolder, policy_folder
        from clarify_agents.ppo.checkpoint import find_checkpoint

        folder = find_checkpoint(args.resume)
        cfg = TrainConfig.from_dict((policy_folder(folder) or PolicyFolder(folder)).config)
        overrides.setdefault("output_dir", str(folder.parent.parent))
    elif args.preset:
        cfg = preset(args.preset)
    else:
        raise ClarifyGymError("give --preset NAME (or --resume DIR); see --help")
    return cfg.replace(**overrides)


def check_settings(cfg: TrainConfig) -> None:
    """What can be checked before the model loads: the model and tokenizer folders, the env
    (built once) and the output folder; raises a ``ClarifyGymError`` or ``FileNotFoundError``
    naming the flag."""
    from clarify_agents.models import check_model_spec
    from clarify_gym.files import check_output_folder
    from clarify_gym.registration import make_env

    check_model_spec(cfg.model.model, "--model")
    if cfg.model.tokenizer:
        check_model_spec(cfg.model.tokenizer, "--tokenizer")
    make_env(cfg.env.env_id, **cfg.env.make_kwargs()).close()
    check_output_folder(cfg.log.output_dir, "--output-dir")


def run(args: argparse.Namespace) -> int:
    """Run ``clarify-gym train``."""
    try:
        cfg = config_from_args(args)
    except ValueError as exc:  # a bad setting: one line, exit status 2
        print(f"clarify-gym train: error: {exc}", file=sys.stderr)
        return 2
    if args.print_config:
        print(json.dumps(cfg.to_dict(), indent=2))
        return 0
    check_settings(cfg)
    import logging

    import torch

    from clarify_agents.ppo.trainer import train

    if args.threads:
        torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    try:
        result = train(cfg, resume=args.resume)
    except FileExistsError as exc:  # a run is already there and --resume was not given
        print(f"clarify-gym train: error: {exc}", file=sys.stderr)
        return 2
    if not result.main_process:
        return 0
    if result.history:
        last = result.history[-1]
        keys = ("env/return", "env/hidden_coverage", "objective/kl", "charts/iteration_s")
        print("last update:", ", ".join(f"{k}={last[k]:.4g}" for k in keys))
    print(f"metrics: {result.output_dir / 'metrics.jsonl'}")
    print(f"learning curve: {result.output_dir / 'learning_curve.png'}")
    if result.checkpoint is not None:
        print(f"adapter (peft folder, loads with PeftModel.from_pretrained): {result.checkpoint}")
    return 0
