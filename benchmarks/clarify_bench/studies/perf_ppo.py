"""One PPO iteration, ours against TRL 1.12's ``trl.experimental.ppo.PPOTrainer``, side by side.

Prints JSON and saves it to ``benchmarks/results/perf_ppo.json``: for each model, tokens/s and
peak memory of both trainers, and ``tokens_per_s_ratio`` / ``peak_memory_ratio`` (ours / TRL's;
the top-level keys are those of the first model). Targets (issue 6): >= 1.5x tokens/s and <= 0.6x
peak memory; (issue 10) SmolLM2 row >= 5x the 31 tokens/s of the float32 trainer that
re-prefilled every turn. Also per model: our iteration's estimated FLOPs
(:func:`iteration_flops`), the bf16 (or float32) matmul roofline measured in the same run on the
same threads, and the fraction of it reached; and two numerics checks of ours, the first
micro-batch's max |log ratio| (0: the old log-probs match the first pass) and the mean
sampler-vs-scorer log-prob gap.

Run: ``python -m clarify_bench.studies.perf_ppo [--models tiny,smollm2-135m] [--episodes 16]``.

How it is measured, identically for both:

* the same base weights (``--dtype``: float32, or bfloat16 on both sides), tokenizer, prompts
  (the chat-templated visible tasks of the same env seeds), batch (episodes, response length, PPO epochs, minibatch, micro-batch,
  forward batch), the same LoRA adapter on the policy, one torch thread;
* each trainer runs in its own subprocess, one after the other: ours in this environment, TRL
  1.12 in a separate virtual environment (``$CLARIFY_GYM_CACHE/trl112-venv``) that this script
  creates on first use with one ``pip install trl==1.12.0 torch==2.13.0 ...``;
* the time is one cold PPO iteration (rollout, scoring, reward, advantages, all epochs of
  updates) after the models are loaded, as wall-clock and as CPU time (the machine may be
  shared: CPU time is less sensitive to other processes); tokens are the prompt + response
  tokens of the batch;
* memory is the subprocess's peak resident set size (``ru_maxrss``), also reported above the
  resident size it had after its imports (before any model was loaded). Our trainer fixes
  glibc's malloc mmap threshold at 1 MiB on CPU (:mod:`clarify_agents.ppo.host_memory`; ``--ours-mmap-
  threshold-mb 0`` turns it off); TRL runs with glibc's default unless
  ``--trl-mmap-threshold-mb`` gives it the same setting through ``MALLOC_MMAP_THRESHOLD_``.

TRL's set-up is its documented one: a policy (here with the same LoRA adapter, so its reference
is the adapter-disabled policy and no copy is made), a separate value model initialised from the
policy's weights (``AutoModelForSequenceClassification``, fully trained, as TRL does) and a
reward model, here a tiny random 2-layer classifier over the same vocabulary. Ours is
single-turn for this comparison (``max_questions=1``): one question per episode, rewarded by the
offline env. TRL generates exactly ``response_length`` tokens (no stop token); ours stops at
``<|im_end|>``: the token counts each side processed are measured, not assumed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parents[2] / "results" / "perf_ppo.json"
TRL_PINS = (
    "trl==1.12.0",
    "torch==2.13.0",
    "transformers==5.23.0",
    "peft==0.21.2",
    "accelerate==1.15.0",
    "datasets",
)
LORA: dict[str, Any] = {
    "r": 8,
    "lora_alpha": 16,
    "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
}


def _rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---- workers (run in subprocesses) ---------------------------------------------------------


def worker_ours(spec: dict[str, Any]) -> dict[str, Any]:
    """One iteration of clarify_agents.ppo (this environment)."""
    import accelerate  # noqa: F401  (imported before the baseline, like TRL's side)
    import peft  # noqa: F401
    import torch
    import transformers  # noqa: F401
    from clarify_agents.ppo.presets import preset
    from clarify_agents.ppo.trainer import ppo_iteration, setup

    torch.set_num_threads(spec["threads"])
    baseline = _rss_mb()
    cfg = preset("tiny").replace(
        model=spec["model_spec"],
        dtype=spec["dtype"],
        output_dir=spec["out"],
        tensorboard=False,
        progress=False,
        max_questions=1,
        split=spec["split"],
        episodes_per_batch=spec["episodes"],
        minibatch_size=spec["minibatch"],
        micro_batch_size=spec["micro"],
        ppo_epochs=spec["epochs"],
        max_new_tokens=spec["response_length"],
        max_episode_tokens=spec["max_episode_tokens"],
        generation_batch_size=spec["episodes"],
        forward_batch_size=spec["forward_batch"],
        lora_r=LORA["r"],
        lora_alpha=LORA["lora_alpha"],
        lr_actor=spec["lr"],
        seed=spec["seed"],
        gradient_checkpointing=spec["gradient_checkpointing"],
        cpu_mmap_threshold_mb=spec["ours_mmap_threshold_mb"],
    )
    state = setup(cfg)
    started, cpu_started = time.perf_counter(), time.process_time()
    metrics = ppo_iteration(state)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    tokens = metrics["rollout/episode_tokens"] * spec["episodes"]
    policy_tokens = metrics["rollout/policy_tokens"] * spec["episodes"]
    flops = iteration_flops(state.policy.causal_lm, tokens, policy_tokens, spec["epochs"])
    return {
        "dtype": str(state.policy.causal_lm.dtype).removeprefix("torch."),
        "estimated_flops": flops,
        "achieved_gflop_per_s": flops / seconds / 1e9,
        "first_log_ratio_max": metrics["losses/first_log_ratio_max"],
        "sampler_scorer_logprob_gap": metrics["rollout/logprob_gap"],
        "tokens": tokens,
        "policy_tokens": metrics["rollout/policy_tokens"] * spec["episodes"],
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "tokens_per_s": tokens / seconds,
        "tokens_per_cpu_s": tokens / cpu_seconds,
        "phases_s": {k: metrics[f"charts/{k}_s"] for k in ("rollout", "update", "iteration")},
        "peak_rss_mb": _peak_mb(),
        "rss_after_imports_mb": baseline,
        "malloc_mmap_threshold_mb": spec["ours_mmap_threshold_mb"],
    }


def worker_trl(spec: dict[str, Any]) -> dict[str, Any]:
    """One iteration of TRL 1.12's experimental PPOTrainer (the TRL virtual environment)."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import (
        AutoModelForCausalLM,
        AutoModelForSequenceClassification,
        AutoTokenizer,
    )
    from trl.experimental.ppo import PPOConfig, PPOTrainer

    torch.set_num_threads(spec["threads"])
    baseline = _rss_mb()
    torch.manual_seed(spec["seed"])
    tokenizer = AutoTokenizer.from_pretrained(spec["model_dir"], padding_side="left")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    dtype = getattr(torch, spec["dtype"])
    policy = AutoModelForCausalLM.from_pretrained(spec["model_dir"], dtype=dtype)
    value = AutoModelForSequenceClassification.from_pretrained(
        spec["model_dir"], num_labels=1, dtype=dtype
    )
    reward = AutoModelForSequenceClassification.from_pretrained(
        spec["reward_dir"], num_labels=1, dtype=dtype
    )
    for model in (value, reward):
        model.config.pad_token_id = tokenizer.pad_token_id
    dataset = Dataset.from_dict({"input_ids": spec["prompts"]})
    episodes, minibatch, micro = spec["episodes"], spec["minibatch"], spec["micro"]
    args = PPOConfig(
        output_dir=spec["out"],
        per_device_train_batch_size=micro,
        gradient_accumulation_steps=minibatch // micro,
        num_mini_batches=episodes // minibatch,
        total_episodes=episodes,
        num_ppo_epochs=spec["epochs"],
        local_rollout_forward_batch_size=spec["forward_batch"],
        response_length=spec["response_length"],
        learning_rate=spec["lr"],
        num_sample_generations=0,
        report_to=[],
        save_strategy="no",
        disable_tqdm=True,
        seed=spec["seed"],
        gradient_checkpointing=spec["gradient_checkpointing"],
        use_cpu=True,
    )
    trainer = PPOTrainer(
        args=args,
        processing_class=tokenizer,
        model=policy,
        ref_model=None,
        reward_model=reward,
        train_dataset=dataset,
        value_model=value,
        peft_config=LoraConfig(task_type="CAUSAL_LM", lora_dropout=0.0, **LORA),
    )
    started, cpu_started = time.perf_counter(), time.process_time()
    trainer.train()
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    tokens = sum(len(p) for p in spec["prompts"]) + episodes * spec["response_length"]
    return {
        "dtype": spec["dtype"],
        "tokens": tokens,
        "policy_tokens": episodes * spec["response_length"],
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "tokens_per_s": tokens / seconds,
        "tokens_per_cpu_s": tokens / cpu_seconds,
        "peak_rss_mb": _peak_mb(),
        "rss_after_imports_mb": baseline,
        "malloc_mmap_threshold_mb": spec["trl_mmap_threshold_mb"],
    }


