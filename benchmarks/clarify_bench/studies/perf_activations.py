"""What one PPO training forward keeps for the backward pass, per decoder layer, by dtype and shape.

``python -m clarify_bench.studies.perf_activations [--model smollm2-135m] [--layers 2] [--batch 4]
[--tokens 465]`` builds our :class:`clarify_agents.ppo.model.PolicyValueModel` on the model's real
config cut to ``--layers`` decoder layers (random weights: the sizes do not depend on them), in
bf16 with the learning benchmark's LoRA (r 8, the 7 projections), and runs one training-mode
forward over a padded micro-batch (perf_ppo's shape by default: 4 episodes of 465 tokens, the
last 60 of three of them padding). A ``saved_tensors_hooks`` pair records every distinct
storage autograd keeps, weights excluded. It does so twice: with the LoRA matmuls in bf16
(ours, ``lora_in_base_dtype``) and with peft's default float32 LoRA inputs. No timing: the
figures are sizes, the same on any machine.

Prints JSON and writes ``benchmarks/results/perf_activations.json``: per variant, MB per layer
(the backbone's, the LM head's vocabulary-wide tensors apart) and the largest entries.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parents[2] / "results" / "perf_activations.json"
MB = 2**20


def build(model_spec: str, layers: int) -> Any:
    """Our policy-value model on ``model_spec``'s config with ``layers`` layers, bf16, LoRA r 8."""
    import torch
    import transformers
    from clarify_agents.models import converted_checkpoint, resolve_base, resolve_model
    from clarify_agents.ppo.model import PolicyValueModel
    from clarify_agents.random_models import is_random_spec, random_config
    from peft import LoraConfig, get_peft_model

    spec = resolve_base(model_spec)
    if is_random_spec(spec):
        config = random_config(str(spec))
    else:
        source = resolve_model(spec)
        path = str(converted_checkpoint(source)) if source.gguf_file else source.path
        config = transformers.AutoConfig.from_pretrained(path)
    config.num_hidden_layers = layers
    config.use_cache = False
    torch.manual_seed(0)
    lm = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    lora = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=targets,
                      task_type="CAUSAL_LM")  # fmt: skip
    policy = get_peft_model(lm, lora)
    head = torch.nn.Linear(config.hidden_size, 1, dtype=torch.float32)
    return PolicyValueModel(policy, head).train()


def saved(model: Any, batch: int, tokens: int, pad: int) -> dict[str, Any]:
    """The storages one training forward saves for backward (weights excluded)."""
    import torch

    vocab = model.causal_lm.config.vocab_size
    ids = torch.randint(0, min(vocab, 1000), (batch, tokens))
    attn = torch.ones_like(ids)
    attn[1:, tokens - pad :] = 0
    mask = torch.zeros_like(ids, dtype=torch.bool)
    mask[:, tokens - pad - 32 : tokens - pad] = True  # 32 policy tokens before the padding
    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, tuple[str, tuple[int, ...], int]] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        key = t.untyped_storage().data_ptr()
        if key not in weights and key not in seen:
            seen[key] = (str(t.dtype).removeprefix("torch."), tuple(t.shape),
                         t.untyped_storage().nbytes())  # fmt: skip
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(ids, attn, mask)
    by_kind: collections.Counter[str] = collections.Counter()
    backbone = 0
    for dtype, shape, nbytes in seen.values():
        if vocab in shape:
            continue  # the float32 LM head's logits and log-softmax at the policy tokens
        backbone += nbytes
        by_kind[f"{dtype} {list(shape)}"] += nbytes
    return {"backbone_mb": backbone / MB,
            "largest": {k: round(v / MB, 2) for k, v in by_kind.most_common(6)}}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m clarify_bench.studies.perf_activations",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=465)
    parser.add_argument("--pad", type=int, default=60, help="padding at the end of rows 2..B")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.layers < 1 or args.batch < 1 or not args.tokens - args.pad > 33:
        print("perf_activations: error: need --layers >= 1, --batch >= 1 and --tokens - --pad "
              "> 33 (32 policy tokens after a prompt)", file=sys.stderr)  # fmt: skip
        return 2
    import torch

    from clarify_bench.harness.runfiles import git_commit, now_iso, write_json_atomic

    torch.set_num_threads(1)
    model = build(args.model, args.layers)
    variants = {}
    for name, flag in (("lora_in_bf16", True), ("peft_default_fp32_lora_inputs", False)):
        model.lora_in_base_dtype = flag
        out = saved(model, args.batch, args.tokens, args.pad)
        out["mb_per_layer"] = round(out.pop("backbone_mb") / args.layers, 2)
        variants[name] = out
    ours, peft = (variants[k]["mb_per_layer"] for k in variants)
    report = {
        "benchmark": "perf_activations",
        "command": " ".join(["python -m clarify_bench.studies.perf_activations", *(argv or sys.argv[1:])]),
        "model": args.model, "layers": args.layers, "micro_batch": [args.batch, args.tokens],
        "variants": variants, "ratio_ours_over_peft_default": round(ours / peft, 3),
        "git_commit": git_commit(), "date": now_iso(),
    }  # fmt: skip
    write_json_atomic(args.out, report)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
