"""One backbone for policy, reference and critic: a causal LM with a LoRA adapter and a value head.

* **policy**: the base model with the peft LoRA adapter enabled;
* **reference**: the same modules with the adapter disabled (``with model.adapter_disabled():``),
  so no second copy of the base weights exists;
* **critic**: a linear value head on the last hidden state of the policy's backbone.

:class:`PolicyValueModel` computes log-probabilities, entropies and values only at the positions
that predict policy tokens: the LM head never runs over prompt or answer positions (with a
152k-word vocabulary that is most of the memory a naive implementation spends).

A trained checkpoint folder is a standard peft adapter (``adapter_config.json``,
``adapter_model.safetensors``) plus ``value_head.safetensors``, the tokenizer and
``clarify_gym_ppo.json`` naming the base model, so ``PeftModel.from_pretrained(base, folder)``
(or :func:`load_trained_policy`) loads the policy for benchmarking.

``"tiny"`` is a model spec of its own: a random 2-layer Qwen2 with a byte-level BPE tokenizer
trained on the bundled tasks, built once into the cache folder (:func:`tiny_checkpoint`).
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from agents.models import (
    QWEN25_CHAT_TEMPLATE,
    cache_dir,
    load_causal_lm,
    load_tokenizer,
    resolve_train_dtype,
)
from agents.ppo.config import LoraSettings, ModelSettings

__all__ = [
    "CHECKPOINT_META",
    "TINY",
    "PolicyValueModel",
    "build_policy_value_model",
    "load_trainable_weights",
    "load_trained_policy",
    "resolve_base",
    "save_policy",
    "stop_token_ids",
    "tiny_checkpoint",
    "tiny_qwen2_config",
]

logger = logging.getLogger(__name__)

TINY = "tiny"
#: File in a checkpoint folder naming the base model and the training step.
CHECKPOINT_META = "clarify_gym_ppo.json"
VALUE_HEAD_FILE = "value_head.safetensors"
_TINY_VERSION = 1
# Weights drawn with std 0.3, not transformers' 0.02: with 0.02 the logits are all ~0 and LoRA
# can barely move them, so a tiny model could never show that PPO learns.
_TINY_INIT = 0.3
_SPECIAL = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
# Qwen2's pre-tokenizer split: special tokens and newlines split the text the same way whether
# a chat is tokenized whole or turn by turn.
_QWEN_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)


# ---- the tiny model (tests, the `tiny` preset) ---------------------------------------------


def _tiny_corpus() -> list[str]:
    from agents.prompts import SYSTEM_PROMPT, task_message
    from clarify_gym.questions import GENERIC_QUESTIONS
    from clarify_gym.tasks import load_tasks

    texts = [SYSTEM_PROMPT, task_message("", 5), "STOP", *GENERIC_QUESTIONS]
    for t in load_tasks("sample"):
        texts += [t.objective, t.input_spec, t.example_input, t.procedure, t.output_spec, t.notes]
    return texts


def build_tiny_tokenizer(vocab_size: int = 2048) -> Any:
    """A byte-level BPE tokenizer (Qwen2's split, ChatML special tokens and chat template) trained
    on the bundled tasks, the system prompt and the generic questions; deterministic, ~0.2 s."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_QWEN_SPLIT), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(_SPECIAL),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_tiny_corpus(), trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>"
    )
    fast.chat_template = QWEN25_CHAT_TEMPLATE
    return fast


def tiny_qwen2_config(vocab_size: int, **overrides: Any) -> Any:
    """A ``Qwen2Config`` of the tiny size: hidden 64, intermediate 256, 2 layers, 4 query and 2
    key-value heads."""
    from transformers import Qwen2Config

    dims = {
        "hidden_size": 64,
        "intermediate_size": 256,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
    }
    return Qwen2Config(vocab_size=vocab_size, **{**dims, **overrides})