# ---- the driver ----------------------------------------------------------------------------


def iteration_flops(lm: Any, tokens: float, policy_tokens: float, epochs: int) -> float:
    """Estimated FLOPs of one of our PPO iterations (matmuls only, attention scores left out).

    With P the weights of the transformer body (no embeddings) and H x V the LM head: rollout
    2P per token (each token once, KV cache) + 2HV per sampled token; scoring twice (policy and
    reference) the same; each epoch of LoRA training 4P per token (forward, and the backward to
    the activations: frozen weights get no weight gradient) + 4HV per policy token.
    """
    embedding = lm.get_input_embeddings().weight
    head = lm.get_output_embeddings().weight
    total = sum(p.numel() for n, p in lm.named_parameters() if "lora_" not in n)
    untied = head.data_ptr() != embedding.data_ptr()
    body = total - embedding.numel() - (head.numel() if untied else 0)
    hv = head.numel()
    rollout = 2 * body * tokens + 2 * hv * policy_tokens
    return float(3 * rollout + epochs * (4 * body * tokens + 4 * hv * policy_tokens))


def matmul_roofline(dtype: str, threads: int, size: int = 2048, repeats: int = 5) -> float:
    """GFLOP/s of a ``size``-cubed matmul in ``dtype`` on ``threads`` threads (best of repeats)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a = torch.randn(size, size).to(getattr(torch, dtype))
        b = torch.randn(size, size).to(getattr(torch, dtype))
        torch.matmul(a, b)  # warm-up
        best = math.inf
        for _ in range(repeats):
            started = time.perf_counter()
            torch.matmul(a, b)
            best = min(best, time.perf_counter() - started)
    finally:
        torch.set_num_threads(before)
    return 2 * size**3 / best / 1e9


def trl_python() -> Path:
    """The TRL 1.12 virtual environment's interpreter, created and installed on first use."""
    from clarify_agents.models import cache_dir

    venv = cache_dir() / "trl112-venv"
    python = venv / "bin" / "python"
    check = "import trl, sys; sys.exit(trl.__version__ != '1.12.0')"
    if python.exists() and subprocess.run([python, "-c", check], check=False).returncode == 0:
        return python
    print(f"installing TRL 1.12 into {venv} (once) ...", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, *TRL_PINS], check=True)  # one command: torch stays pinned
    return python


