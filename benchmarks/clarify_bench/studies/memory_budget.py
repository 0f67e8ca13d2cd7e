"""GPU memory budget of a PPO preset, computed from the model's real dimensions.

``python -m clarify_bench.studies.memory_budget [--preset qwen2.5-7b] [--out docs/memory_budget.md]`` prints (and
writes) the budget as Markdown. Figures are GiB (2**30 bytes). The rollout and the update are
separate phases from scoring and the update: the KV cache and the prefill activations are freed
before the next phase starts, so the peak is the largest phase, not the sum.

>>> d = QWEN25_7B
>>> round(d.params() / 1e9, 2), round(d.lora_params(16) / 1e6, 1)
(7.62, 40.4)
>>> round(d.kv_bytes_per_token() / 1024)  # 2 (K, V) x 28 layers x 4 KV heads x 128 dims x 2 bytes
56
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from clarify_agents.ppo.config import TrainConfig
from clarify_agents.ppo.presets import preset

__all__ = ["QWEN25_7B", "ModelDims", "budget", "to_markdown"]

GIB = 2**30
BF16 = 2
FP32 = 4


@dataclass(frozen=True)
class ModelDims:
    """The dimensions of a Qwen2-style decoder (biases on q/k/v, SwiGLU MLP, RMSNorm)."""

    name: str
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    tied_embeddings: bool = False

    def params(self) -> int:
        """Parameters of the whole model."""
        h, kv = self.hidden, self.kv_heads * self.head_dim
        attn = (h * h + h) + 2 * (h * kv + kv) + h * h  # q, k, v (with bias), o
        mlp = 3 * h * self.intermediate
        per_layer = attn + mlp + 2 * h  # + two RMSNorms
        embeddings = self.vocab * h * (1 if self.tied_embeddings else 2)
        return self.layers * per_layer + embeddings + h

    def lora_params(self, r: int) -> int:
        """LoRA parameters with rank ``r`` on q, k, v, o, gate, up and down projections."""
        h, kv, i = self.hidden, self.kv_heads * self.head_dim, self.intermediate
        shapes = [(h, h), (h, kv), (h, kv), (h, h), (h, i), (h, i), (i, h)]
        return self.layers * sum(r * (a + b) for a, b in shapes)

    def kv_bytes_per_token(self) -> int:
        """KV-cache bytes per token in bf16."""
        return 2 * self.layers * self.kv_heads * self.head_dim * BF16

    def layer_activation_elements_per_token(self) -> int:
        """bf16 values one decoder layer keeps for its backward pass, per token, with a fused
        (flash / memory-efficient) attention kernel: normed input, q, rotated q and k, k, v,
        attention output, o_proj output, residual, second norm, MLP output (8 x hidden,
        4 x kv width) and gate, up, activation, product (4 x intermediate)."""
        kv = self.kv_heads * self.head_dim
        return 8 * self.hidden + 4 * kv + 4 * self.intermediate


#: Qwen2.5-7B(-Instruct): config.json of the released model.
QWEN25_7B = ModelDims(
    name="Qwen/Qwen2.5-7B-Instruct",
    hidden=3584,
    layers=28,
    heads=28,
    kv_heads=4,
    head_dim=128,
    intermediate=18944,
    vocab=152064,
)


def budget(dims: ModelDims, cfg: TrainConfig) -> dict[str, list[tuple[str, float, str]]]:
    """Memory per phase (``rollout``, ``scoring``: the no-grad log-probabilities and values of
    policy and reference, ``update``), each a list of rows ``(item, GiB, how)``."""
    r, p = cfg.rollout, cfg.ppo
    weights = dims.params() * BF16
    lora = dims.lora_params(cfg.lora.lora_r)
    lora_bytes = lora * (FP32 + FP32 + 2 * FP32)  # fp32 weights, grads, Adam m and v
    value_head = (dims.hidden + 1) * 4 * FP32
    t = r.max_episode_tokens
    policy_tokens = cfg.env.max_questions * r.max_new_tokens  # most policy tokens per episode
    g = r.generation_batch_size
    kv = g * t * dims.kv_bytes_per_token()
    prefill_tokens = g * (t - r.max_new_tokens)
    prefill = prefill_tokens * (3 * dims.intermediate + 4 * dims.hidden) * BF16
    f = r.forward_batch_size
    score_layer = f * t * (3 * dims.intermediate + 4 * dims.hidden) * BF16
    score_logits = 3 * f * policy_tokens * dims.vocab * FP32  # logits, log-softmax, softmax
    b = p.micro_batch_size
    checkpoints = dims.layers * b * t * dims.hidden * BF16
    layer = 2 * b * t * dims.layer_activation_elements_per_token() * BF16  # + its gradients
    logits = 4 * b * policy_tokens * dims.vocab * FP32  # logits, log-softmax, softmax, grad
    shared = [
        ("base weights (bf16), shared by policy, reference and critic", weights, f"{dims.params() / 1e9:.2f} B params x 2 bytes"),
        ("LoRA weights + grads + AdamW states (fp32)", lora_bytes, f"{lora / 1e6:.1f} M params (r = {cfg.lora.lora_r}, 7 projections) x 16 bytes"),
        ("value head + its AdamW states", value_head, f"{dims.hidden + 1} params x 16 bytes"),
        ("float32 copy of the frozen LM head (sampler and scorer logits)", dims.vocab * dims.hidden * FP32, f"{dims.vocab} x {dims.hidden} x 4 bytes"),
    ]  # fmt: skip
    rollout = [
        *shared,
        ("KV cache", kv, f"{g} episodes x {t} tokens x {dims.kv_bytes_per_token() // 1024} KiB/token"),
        ("prefill activations (no grad, one layer at a time)", prefill, f"{g} x {t - r.max_new_tokens} tokens x (3 x {dims.intermediate} + 4 x {dims.hidden}) x 2 bytes"),
    ]  # fmt: skip
    scoring = [
        *shared,
        ("activations (no grad, one layer at a time)", score_layer, f"{f} episodes x {t} tokens x (3 x {dims.intermediate} + 4 x {dims.hidden}) x 2 bytes"),
        ("LM head on policy tokens only (fp32)", score_logits, f"3 x {f} episodes x {policy_tokens} policy tokens x {dims.vocab} x 4 bytes"),
    ]  # fmt: skip
    update = [
        *shared,
        ("checkpointed layer inputs", checkpoints, f"{dims.layers} layers x {b} episodes x {t} tokens x {dims.hidden} x 2 bytes"),
        ("one layer recomputed in backward (+ its grads)", layer, f"2 x {b} x {t} tokens x {dims.layer_activation_elements_per_token()} values x 2 bytes"),
        ("LM head on policy tokens only (fp32)", logits, f"4 x {b} episodes x {policy_tokens} policy tokens x {dims.vocab} x 4 bytes"),
    ]  # fmt: skip
    phases = {"rollout": rollout, "scoring": scoring, "update": update}
    return {k: [(n, v / GIB, h) for n, v, h in rows] for k, rows in phases.items()}


def to_markdown(dims: ModelDims, cfg: TrainConfig, preset_name: str, gpu_gib: float = 80.0) -> str:
    """The budget as a Markdown document."""
    phases = budget(dims, cfg)
    lines = [
        f"# GPU memory budget: `{preset_name}` preset on one {gpu_gib:.0f} GiB GPU",
        "",
        f"Computed by `python -m clarify_bench.studies.memory_budget --preset {preset_name}` from the real "
        f"dimensions of {dims.name} (hidden {dims.hidden}, {dims.layers} layers, {dims.heads} "
        f"query / {dims.kv_heads} KV heads, head dim {dims.head_dim}, intermediate "
        f"{dims.intermediate}, vocabulary {dims.vocab}, untied embeddings) and the preset's "
        f"settings (LoRA r = {cfg.lora.lora_r}, micro-batch {cfg.ppo.micro_batch_size} episodes, "
        f"{cfg.rollout.max_episode_tokens} tokens per episode, generation batch "
        f"{cfg.rollout.generation_batch_size} episodes, gradient checkpointing "
        f"{'on' if cfg.model.gradient_checkpointing else 'off'}). GiB = 2^30 bytes. These are "
        "estimates of tensor sizes, not measurements: add 2-5 GiB for the CUDA context, "
        "kernels' workspaces and allocator fragmentation.",
        "",
    ]
    peaks = {}
    for phase, rows in phases.items():
        title = {
            "rollout": "Rollout (sampling questions)",
            "scoring": "Scoring (no-grad log-probabilities and values, policy and reference)",
            "update": "PPO update (forward + backward)",
        }[phase]
        lines += [f"## {title}", "", "| item | GiB | how |", "|---|---:|---|"]
        lines += [f"| {name} | {gib:.2f} | {how} |" for name, gib, how in rows]
        peaks[phase] = sum(g for _, g, _ in rows)
        lines += [f"| **total** | **{peaks[phase]:.1f}** | |", ""]
    peak = max(peaks.values())
    lines += [
        "## Peak",
        "",
        f"The largest phase needs **{peak:.1f} GiB** of {gpu_gib:.0f} GiB, leaving "
        f"{gpu_gib - peak:.0f} GiB of headroom (e.g. a larger generation batch: each extra "
        f"episode costs {(dims.kv_bytes_per_token() * cfg.rollout.max_episode_tokens) / GIB:.2f} "
        "GiB of KV cache plus its prefill activations).",
        "",
        "For comparison, a design with separate policy, reference, value and reward models "
        f"(TRL's PPOTrainer) holds four bf16 copies of the weights: "
        f"{4 * dims.params() * BF16 / GIB:.0f} GiB before any activation, optimizer state or KV "
        "cache, and full fine-tuning adds fp32 master weights and AdamW states "
        f"({12 * dims.params() / GIB:.0f} GiB per trained model).",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="qwen2.5-7b")
    parser.add_argument("--gpu-gib", type=float, default=80.0)
    parser.add_argument("--out", type=Path, help="also write the Markdown to this file")
    args = parser.parse_args(argv)
    text = to_markdown(QWEN25_7B, preset(args.preset), args.preset, args.gpu_gib)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
