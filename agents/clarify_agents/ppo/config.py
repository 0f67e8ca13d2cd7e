"""PPO configuration: dataclasses per concern (model, LoRA, PPO, rollout, env, logging), presets.

Every field has a one-line docstring; :func:`clarify_gym.cli.field_docs` reads them from this
file's source, and the ``clarify-gym train`` command shows them as ``--help``. Derived quantities (gradient
accumulation steps, minibatches per epoch) are computed and validated in ``__post_init__``.
This module imports no heavy dependency.

>>> from clarify_agents.ppo.presets import preset
>>> cfg = preset("paper")
>>> cfg.ppo.episodes_per_batch, cfg.ppo.minibatch_size, cfg.ppo.clip_ratio, cfg.ppo.lr_actor
(256, 16, 0.2, 0.0001)
>>> cfg.ppo.grad_accum_steps, cfg.ppo.minibatches_per_epoch
(4, 16)
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from clarify_gym.cli import field_docs

__all__ = [
    "GROUPS",
    "EnvSettings",
    "LogSettings",
    "LoraSettings",
    "ModelSettings",
    "PPOSettings",
    "ProcessBatches",
    "RolloutSettings",
    "TrainConfig",
    "field_docs",
]

_DTYPES = ("auto", "float32", "bfloat16", "float16")
_PRECISIONS = ("no", "bf16", "fp16")


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


@dataclass
class ModelSettings:
    """The base model, and how the policy, reference and value head share it."""

    model: str = "Qwen/Qwen2.5-7B-Instruct"
    """Base model: hub id, local folder, .gguf file, 'smollm2-135m' (offline) or 'tiny' (tests)."""
    tokenizer: str | None = None
    """Tokenizer spec (default: the model's own; 'qwen2.5-tokenizer' is the offline Qwen2.5 one)."""
    dtype: str = "bfloat16"
    """Dtype of the frozen base weights: auto (bfloat16 where the hardware has it), float32, ..."""
    gradient_checkpointing: bool = True
    """Recompute activations in the backward pass: much less memory, about 30% more compute."""
    critic_detach: bool = True
    """Stop value-loss gradients at the backbone (False: the value loss also trains the LoRA)."""
    cpu_mmap_threshold_mb: float = 1.0
    """On a CPU device with glibc: malloc maps blocks of at least this many MiB (frees return them to the OS); 0: glibc's dynamic default."""

    def __post_init__(self) -> None:
        _check(self.dtype in _DTYPES, f"dtype must be one of {_DTYPES}, got {self.dtype!r}")
        _check(
            0 <= self.cpu_mmap_threshold_mb <= 32,
            f"cpu_mmap_threshold_mb must be in [0, 32] (glibc's range), got {self.cpu_mmap_threshold_mb}",
        )


@dataclass
class LoraSettings:
    """The LoRA adapter: the policy's only trainable weights besides the value head."""

    lora_r: int = 16
    """LoRA rank."""
    lora_alpha: int = 32
    """LoRA scaling numerator (the update is scaled by alpha / r)."""
    lora_dropout: float = 0.0
    """Dropout on the LoRA input: must be 0 (old and new log-probs of PPO must match)."""
    lora_targets: str = "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"
    """Comma-separated module names that get an adapter."""

    def __post_init__(self) -> None:
        _check(self.lora_r >= 1, f"lora_r must be >= 1, got {self.lora_r}")
        _check(
            self.lora_dropout == 0,
            f"lora_dropout must be 0, got {self.lora_dropout}: dropout makes the rollout's "
            "log-probs differ from the training pass's, so PPO's ratio is noise; use weight_decay "
            "or a smaller lr_actor to regularise",
        )
        _check(bool(self.target_modules), "lora_targets must name at least one module")

    @property
    def target_modules(self) -> list[str]:
        """``lora_targets`` as a list."""
        return [m.strip() for m in self.lora_targets.split(",") if m.strip()]


@dataclass
class PPOSettings:
    """Batch sizes, losses, KL penalty and optimiser (defaults: the paper's set-up)."""

    episodes_per_batch: int = 256
    """Episodes rolled out per PPO update (over all processes)."""
    minibatch_size: int = 16
    """Episodes per optimiser step (over all processes)."""
    micro_batch_size: int = 4
    """Most episodes per forward/backward pass on one process (lowered to divide minibatch_size / processes)."""
    ppo_epochs: int = 1
    """Passes (K) over each rollout batch."""
    clip_ratio: float = 0.2
    """PPO clip range of the policy ratio."""
    clip_value: float = 0.5
    """Clip range of the value update around the rollout's value estimate."""
    vf_coef: float = 0.5
    """Weight of the value loss."""
    ent_coef: float = 0.0
    """Weight of the entropy bonus (0 turns it off)."""
    max_log_ratio: float = 20.0
    """Clamp of log(new / old) before exp in the policy loss."""
    dual_clip: float = 0.0
    """Dual-clip constant c > 1 bounding the loss of negative-advantage tokens (0 turns it off)."""
    gamma: float = 1.0
    """Discount per policy token."""
    lam: float = 1.0
    """GAE lambda."""
    turn_gamma: float = 1.0
    """Extra discount across each user answer (1: the paper's; 0: a reply earns only its own reward)."""
    kl_coef: float = 0.001
    """Initial beta of the per-token KL(policy || reference) penalty."""
    adaptive_kl: bool = False
    """Adapt beta towards target_kl (Ziegler et al. 2019)."""
    target_kl: float = 6.0
    """Per-episode KL the adaptive controller aims at."""
    kl_horizon: int = 10000
    """Horizon (in episodes) of the adaptive KL controller."""
    lr_actor: float = 1e-4
    """Learning rate of the LoRA (policy) weights (LoRA wants ~10x a full fine-tune's)."""
    lr_critic: float = 1e-4
    """Learning rate of the value head."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    max_grad_norm: float = 1.0
    """Clip the gradient norm of the actor (LoRA) weights to this value."""
    max_grad_norm_critic: float = 1.0
    """Clip the gradient norm of the critic (value head) to this value, separately."""
    whiten_advantages: bool = True
    """Normalise advantages to mean 0, variance 1 over the batch's policy tokens."""

    def __post_init__(self) -> None:
        for name in ("episodes_per_batch", "minibatch_size", "micro_batch_size", "ppo_epochs"):
            _check(getattr(self, name) >= 1, f"{name} must be >= 1, got {getattr(self, name)}")
        _check(
            self.episodes_per_batch % self.minibatch_size == 0,
            f"episodes_per_batch ({self.episodes_per_batch}) must be a multiple of "
            f"minibatch_size ({self.minibatch_size})",
        )
        _check(
            self.minibatch_size % self.micro_batch_size == 0,
            f"minibatch_size ({self.minibatch_size}) must be a multiple of "
            f"micro_batch_size ({self.micro_batch_size})",
        )
        _check(
            0 < self.clip_ratio < 1 and self.clip_value > 0, "clip_ratio in (0, 1), clip_value > 0"
        )
        _check(
            0 <= self.gamma <= 1 and 0 <= self.lam <= 1 and 0 <= self.turn_gamma <= 1,
            "gamma, lam and turn_gamma must be in [0, 1]",
        )
        _check(self.kl_coef >= 0 and self.target_kl > 0, "kl_coef >= 0 and target_kl > 0")
        _check(self.lr_actor > 0 and self.lr_critic > 0, "learning rates must be > 0")
        _check(
            self.max_grad_norm > 0 and self.max_grad_norm_critic > 0 and self.max_log_ratio > 0,
            "max_grad_norm, max_grad_norm_critic and max_log_ratio must be > 0",
        )
        _check(
            self.dual_clip == 0 or self.dual_clip > 1,
            f"dual_clip must be 0 (off) or > 1, got {self.dual_clip}",
        )
        self.grad_accum_steps = self.minibatch_size // self.micro_batch_size
        """Micro-batches per optimiser step (single process; divided by the process count)."""
        self.minibatches_per_epoch = self.episodes_per_batch // self.minibatch_size
        """Optimiser steps per epoch."""

    def per_process(self, world: int) -> ProcessBatches:
        """The batch geometry of each of ``world`` processes; ``ValueError`` naming the numbers
        and the flag to change when the totals do not split evenly. The micro-batch is the
        largest divisor of the per-process minibatch not above ``micro_batch_size``, so the
        qwen2.5-7b preset runs unchanged on 1, 2, 4 or 8 GPUs.

        >>> PPOSettings().per_process(8)  # 256 episodes, minibatch 16, micro-batch at most 4
        ProcessBatches(episodes=32, minibatch=2, micro_batch=2, grad_accum_steps=1)
        >>> PPOSettings().per_process(3)
        Traceback (most recent call last):
        ...
        ValueError: with 3 processes, --minibatch-size 16 must be a multiple of 3, e.g. 15 or 18 (and --episodes-per-batch a multiple of that)
        """
        # episodes_per_batch is a multiple of minibatch_size (__post_init__), hence of world too
        if self.minibatch_size % world:
            near = sorted(
                {max(world, self.minibatch_size // world * world)}
                | {(self.minibatch_size // world + 1) * world}
            )
            raise ValueError(
                f"with {world} processes, --minibatch-size {self.minibatch_size} must be a "
                f"multiple of {world}, e.g. {' or '.join(map(str, near))} (and "
                "--episodes-per-batch a multiple of that)"
            )
        minibatch = self.minibatch_size // world
        micro = max(
            d for d in range(1, min(self.micro_batch_size, minibatch) + 1) if minibatch % d == 0
        )
        return ProcessBatches(
            self.episodes_per_batch // world, minibatch, micro, minibatch // micro
        )


@dataclass(frozen=True)
class ProcessBatches:
    """Episodes per update, per optimiser step and per forward pass on one process."""

    episodes: int
    minibatch: int
    micro_batch: int
    grad_accum_steps: int


@dataclass
class RolloutSettings:
    """Sampling questions from the policy."""

    max_new_tokens: int = 64
    """Most tokens the policy may write per question."""
    temperature: float = 1.0
    """Sampling temperature (also applied to the log-probabilities PPO optimises)."""
    max_episode_tokens: int = 2048
    """Most tokens per episode (prompt, questions, answers); the episode is stopped before that."""
    generation_batch_size: int = 64
    """Episodes played at once (envs stepped together, one batched generation per turn)."""
    forward_batch_size: int = 8
    """Episodes per no-grad forward pass when scoring a rollout."""
    reply_prefix: str = ""
    """Text every reply starts with (a prefill ending the prompt, not policy tokens); HFAgent reads it from a checkpoint."""

    def __post_init__(self) -> None:
        _check(self.max_new_tokens >= 1, "max_new_tokens must be >= 1")
        _check(self.temperature > 0, f"temperature must be > 0, got {self.temperature}")
        _check(
            self.max_episode_tokens > self.max_new_tokens,
            "max_episode_tokens must exceed max_new_tokens",
        )
        _check(self.generation_batch_size >= 1 and self.forward_batch_size >= 1, "batch sizes >= 1")


@dataclass
class EnvSettings:
    """The environment episodes are played in."""

    env_id: str = "ProactiveGather-v0"
    """Registered env id (ProactiveGather-v0: new-information reward; the `paper` preset uses ProactiveGatherPaper-v1, the faithful user)."""
    tasks: str = "sample"
    """Task source: 'sample', a DOLOMITES .jsonl/.zip path or 'hf:cmalaviya/dolomites'."""
    split: str | None = "train"
    """Task split to train on (None: all)."""
    max_questions: int = 5
    """Question budget per episode."""
    question_cost: float = 0.0
    """Reward subtracted per question."""
    checklist_weight: float = 0.0
    """Weight of the end-of-episode checklist score, paid on the episode's last policy token."""

    def __post_init__(self) -> None:
        _check(self.max_questions >= 1, "max_questions must be >= 1")
        for name in ("question_cost", "checklist_weight"):
            value = getattr(self, name)
            _check(
                isinstance(value, (int, float)) and math.isfinite(value) and value >= 0,
                f"{name} must be a finite number >= 0, got {value!r}",
            )

    def make_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``gym.make(env_id, ...)``."""
        return {
            "tasks": self.tasks,
            "split": self.split,
            "max_questions": self.max_questions,
            "question_cost": self.question_cost,
            "checklist_weight": self.checklist_weight,
        }


@dataclass
class LogSettings:
    """Run length, seeds, precision, outputs."""

    output_dir: str = "runs/ppo"
    """Folder for checkpoints, metrics.jsonl, TensorBoard logs and the learning curve."""
    updates: int = 30
    """PPO updates to run (each: one rollout batch, then ppo_epochs passes over it)."""
    seed: int = 0
    """Seed of every RNG (sampling, minibatch order, LoRA init, env episodes)."""
    mixed_precision: str = "no"
    """accelerate mixed precision: no, bf16 or fp16."""
    save_every: int = 10
    """Write a checkpoint every this many updates (and always after the last)."""
    keep_checkpoints: int = 2
    """Checkpoints kept on disk (older ones are deleted)."""
    tensorboard: bool = True
    """Log to TensorBoard through accelerate's tracker."""
    sample_every: int = 10
    """Log a few sample dialogues every this many updates (samples.jsonl, TensorBoard text; 0: never)."""
    progress: bool = True
    """Show a progress bar."""

    def __post_init__(self) -> None:
        _check(self.updates >= 1 and self.save_every >= 1, "updates and save_every must be >= 1")
        _check(self.keep_checkpoints >= 1, "keep_checkpoints must be >= 1")
        _check(self.sample_every >= 0, "sample_every must be >= 0 (0: no sample dialogues)")
        _check(
            self.mixed_precision in _PRECISIONS,
            f"mixed_precision must be one of {_PRECISIONS}, got {self.mixed_precision!r}",
        )


@dataclass
class TrainConfig:
    """Everything a PPO run needs."""

    model: ModelSettings = field(default_factory=ModelSettings)
    """Base model and sharing."""
    lora: LoraSettings = field(default_factory=LoraSettings)
    """LoRA adapter."""
    ppo: PPOSettings = field(default_factory=PPOSettings)
    """PPO losses and optimiser."""
    rollout: RolloutSettings = field(default_factory=RolloutSettings)
    """Sampling."""
    env: EnvSettings = field(default_factory=EnvSettings)
    """Environment."""
    log: LogSettings = field(default_factory=LogSettings)
    """Outputs."""

    def __post_init__(self) -> None:
        _check(
            self.ppo.micro_batch_size <= self.ppo.episodes_per_batch,
            "micro_batch_size cannot exceed episodes_per_batch",
        )

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """The settings as nested plain data (derived fields left out)."""
        return {f.name: dataclasses.asdict(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, dict[str, Any]]) -> TrainConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise ``ValueError``."""
        groups = {}
        for f in dataclasses.fields(cls):
            group_cls = GROUPS[f.name]
            values = dict(data.get(f.name, {}))
            known = {g.name for g in dataclasses.fields(group_cls)}
            _check(
                not set(values) - known, f"unknown {f.name} settings {sorted(set(values) - known)}"
            )
            groups[f.name] = group_cls(**values)
        return cls(**groups)

    def replace(self, **overrides: Any) -> TrainConfig:
        """A copy with flat overrides, e.g. ``cfg.replace(lr_actor=1e-4, updates=2)``.

        >>> from clarify_agents.ppo.presets import preset
        >>> preset("tiny").replace(updates=3, lr_critic=0.5).log.updates
        3
        """
        data = self.to_dict()
        where = {name: group for group, values in data.items() for name in values}
        for name, value in overrides.items():
            _check(name in where, f"unknown setting {name!r}; see `clarify-gym train --help`")
            data[where[name]][name] = value
        return TrainConfig.from_dict(data)


#: settings group name (a field of TrainConfig) -> its dataclass
GROUPS: dict[str, type] = {
    "model": ModelSettings,
    "lora": LoraSettings,
    "ppo": PPOSettings,
    "rollout": RolloutSettings,
    "env": EnvSettings,
    "log": LogSettings,
}