def tiny_reward_model(model_dir: Path, vocab: int) -> Path:
    """A random 2-layer Qwen2 classifier over ``vocab`` tokens (TRL's reward model)."""
    import torch
    from clarify_agents.models import cache_dir, tiny_qwen2_config
    from transformers import AutoTokenizer, Qwen2ForSequenceClassification

    target = cache_dir() / "models" / f"tiny-reward-{vocab}"
    if (target / "config.json").exists():
        return target
    config = tiny_qwen2_config(vocab, num_labels=1)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = Qwen2ForSequenceClassification(config)
    model.save_pretrained(target)
    AutoTokenizer.from_pretrained(model_dir).save_pretrained(target)
    return target


def prompts_for(spec: dict[str, Any], tokenizer: Any) -> list[list[int]]:
    """The token ids of the first prompts our trainer plays (same env, same seeds)."""
    import gymnasium as gym
    from clarify_agents.ppo.rollout import encode, render
    from clarify_agents.prompts import observation_to_messages

    import clarify_gym  # noqa: F401

    env = gym.make("ProactiveGather-v0", split=spec["split"], max_questions=1)
    prompts = []
    for i in range(spec["episodes"]):
        obs, _ = env.reset(seed=spec["seed"] * 1_000_003 + i)  # the trainer's episode seeds
        prompts.append(encode(tokenizer, render(tokenizer, observation_to_messages(obs))))
    return prompts