def tiny_checkpoint() -> Path:
    """The folder of the tiny model (config, weights, tokenizer), built once in the cache.

    A Qwen2 with hidden size 64, 2 layers, 4 query / 2 key-value heads, tied embeddings and the
    tokenizer's vocabulary (~0.3 M parameters); weights from seed 0 with std 0.3 (peaked, not
    flat, next-token distributions, like a trained model's), so every machine builds the same
    model. Written atomically: a crash leaves no half-written folder.
    """
    target = cache_dir() / "models" / f"tiny-qwen2-ppo-v{_TINY_VERSION}"
    if (target / "config.json").exists():
        return target
    from transformers import Qwen2ForCausalLM

    tokenizer = build_tiny_tokenizer()
    config = tiny_qwen2_config(
        len(tokenizer),
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        initializer_range=_TINY_INIT,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = Qwen2ForCausalLM(config)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if (target / "config.json").exists():  # another process built it first
            return target
        raise
    return target


def resolve_base(spec: str) -> str:
    """A model spec :func:`agents.models.load_causal_lm` loads (``"tiny"`` -> its folder)."""
    return str(tiny_checkpoint()) if spec == TINY else spec


def stop_token_ids(tokenizer: Any, model: Any = None) -> list[int]:
    """Token ids that end a turn: the tokenizer's EOS, ``<|im_end|>`` if the vocabulary has it,
    and the EOS ids of the model's generation config."""
    ids = {tokenizer.eos_token_id}
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    if isinstance(im_end, int) and im_end != tokenizer.unk_token_id:
        ids.add(im_end)
    eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids.update(eos if isinstance(eos, list) else [eos])
    return sorted(i for i in ids if isinstance(i, int) and i >= 0)


# ---- policy + reference + critic on one backbone --------------------------------------------


class PolicyValueModel(nn.Module):
    """A peft LoRA model (policy; adapter off = reference) and a value head on its backbone.

    ``forward(input_ids, attention_mask, policy_mask)`` returns ``(logprobs, values,
    entropy)``, each ``(B, T)`` and 0 outside ``policy_mask``: at a policy token t, the
    log-probability of token t, the entropy of the distribution it was drawn from and the value
    of the state before it, all computed from the hidden state at t - 1. With ``policy_mask``
    None it is one generation step instead and returns ``(last_logits (B, V), cache)``; both
    modes go through ``forward`` so that DDP/FSDP/DeepSpeed wrappers see every call.
    """

    def __init__(self, policy: nn.Module, value_head: nn.Linear, critic_detach: bool = True):
        super().__init__()
        self.policy = policy
        self.value_head = value_head
        self.critic_detach = critic_detach

    @property
    def causal_lm(self) -> nn.Module:
        """The transformers model inside the peft wrapper (LoRA layers injected in place)."""
        return self.policy.base_model.model

    @contextmanager
    def adapter_disabled(self) -> Iterator[None]:
        """Inside this block the model is the reference policy (the base model alone)."""
        with self.policy.disable_adapter():
            yield

    def head_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """The LM head in float32 (weights and activations), whatever the model's dtype: bf16
        logits are only good to ~0.1 at the scale of an LM's logits, too coarse for PPO's
        ratios, and the sampler and the scorer share this one function."""
        head = self.causal_lm.get_output_embeddings()
        bias = None if head.bias is None else head.bias.float()
        return nn.functional.linear(hidden.float(), head.weight.float(), bias)

    def actor_parameters(self) -> list[nn.Parameter]:
        """The LoRA weights."""
        return [p for p in self.policy.parameters() if p.requires_grad]

    def critic_parameters(self) -> list[nn.Parameter]:
        """The value head's weights."""
        return list(self.value_head.parameters())

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        policy_mask: torch.Tensor | None = None,
        *,
        temperature: float = 1.0,
        position_ids: torch.Tensor | None = None,
        past_key_values: Any = None,
        entropy_grad: bool = False,
    ) -> tuple[Any, ...]:
        decoder = self.causal_lm.get_decoder()
        if policy_mask is None:  # one generation step: only the last position's logits
            cache_kw = "cache" if "cache" in inspect.signature(decoder.forward).parameters else None
            out = decoder(
                input_ids=input_ids,
                attention_mask=attention_mask,
                position_ids=position_ids,
                use_cache=True,
                **{cache_kw or "past_key_values": past_key_values},
            )
            cache = getattr(out, "cache", None) or out.past_key_values
            return self.head_logits(out.last_hidden_state[:, -1]), cache
        if policy_mask[:, 0].any():
            raise ValueError("the first token of a sequence cannot be a policy token")
        hidden = decoder(
            input_ids=input_ids, attention_mask=attention_mask, use_cache=False
        ).last_hidden_state  # (B, T, H)
        predicts = policy_mask[:, 1:]  # (B, T-1): position t-1 predicts policy token t
        h = hidden[:, :-1][predicts]  # (N, H), N = policy tokens in the batch
        targets = input_ids[:, 1:][predicts]  # (N,)
        logits = self.head_logits(h) / temperature  # (N, V), float32
        logp_all = torch.log_softmax(logits, dim=-1)
        logprobs = logp_all.gather(-1, targets[:, None]).squeeze(-1)  # (N,)
        with torch.set_grad_enabled(entropy_grad and torch.is_grad_enabled()):
            entropy = -(logp_all.exp() * logp_all).sum(-1)  # (N,)
        h_critic = h.detach() if self.critic_detach else h
        values = self.value_head(h_critic.float()).squeeze(-1)  # (N,)

        def scatter(x: torch.Tensor) -> torch.Tensor:  # (N,) -> (B, T), 0 off the mask
            flat = torch.zeros(predicts.shape, dtype=x.dtype, device=x.device)
            return nn.functional.pad(flat.masked_scatter(predicts, x), (1, 0))

        return scatter(logprobs), scatter(values), scatter(entropy)


