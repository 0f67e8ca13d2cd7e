"""Token-level multi-turn PPO for LLM questioners: LoRA policy, one shared backbone, accelerate.

Read top to bottom: :func:`setup` builds everything a run needs (:class:`TrainState`);
:func:`ppo_iteration` is one PPO update in numbered steps (rollout, score, KL-penalised token
rewards, GAE, K epochs of minibatch updates); :func:`train` loops, logs, checkpoints and
resumes. The pure maths is in :mod:`clarify_agents.ppo.core`, the episodes in :mod:`clarify_agents.ppo.rollout`,
the model in :mod:`clarify_agents.ppo.model`.

Shapes: B episodes on this process, T tokens (right-padded), N policy tokens in a batch.
Multi-GPU: ``accelerate launch --config_file agents/clarify_agents/ppo/accelerate_configs/<ddp|zero2|zero3|
fsdp>.yaml -m clarify_bench.cli train --preset qwen2.5-7b``; episode and minibatch counts are
totals over all processes.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import clarify_gym  # noqa: F401  (registers the env ids)
from clarify_agents.models import stop_token_ids
from clarify_agents.ppo import checkpoint as ckpt
from clarify_agents.ppo.batch import Batch, rows, score
from clarify_agents.ppo.checkpoint import save_checkpoint
from clarify_agents.ppo.config import TrainConfig
from clarify_agents.ppo.core import (
    AdaptiveKLController,
    compute_gae,
    explained_variance,
    masked_mean,
    masked_whiten,
    ppo_losses,
    token_rewards,
)
from clarify_agents.ppo.host_memory import set_mmap_threshold
from clarify_agents.ppo.logs import (
    append_metrics,
    plot_learning_curve,
    read_metrics,
    sample_rows,
    samples_markdown,
    truncate_metrics,
)
from clarify_agents.ppo.model import PolicyValueModel, build_policy_value_model
from clarify_agents.ppo.rollout import RewardFn, play_episodes
from clarify_gym.env import EPISODE_METRICS

__all__ = [
    "Batch",
    "TrainResult",
    "TrainState",
    "clip_gradients",
    "ppo_iteration",
    "save_checkpoint",
    "setup",
    "train",
]

logger = logging.getLogger(__name__)


@dataclass
class TrainState:
    """Everything one PPO iteration reads and advances."""

    cfg: TrainConfig
    accelerator: Any
    model: Any  # the PolicyValueModel as prepared by accelerate (maybe DDP/FSDP/DeepSpeed-wrapped)
    optimizer: Any
    tokenizer: Any
    envs: list[gym.Env]
    stop_ids: list[int]
    sampler: torch.Generator  # token sampling (on the device)
    shuffler: torch.Generator  # minibatch order (CPU)
    kl_ctl: AdaptiveKLController
    local_episodes: int  # episodes per update on this process
    local_minibatch: int  # episodes per optimiser step on this process
    micro_batch: int  # episodes per forward/backward pass on this process
    reward_fn: RewardFn | None = None
    update: int = 0  # updates completed
    episodes: list[Any] = field(default_factory=list)  # the last update's episodes (this process)

    @property
    def policy(self) -> PolicyValueModel:
        """The bare model (for the adapter switch, saving)."""
        return self.accelerator.unwrap_model(self.model)

    @property
    def trainable(self) -> list[torch.nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]

    def generators(self) -> dict[str, torch.Generator]:
        return {"sampler": self.sampler, "shuffler": self.shuffler}


def setup(
    cfg: TrainConfig, *, resume: str | Path | None = None, reward_fn: RewardFn | None = None
) -> TrainState:
    """Accelerator, model (LoRA + value head on one backbone), optimizer, envs; restored from a
    checkpoint when ``resume`` is a checkpoint or run folder. Seeds torch's global RNG (LoRA
    initialisation and dropout draw from it); :func:`train` restores the caller's RNG after. On a
    CPU device it also fixes glibc's malloc mmap threshold for the rest of the process
    (``cpu_mmap_threshold_mb``, :mod:`clarify_agents.ppo.host_memory`)."""
    from accelerate import Accelerator
    from accelerate.utils import DistributedType

    out = Path(cfg.log.output_dir)
    if resume is None and ckpt.list_checkpoints(out):
        raise FileExistsError(
            f"{out} already holds checkpoints of a run: pass --resume {out} to continue it, "
            "or choose another --output-dir"
        )
    metrics_file = out / "metrics.jsonl"
    old_rows = read_metrics(metrics_file)  # a damaged file stops the run here, not at its end
    if resume is None and old_rows:
        logger.warning(
            "%s holds %d metrics rows of a run that left no checkpoint: starting afresh, "
            "they are removed", metrics_file, len(old_rows),
        )  # fmt: skip
        truncate_metrics(metrics_file, 0)
    if resume is None:
        truncate_metrics(out / "samples.jsonl", 0)
    # torchrun/accelerate on CPUs only: without cpu=True every process would train on its own
    cpu_only = int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available()
    accelerator = Accelerator(
        cpu=cpu_only,
        mixed_precision=cfg.log.mixed_precision,
        log_with="tensorboard" if cfg.log.tensorboard else None,
        project_dir=str(out),
    )
    p = cfg.ppo
    geometry = p.per_process(accelerator.num_processes)  # ValueError naming the flag to change
    if geometry.micro_batch != p.micro_batch_size:
        logger.info(
            "%d processes: %d episodes per minibatch each, micro-batch %d (not %d)",
            accelerator.num_processes, geometry.minibatch, geometry.micro_batch, p.micro_batch_size,
        )  # fmt: skip
    accelerator.gradient_accumulation_steps = geometry.grad_accum_steps
    if accelerator.distributed_type == DistributedType.DEEPSPEED:  # no dataloader tells it
        ds_config = accelerator.state.deepspeed_plugin.deepspeed_config
        ds_config["train_micro_batch_size_per_gpu"] = geometry.micro_batch
        ds_config["gradient_accumulation_steps"] = geometry.grad_accum_steps

    if accelerator.device.type == "cpu" and cfg.model.cpu_mmap_threshold_mb > 0:
        # the backward pass's freed activations go back to the OS (see clarify_agents.ppo.host_memory)
        set_mmap_threshold(int(cfg.model.cpu_mmap_threshold_mb * 2**20))
    torch.manual_seed(cfg.log.seed)  # the same LoRA initialisation on every process
    model, tokenizer, _ = build_policy_value_model(cfg.model, cfg.lora, device=accelerator.device)
    folder = ckpt.find_checkpoint(resume) if resume is not None else None
    if folder is not None:
        ckpt.load_trainable_weights(model, folder)
    optimizer = torch.optim.AdamW(
        [
            {"params": model.actor_parameters(), "lr": p.lr_actor},
            {"params": model.critic_parameters(), "lr": p.lr_critic},
        ],
        weight_decay=p.weight_decay,
    )
    stop_ids = stop_token_ids(tokenizer, model.causal_lm)
    model, optimizer = accelerator.prepare(model, optimizer)

    rank = accelerator.process_index
    state = TrainState(
        cfg=cfg,
        accelerator=accelerator,
        model=model,
        optimizer=optimizer,
        tokenizer=tokenizer,
        envs=[
            gym.make(cfg.env.env_id, **cfg.env.make_kwargs())
            for _ in range(min(cfg.rollout.generation_batch_size, geometry.episodes))
        ],
        stop_ids=stop_ids,
        sampler=torch.Generator(device=accelerator.device).manual_seed(cfg.log.seed * 7919 + rank),
        shuffler=torch.Generator().manual_seed(cfg.log.seed * 7919 + rank + 104729),
        kl_ctl=AdaptiveKLController(
            p.kl_coef, p.target_kl if p.adaptive_kl else None, p.kl_horizon
        ),
        local_episodes=geometry.episodes,
        local_minibatch=geometry.minibatch,
        micro_batch=geometry.micro_batch,
        reward_fn=reward_fn,
    )
    if folder is not None:
        saved = torch.load(ckpt.trainer_state_file(folder, rank), weights_only=True)
        optimizer.load_state_dict(saved["optimizer"])
        ckpt.restore_rng(saved["rng"], state.generators())
        state.update, state.kl_ctl.value = int(saved["update"]), float(saved["kl_coef"])
        logger.info("resumed from %s after update %d", folder, state.update)
        if accelerator.is_main_process:
            truncate_metrics(metrics_file, state.update)
            truncate_metrics(out / "samples.jsonl", state.update)
    return state


_PHASES = ("rollout", "scoring", "update")


def _peak_memory_gib(device: torch.device) -> float:
    """Peak GPU memory allocated on ``device`` since the last call, in GiB (0 on a CPU)."""
    if device.type != "cuda":
        return 0.0
    peak = torch.cuda.max_memory_allocated(device) / 2**30
    torch.cuda.reset_peak_memory_stats(device)
    return peak


def _sum_over_processes(acc: Any) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """A sum over all processes (None with one process)."""
    if acc.num_processes == 1:
        return None
    return lambda t: acc.reduce(t, reduction="sum")


def ppo_iteration(state: TrainState) -> dict[str, float]:
    """One PPO update: play a batch of episodes, score them, and optimise for K epochs."""
    cfg, acc, model = state.cfg, state.accelerator, state.model
    p, r = cfg.ppo, cfg.rollout
    started = time.perf_counter()
    peaks = [_peak_memory_gib(acc.device)]  # resets the peak; then one per phase

    # 1. rollout: whole episodes, one token sequence each, policy tokens masked
    model.eval()
    first = state.update * p.episodes_per_batch + acc.process_index * state.local_episodes
    seeds = [cfg.log.seed * 1_000_003 + first + i for i in range(state.local_episodes)]
    episodes = play_episodes(
        model,
        state.tokenizer,
        state.envs,
        seeds,
        r,
        stop_ids=state.stop_ids,
        generator=state.sampler,
        device=acc.device,
        reward_fn=state.reward_fn,
    )
    state.episodes = episodes
    batch = Batch.collate(episodes, state.tokenizer.pad_token_id, acc.device)  # (B, T)
    mask = batch.policy_mask  # (B, T)
    rolled_out = time.perf_counter()
    peaks.append(_peak_memory_gib(acc.device))

    # 2. score: log-probs and values with the adapter on, reference log-probs with it off, in
    #    the micro-batches (and the train mode) of the first epoch's pass, so its ratio is 1
    orders = [
        torch.randperm(state.local_episodes, generator=state.shuffler) for _ in range(p.ppo_epochs)
    ]
    micro = [
        [o[i : i + state.micro_batch].to(acc.device) for i in range(0, len(o), state.micro_batch)]
        for o in orders
    ]
    model.train()
    logprobs, values, entropy = score(model, batch, micro[0], r.temperature)
    with state.policy.adapter_disabled():
        ref_logprobs, _, _ = score(model, batch, micro[0], r.temperature)
    known = mask & torch.isfinite(batch.sample_logprobs)
    logprob_gap = masked_mean((logprobs - batch.sample_logprobs).abs(), known)  # sampler-scorer

    # 3. per-token rewards: -beta * KL on every policy token, env reward on each reply's last
    beta = state.kl_ctl.value
    rewards, kl = token_rewards(batch.env_rewards, logprobs, ref_logprobs, mask, beta)  # (B, T)

    # 4. advantages: GAE over the policy tokens (env tokens skipped), whitened over the whole
    #    batch (statistics summed over all processes)
    advantages, returns = compute_gae(rewards, values, mask, p.gamma, p.lam, p.turn_gamma)  # (B, T)
    if p.whiten_advantages:
        advantages = masked_whiten(advantages, mask, all_reduce=_sum_over_processes(acc))

    # 5. K epochs of minibatch updates: clipped policy and value losses, entropy bonus, each a
    #    token mean over the whole minibatch (gradient accumulation over its micro-batches),
    #    actor and critic gradient norms clipped separately
    scored = time.perf_counter()
    peaks.append(_peak_memory_gib(acc.device))
    stats: dict[str, list[float]] = defaultdict(list)
    tensors = [batch.input_ids, batch.attention_mask, mask, logprobs, values, advantages, returns]
    per_minibatch = state.local_minibatch // state.micro_batch
    for epoch in range(p.ppo_epochs):
        # policy tokens of each minibatch over all processes -> each micro-batch's normaliser
        counts = torch.stack(
            [mask[torch.cat(micro[epoch][j : j + per_minibatch])].sum() for j in
             range(0, len(micro[epoch]), per_minibatch)]
        ).float()  # fmt: skip
        counts = acc.reduce(counts, reduction="sum") / (acc.num_processes * per_minibatch)
        for k, idx in enumerate(micro[epoch]):
            ids, attn, m, old_logp, old_v, adv, ret = rows(tensors, batch.attention_mask, idx)
            with acc.accumulate(model):
                new_logp, new_v, new_entropy = model(  # (b, t) each
                    ids, attn, m, temperature=r.temperature, entropy_grad=p.ent_coef > 0
                )
                out = ppo_losses(
                    new_logp, old_logp, new_v, old_v, adv, ret, new_entropy, m,
                    clip_ratio=p.clip_ratio, clip_value=p.clip_value, vf_coef=p.vf_coef,
                    ent_coef=p.ent_coef, max_log_ratio=p.max_log_ratio,
                    dual_clip=p.dual_clip or None, token_count=counts[k // per_minibatch],
                )  # fmt: skip
                if epoch == 0 and k == 0:  # before any optimizer step: the ratio must be 1
                    dev = torch.where(m, (new_logp - old_logp).abs(), torch.zeros_like(new_logp))
                    stats["losses/first_log_ratio_max"].append(float(dev.max().detach()))
                acc.backward(out.loss)
                if acc.sync_gradients:
                    norms = clip_gradients(
                        acc, state.policy, p.max_grad_norm, p.max_grad_norm_critic
                    )
                    stats["losses/grad_norm_actor"].append(norms[0])
                    stats["losses/grad_norm_critic"].append(norms[1])
                state.optimizer.step()
                state.optimizer.zero_grad()
            for name in ("policy", "value", "entropy", "approx_kl", "clipfrac", "value_clipfrac"):
                stats[f"losses/{name}"].append(float(getattr(out, name).detach()))
    model.eval()
    finished = time.perf_counter()
    peaks.append(_peak_memory_gib(acc.device))
    on_gpu = acc.device.type == "cuda"  # peak memory per phase (GiB): GPUs only

    # 6. metrics (averaged over processes), then adapt beta
    replies = sum(len(e.replies) for e in episodes)
    local = {
        "env/return": float(np.mean([e.env_return for e in episodes])),
        **{
            k: float(np.mean([e.metrics.get(k, np.nan) for e in episodes])) for k in EPISODE_METRICS
        },
        "objective/kl": float(kl.sum(1).mean()),
        "objective/kl_coef": beta,
        "objective/kl_penalty": float(beta * kl.sum(1).mean()),
        "objective/reward": float(rewards.sum(1).mean()),
        "objective/entropy": float(masked_mean(entropy, mask)),
        **{k: float(np.mean(v)) for k, v in stats.items()},
        "losses/explained_variance": explained_variance(values, returns, mask),
        "rollout/logprob_gap": float(logprob_gap),
        "rollout/episode_tokens": float(batch.attention_mask.sum(1).float().mean()),
        "rollout/policy_tokens": float(mask.sum(1).float().mean()),
        "rollout/noncanonical_turns": sum(e.noncanonical_turns for e in episodes) / max(replies, 1),
        "rollout/stop_frac": float(np.mean([e.ended_by == "stop" for e in episodes])),
        "rollout/token_limit_frac": float(np.mean([e.ended_by == "tokens" for e in episodes])),
        "charts/tokens_per_s": float(batch.attention_mask.sum()) / (finished - started),
        "charts/rollout_s": rolled_out - started,
        "charts/update_s": finished - scored,
        "charts/iteration_s": finished - started,
        **{f"memory/{k}_gib": g for k, g in zip(_PHASES, peaks[1:], strict=True) if on_gpu},
    }
    values_t = torch.tensor(list(local.values()), dtype=torch.float64, device=acc.device)
    reduced = acc.reduce(values_t, reduction="mean").tolist()
    metrics = dict(zip(local, reduced, strict=True))
    metrics["charts/tokens_per_s"] *= acc.num_processes  # all processes work at once
    state.update += 1
    metrics["charts/episodes"] = float(state.update * p.episodes_per_batch)
    state.kl_ctl.update(metrics["objective/kl"], p.episodes_per_batch)
    return metrics


def clip_gradients(
    accelerator: Any, model: PolicyValueModel, max_actor: float, max_critic: float
) -> tuple[float, float]:
    """Clip the actor's (LoRA) and the critic's (value head) gradient norms separately, so a
    large value-loss gradient cannot shrink the policy's step; returns both norms before
    clipping. Under FSDP, accelerate clips all parameters as one group (its limitation)."""
    norms = []
    for params, limit in (
        (model.actor_parameters(), max_actor),
        (model.critic_parameters(), max_critic),
    ):
        norm = accelerator.clip_grad_norm_(params, limit)
        norms.append(float(norm) if norm is not None else math.nan)
    return norms[0], norms[1]


@dataclass
class TrainResult:
    """What a run produced."""

    output_dir: Path
    checkpoint: Path | None
    history: list[dict[str, float]] = field(default_factory=list)
    model: PolicyValueModel | None = None
    tokenizer: Any = None
    main_process: bool = True


def _flat_config(cfg: TrainConfig) -> dict[str, Any]:
    """The settings as TensorBoard hyper-parameters (scalars and strings only)."""
    flat = {}
    for group, values in cfg.to_dict().items():
        for name, value in values.items():
            flat[f"{group}/{name}"] = (
                value if isinstance(value, int | float | str | bool) else str(value)
            )
    return flat


def _log_samples(state: TrainState, out: Path, main: bool) -> None:
    """Every ``log.sample_every`` updates: a few of this update's dialogues into
    ``samples.jsonl`` and TensorBoard's text tab (``samples/dialogues``)."""
    every = state.cfg.log.sample_every
    if not (main and every and state.update % every == 0):
        return
    rows = sample_rows(state.update, state.episodes)
    for row in rows:
        append_metrics(out / "samples.jsonl", row)
    if state.cfg.log.tensorboard and rows:
        state.accelerator.log({"samples/dialogues": samples_markdown(rows)}, step=state.update)