def run_worker(python: Path, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    env.update({"OMP_NUM_THREADS": str(spec["threads"]), "TOKENIZERS_PARALLELISM": "false"})
    if name == "trl" and spec["trl_mmap_threshold_mb"] > 0:  # glibc's env form of mallopt
        env["MALLOC_MMAP_THRESHOLD_"] = str(int(spec["trl_mmap_threshold_mb"] * 2**20))
    done = subprocess.run(
        [str(python), str(Path(__file__).resolve()), "--worker", name],
        input=json.dumps(spec),
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{name} worker failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def compare(model: str, args: argparse.Namespace, trl: Path, workdir: Path) -> dict[str, Any]:
    from clarify_agents.models import load_tokenizer, resolve_base

    model_dir = Path(resolve_base(model)) if model == "tiny" else None
    if model_dir is None:
        from clarify_agents.models import converted_checkpoint, resolve_model

        model_dir = converted_checkpoint(resolve_model(model))  # the plain checkpoint TRL can load
    tokenizer = load_tokenizer(str(model_dir))
    spec: dict[str, Any] = {
        "model_spec": model,
        "model_dir": str(model_dir),
        "reward_dir": str(tiny_reward_model(model_dir, len(tokenizer))),
        "split": "train",
        "episodes": args.episodes,
        "minibatch": args.minibatch,
        "micro": args.micro,
        "forward_batch": args.forward_batch,
        "epochs": args.epochs,
        "response_length": args.response_length,
        "max_episode_tokens": 4096,
        "lr": 1e-4,
        "seed": 0,
        "threads": args.threads,
        "gradient_checkpointing": args.gradient_checkpointing,
        "dtype": args.dtype,
        "ours_mmap_threshold_mb": args.ours_mmap_threshold_mb,
        "trl_mmap_threshold_mb": args.trl_mmap_threshold_mb,
    }
    spec["prompts"] = prompts_for(spec, tokenizer)
    roofline = matmul_roofline(args.dtype, args.threads)
    load = {"ours": os.getloadavg()[0]}
    ours = run_worker(Path(sys.executable), "ours", {**spec, "out": str(workdir / f"ours-{model}")})
    load["trl_1_12"] = os.getloadavg()[0]
    theirs = run_worker(trl, "trl", {**spec, "out": str(workdir / f"trl-{model}")})

    def above(r: dict[str, Any]) -> float:
        return r["peak_rss_mb"] - r["rss_after_imports_mb"]

    return {
        "model": model,
        "tokens_per_s_ratio": round(ours["tokens_per_s"] / theirs["tokens_per_s"], 3),
        "tokens_per_cpu_s_ratio": round(ours["tokens_per_cpu_s"] / theirs["tokens_per_cpu_s"], 3),
        "peak_memory_ratio": round(ours["peak_rss_mb"] / theirs["peak_rss_mb"], 3),
        "peak_memory_above_imports_ratio": round(above(ours) / above(theirs), 3),
        "ours": ours,
        "trl_1_12": theirs,
        "batch": {k: spec[k] for k in ("episodes", "minibatch", "micro", "forward_batch", "epochs", "response_length")},
        "mean_prompt_tokens": sum(map(len, spec["prompts"])) / len(spec["prompts"]),
        "gradient_checkpointing": spec["gradient_checkpointing"],
        "dtype": args.dtype,
        "threads": args.threads,
        "matmul_roofline_gflop_per_s": round(roofline, 1),
        "ours_roofline_fraction": round(ours["achieved_gflop_per_s"] / roofline, 4),
        "load_average_1min_before": load,
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", choices=["ours", "trl"], help=argparse.SUPPRESS)
    parser.add_argument("--models", default="tiny,smollm2-135m", help="comma-separated model specs")
    parser.add_argument("--episodes", type=int, default=16)
    parser.add_argument("--minibatch", type=int, default=8)
    parser.add_argument("--micro", type=int, default=4)
    parser.add_argument("--forward-batch", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--response-length", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--dtype",
        choices=["float32", "bfloat16"],
        default="bfloat16",
        help="weights' dtype for both trainers (bfloat16: native on AMX/AVX512-BF16 CPUs)",
    )
    parser.add_argument(
        "--gradient-checkpointing",
        action="store_true",
        help="on for both trainers (off by default)",
    )
    parser.add_argument(
        "--ours-mmap-threshold-mb",
        type=float,
        default=1.0,
        help="our trainer's cpu_mmap_threshold_mb (its default 1; 0: glibc's dynamic default)",
    )
    parser.add_argument(
        "--trl-mmap-threshold-mb",
        type=float,
        default=0.0,
        help="MALLOC_MMAP_THRESHOLD_ for TRL's process, in MiB (0, the default: TRL as shipped)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.worker:
        spec = json.loads(sys.stdin.read())
        result = (worker_ours if args.worker == "ours" else worker_trl)(spec)
        print(json.dumps(result))
        return 0

    import tempfile

    trl = trl_python()
    runs = []
    with tempfile.TemporaryDirectory(prefix="perf_ppo-") as tmp:
        for model in [m.strip() for m in args.models.split(",") if m.strip()]:
            runs.append(compare(model, args, trl, Path(tmp)))
            print(f"{model}: done", file=sys.stderr)
    head = runs[0]
    report = {
        "benchmark": "perf_ppo",
        "tokens_per_s_ratio": head["tokens_per_s_ratio"],
        "peak_memory_ratio": head["peak_memory_ratio"],
        "targets": {"tokens_per_s_ratio": ">= 1.5", "peak_memory_ratio": "<= 0.6"},
        "runs": runs,
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_average_1min": os.getloadavg()[0],
        },
        "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    print(json.dumps(report, indent=2))
    from clarify_bench.harness.runfiles import write_json_atomic  # (not in the TRL worker's venv)

    write_json_atomic(args.out, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