def build_policy_value_model(
    model: ModelSettings, lora: LoraSettings, *, device: str | torch.device = "cpu"
) -> tuple[PolicyValueModel, Any, str]:
    """Load the base model and tokenizer, wrap the model with a fresh LoRA adapter and a
    zero-initialised value head. Returns ``(model, tokenizer, resolved base spec)``."""
    from peft import LoraConfig, get_peft_model

    base_spec = resolve_base(model.model)
    tokenizer = load_tokenizer(resolve_base(model.tokenizer) if model.tokenizer else base_spec)
    dtype = resolve_train_dtype(model.dtype, device)
    causal_lm = load_causal_lm(base_spec, dtype=dtype, device=str(device))
    causal_lm.config.use_cache = False
    if model.gradient_checkpointing:
        causal_lm.gradient_checkpointing_enable(
            gradient_checkpointing_kwargs={"use_reentrant": False}
        )
    peft_config = LoraConfig(
        r=lora.lora_r,
        lora_alpha=lora.lora_alpha,
        lora_dropout=lora.lora_dropout,
        target_modules=lora.target_modules,
        bias="none",
        task_type="CAUSAL_LM",
    )
    policy = get_peft_model(causal_lm, peft_config)
    value_head = nn.Linear(causal_lm.config.hidden_size, 1, device=device, dtype=torch.float32)
    nn.init.zeros_(value_head.weight)
    nn.init.zeros_(value_head.bias)
    return PolicyValueModel(policy, value_head, model.critic_detach), tokenizer, base_spec


def _local_path(spec: str) -> str:
    """The folder transformers can load a base model from (for adapter_config.json)."""
    from agents.models import converted_checkpoint, resolve_model

    source = resolve_model(spec)
    return str(converted_checkpoint(source)) if source.gguf_file else source.path


def save_policy(
    model: PolicyValueModel,
    folder: str | os.PathLike[str],
    *,
    tokenizer: Any,
    base_model: str,
    extra: dict[str, Any] | None = None,
    state_dict: dict[str, torch.Tensor] | None = None,
) -> None:
    """Write the adapter (peft format), the value head, the tokenizer and
    ``clarify_gym_ppo.json`` into ``folder``. ``state_dict`` (keys of ``model.state_dict()``)
    overrides the live weights, for sharded (FSDP/ZeRO-3) runs that gathered them."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    policy_sd = value_sd = None
    if state_dict is not None:
        policy_sd = {
            k[len("policy.") :]: v for k, v in state_dict.items() if k.startswith("policy.")
        }
        value_sd = {
            k[len("value_head.") :]: v for k, v in state_dict.items() if k.startswith("value_head.")
        }
    base_path = _local_path(resolve_base(base_model))
    peft_config = model.policy.peft_config["default"]
    peft_config.base_model_name_or_path = base_path
    model.policy.save_pretrained(str(folder), state_dict=policy_sd)
    value_sd = value_sd or model.value_head.state_dict()
    save_file(
        {k: v.detach().float().cpu().contiguous() for k, v in value_sd.items()},
        folder / VALUE_HEAD_FILE,
    )
    tokenizer.save_pretrained(str(folder))
    meta = {"base_model": base_model, "base_model_path": base_path, "format": 1, **(extra or {})}
    (folder / CHECKPOINT_META).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")


def load_trainable_weights(model: PolicyValueModel, folder: str | os.PathLike[str]) -> None:
    """Load a checkpoint's adapter and value-head weights into ``model`` (to resume)."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    folder = Path(folder)
    device = next(model.value_head.parameters()).device
    adapter = load_file(folder / "adapter_model.safetensors", device=str(device))
    result = set_peft_model_state_dict(model.policy, adapter)
    unexpected = getattr(result, "unexpected_keys", [])
    if unexpected:
        raise RuntimeError(
            f"checkpoint {folder} has adapter weights this model lacks: {unexpected[:5]}"
        )
    model.value_head.load_state_dict(load_file(folder / VALUE_HEAD_FILE, device=str(device)))


def load_trained_policy(
    folder: str | os.PathLike[str], *, device: str = "cpu", dtype: Any = None
) -> tuple[Any, Any, dict[str, Any]]:
    """The trained policy for inference: ``(peft model in eval mode, tokenizer, metadata)``.

    Reads the base model spec from ``clarify_gym_ppo.json``, loads it with
    :func:`agents.models.load_causal_lm` and the adapter with ``PeftModel.from_pretrained``.
    """
    from peft import PeftModel

    folder = Path(folder)
    meta_file = folder / CHECKPOINT_META
    if not meta_file.exists():
        raise FileNotFoundError(
            f"{folder} has no {CHECKPOINT_META}: not a clarify-gym PPO checkpoint"
        )
    meta = json.loads(meta_file.read_text(encoding="utf-8"))
    base = load_causal_lm(resolve_base(meta["base_model"]), dtype=dtype, device=device)
    policy = PeftModel.from_pretrained(base, str(folder)).to(device).eval()
    return policy, load_tokenizer(str(folder)), meta