def train(
    cfg: TrainConfig, *, resume: str | Path | None = None, reward_fn: RewardFn | None = None
) -> TrainResult:
    """Run PPO for ``cfg.log.updates`` updates (continuing a run when ``resume`` is given).

    Writes into ``cfg.log.output_dir``: ``config.json``, ``metrics.jsonl`` (a line per update),
    ``samples.jsonl`` (sample dialogues every ``log.sample_every`` updates; ``clarify-gym view``),
    TensorBoard logs (``tensorboard/``), checkpoints (``checkpoints/update-*``; each one is a
    loadable peft adapter) and ``learning_curve.png``. ``reward_fn`` replaces the env's reward
    of each reply (see :data:`clarify_agents.ppo.rollout.RewardFn`). The caller's torch RNG state is left
    as it was.
    """
    from tqdm.auto import tqdm

    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        state = setup(cfg, resume=resume, reward_fn=reward_fn)
        acc, out = state.accelerator, Path(cfg.log.output_dir)
        main = acc.is_main_process
        if main:
            out.mkdir(parents=True, exist_ok=True)
            (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
        if cfg.log.tensorboard:
            acc.init_trackers("tensorboard", config=_flat_config(cfg))
        history: list[dict[str, float]] = []
        last: Path | None = None
        bar = tqdm(
            total=cfg.log.updates,
            initial=state.update,
            desc="PPO",
            unit="update",
            disable=not (cfg.log.progress and main),
        )
        try:
            while state.update < cfg.log.updates:
                metrics = ppo_iteration(state)
                row = {"update": state.update, **metrics}
                history.append(row)
                if main:
                    append_metrics(out / "metrics.jsonl", row)
                acc.log(metrics, step=state.update)
                _log_samples(state, out, main)
                bar.update(1)
                bar.set_postfix(
                    ret=f"{metrics['env/return']:.3f}",
                    kl=f"{metrics['objective/kl']:.3f}",
                    tok_s=f"{metrics['charts/tokens_per_s']:.0f}",
                )
                if state.update % cfg.log.save_every == 0 or state.update == cfg.log.updates:
                    last = ckpt.save_checkpoint(state)
        finally:
            bar.close()
            acc.end_training()
            for env in state.envs:
                env.close()
        if main and (out / "metrics.jsonl").exists():
            plot_learning_curve(out / "metrics.jsonl", out / "learning_curve.png")
    return TrainResult(out, last, history, state.policy, state.tokenizer, main)
