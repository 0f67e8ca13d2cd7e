"""PPO settings: presets, validation, --help from field docstrings, overrides, accelerate configs."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
from clarify_agents.ppo.cli import add_arguments, config_from_args
from clarify_agents.ppo.config import GROUPS, TrainConfig, field_docs
from clarify_agents.ppo.presets import PRESETS, preset
from clarify_bench.cli import build_parser
from helpers import short_id

from clarify_gym.errors import ClarifyGymError

CONFIGS = (
    Path(__file__).resolve().parents[2] / "agents" / "clarify_agents" / "ppo" / "accelerate_configs"
)


@pytest.mark.parametrize("name", ["paper", "qwen2.5-7b"])
def test_paper_presets_have_the_papers_and_verls_values(name):
    cfg = preset(name)
    assert cfg.model.model == "Qwen/Qwen2.5-7B-Instruct" and cfg.model.dtype == "bfloat16"
    assert cfg.model.gradient_checkpointing and cfg.log.mixed_precision == "bf16"
    p, e = cfg.ppo, cfg.env
    # the paper's
    assert (p.episodes_per_batch, p.minibatch_size, p.clip_ratio, p.max_grad_norm) == (
        256, 16, 0.2, 1.0
    )  # fmt: skip
    assert (e.env_id, e.max_questions, p.lr_critic) == ("ProactiveGatherPaper-v1", 5, 1e-4)
    # verl's defaults (the paper does not report them)
    assert (p.gamma, p.lam, p.clip_value, p.kl_coef, p.adaptive_kl) == (1.0, 1.0, 0.5, 1e-3, False)
    assert (cfg.rollout.temperature, p.ppo_epochs, p.ent_coef) == (1.0, 1, 0.0)
    assert (p.dual_clip, p.weight_decay, p.max_grad_norm_critic) == (3.0, 0.01, 1.0)
    # ours: LoRA instead of a full fine-tune, so ~10x the paper's 2e-5
    assert p.lr_actor == 1e-4 and cfg.lora.lora_dropout == 0


def test_lora_dropout_is_refused():
    with pytest.raises(ValueError, match="lora_dropout must be 0"):
        preset("tiny").replace(lora_dropout=0.05)


@pytest.mark.parametrize("name", sorted(PRESETS), ids=short_id)
def test_every_preset_is_valid_and_round_trips(name):
    cfg = preset(name)
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert cfg.ppo.grad_accum_steps * cfg.ppo.micro_batch_size == cfg.ppo.minibatch_size


def test_every_setting_has_a_one_line_docstring_and_a_unique_flag():
    names = []
    for cls in GROUPS.values():
        docs = field_docs(cls)
        for f in dataclasses.fields(cls):
            assert docs.get(f.name), f"{cls.__name__}.{f.name} has no docstring"
            assert "\n" not in docs[f.name]
            names.append(f.name)
    assert len(names) == len(set(names))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"episodes_per_batch": 10, "minibatch_size": 4}, "multiple of minibatch_size"),
        ({"minibatch_size": 8, "micro_batch_size": 3}, "multiple of micro_batch_size"),
        ({"dtype": "int8"}, "dtype"),
        ({"mixed_precision": "fp8"}, "mixed_precision"),
        ({"max_new_tokens": 64, "max_episode_tokens": 32}, "max_episode_tokens"),
        ({"lora_targets": " , "}, "lora_targets"),
        ({"no_such_setting": 1}, "unknown setting"),
        ({"dual_clip": 0.5}, "dual_clip"),
        ({"max_grad_norm_critic": 0.0}, "max_grad_norm_critic"),
    ],
    ids=short_id,
)
def test_bad_settings_are_rejected_with_a_reason(overrides, message):
    with pytest.raises(ValueError, match=message):
        preset("qwen2.5-7b").replace(**overrides)


def test_cli_help_shows_the_docstrings_and_flags_override_the_preset():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices["train"]
    assert field_docs(GROUPS["ppo"])["lr_critic"] in sub.format_help()
    args = parser.parse_args(
        ["train", "--preset", "smollm2-135m", "--lr-actor", "3e-4", "--no-whiten-advantages",
         "--split", "none", "--updates", "7", "--tokenizer", "qwen2.5-tokenizer"]
    )  # fmt: skip
    cfg = config_from_args(args)
    assert cfg.ppo.lr_actor == 3e-4 and not cfg.ppo.whiten_advantages
    assert cfg.env.split is None and cfg.log.updates == 7
    assert cfg.model.tokenizer == "qwen2.5-tokenizer"
    assert cfg.ppo.lr_critic == preset("smollm2-135m").ppo.lr_critic  # untouched


def test_cli_needs_a_preset_or_resume():
    import argparse

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    with pytest.raises(ClarifyGymError, match="--preset"):
        config_from_args(parser.parse_args([]))


def test_print_config_runs_without_torch():
    code = (
        "import sys; from clarify_bench.cli import main; rc = main(['train', '--preset', 'tiny', "
        "'--print-config']); assert 'torch' not in sys.modules, 'torch imported'; sys.exit(rc)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["model"]["model"] == "tiny"


@pytest.mark.parametrize("name", ["ddp", "zero2", "zero3", "fsdp"], ids=short_id)
def test_accelerate_config_files_load(name):
    from accelerate.commands.config.config_args import load_config_from_file

    config = load_config_from_file(str(CONFIGS / f"{name}.yaml"))
    assert config.mixed_precision == "bf16" and config.num_processes >= 2
    if name.startswith("zero"):
        assert config.deepspeed_config["zero_stage"] == int(name[-1])
        assert (
            config.deepspeed_config["gradient_clipping"] == preset("qwen2.5-7b").ppo.max_grad_norm
        )
    if name == "fsdp":  # FSDP2 shards per parameter: bf16 base and fp32 LoRA share a layer
        assert config.fsdp_config["fsdp_version"] == 2


def test_memory_budget_document_is_what_the_script_computes():
    from clarify_bench.studies.memory_budget import QWEN25_7B, budget, to_markdown

    doc = Path(__file__).resolve().parents[2] / "docs" / "memory_budget.md"
    assert doc.read_text() == to_markdown(QWEN25_7B, preset("qwen2.5-7b"), "qwen2.5-7b"), (
        "docs/memory_budget.md is stale: run python -m clarify_bench.studies.memory_budget --out docs/memory_budget.md"
    )
    phases = budget(QWEN25_7B, preset("qwen2.5-7b"))
    peak = max(sum(gib for _, gib, _ in rows) for rows in phases.values())
    assert 14 < peak < 80  # at least the weights; fits one 80 GB GPU
