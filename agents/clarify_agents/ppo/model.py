"""One backbone for policy, reference and critic: a causal LM with a LoRA adapter and a value head.

* **policy**: the base model with the peft LoRA adapter enabled;
* **reference**: the same modules with the adapter disabled (``with model.adapter_disabled():``),
  so no second copy of the base weights exists;
* **critic**: a linear value head on the last hidden state of the policy's backbone.

:class:`PolicyValueModel` computes log-probabilities, entropies and values only at the positions
that predict policy tokens: the LM head never runs over prompt or answer positions (with a
152k-word vocabulary that is most of the memory a naive implementation spends).

On a bf16 (or fp16) base the LoRA weights stay float32 (the optimiser's master copy, as peft
keeps them), but their matmuls run in the base's dtype under ``torch.autocast``, with peft's
cast of each LoRA layer's input to float32 turned off. peft's default would keep a float32 copy
of the hidden state for the backward pass at every adapted projection: at SmolLM2's size and a
4 x 465-token micro-batch, that is 26 of the 77 MB saved per layer.

Checkpoint files (a standard peft adapter plus the value head) are written and read by
:mod:`clarify_agents.ppo.checkpoint`; the ``"tiny"`` model spec is built by :mod:`clarify_agents.models`.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, nullcontext
from typing import Any

import torch
from torch import nn

from clarify_agents.models import load_causal_lm, load_tokenizer, resolve_base, resolve_train_dtype
from clarify_agents.ppo.config import LoraSettings, ModelSettings
from clarify_gym.errors import ConfigError

__all__ = ["PolicyValueModel", "build_policy_value_model"]

logger = logging.getLogger(__name__)


class PolicyValueModel(nn.Module):
    """A peft LoRA model (policy; adapter off = reference) and a value head on its backbone.

    ``forward(input_ids, attention_mask, policy_mask)`` returns ``(logprobs, values,
    entropy)``, each ``(B, T)`` and 0 outside ``policy_mask``: at a policy token t, the
    log-probability of token t, the entropy of the distribution it was drawn from and the value
    of the state before it, all computed from the hidden state at t - 1. With ``policy_mask``
    None it is one generation step instead and returns ``(last_logits (B, V), cache)``; both
    modes go through ``forward`` so that DDP/FSDP/DeepSpeed wrappers see every call.
    """

    def __init__(self, policy: Any, value_head: nn.Linear, critic_detach: bool = True):
        super().__init__()
        self.policy: Any = policy  # a peft PeftModel
        self.value_head = value_head
        self.critic_detach = critic_detach
        self.lora_in_base_dtype = True
        """On a half-precision base, run the LoRA matmuls in its dtype (see the module doc);
        False: peft's default, float32 LoRA inputs."""

    @property
    def causal_lm(self) -> Any:
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
        ratios, and the sampler and the scorer share this one function. The frozen head's
        float32 copy is made once and kept (SmolLM2: 113 MB; Qwen2.5-7B: 2.2 GB). A sharded
        head (FSDP, ZeRO-3) runs through its own module instead, in the model's dtype."""
        head = self.causal_lm.get_output_embeddings()
        weight = head.weight
        if _sharded(weight, hidden.shape[-1]):
            return head(hidden.to(weight.dtype)).float()
        if weight.dtype != torch.float32:
            key = (weight.data_ptr(), weight.device, weight.shape)
            if getattr(self, "_head_key", None) != key:
                self._head_fp32, self._head_key = weight.detach().float(), key
            weight = self._head_fp32
        bias = None if head.bias is None else head.bias.float()
        return nn.functional.linear(hidden.float(), weight, bias)

    def _lora_compute(self, device: torch.device) -> Any:
        """The context the backbone runs in: on a half-precision base (and unless
        :attr:`lora_in_base_dtype` is off), autocast to its dtype with peft's float32 input casts
        off; else nothing. The LM head and the value head run outside it, in float32."""
        dtype = self.causal_lm.dtype
        if not self.lora_in_base_dtype or dtype not in (torch.bfloat16, torch.float16):
            return nullcontext()
        from peft.tuners.tuners_utils import BaseTunerLayer

        layers = getattr(self, "_tuner_layers", None)
        if layers is None:
            layers = [m for m in self.policy.modules() if isinstance(m, BaseTunerLayer)]
            self._tuner_layers = layers
        stack = ExitStack()
        for layer in layers:
            before = getattr(layer, "cast_input_dtype_enabled", True)
            layer.cast_input_dtype_enabled = False
            stack.callback(setattr, layer, "cast_input_dtype_enabled", before)
        stack.enter_context(torch.autocast(device_type=device.type, dtype=dtype))
        return stack

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
            with self._lora_compute(input_ids.device):
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
        with self._lora_compute(input_ids.device):
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
        # in the head's own dtype: fp32 as built, bf16 once ZeRO casts the model or FSDP2
        # gathers it in its mixed-precision param_dtype
        head_dtype = self.value_head.weight.dtype
        values = self.value_head(h_critic.to(head_dtype)).float().squeeze(-1)  # (N,)

        def scatter(x: torch.Tensor) -> torch.Tensor:  # (N,) -> (B, T), 0 off the mask
            flat = torch.zeros(predicts.shape, dtype=x.dtype, device=x.device)
            return nn.functional.pad(flat.masked_scatter(predicts, x), (1, 0))

        return scatter(logprobs), scatter(values), scatter(entropy)


def _sharded(weight: torch.Tensor, hidden_size: int) -> bool:
    """Whether a weight is a shard or placeholder outside its module's forward (FSDP1/2's
    views and DTensors, DeepSpeed ZeRO-3's empty parameters)."""
    if hasattr(weight, "ds_id") or weight.dim() != 2 or weight.shape[1] != hidden_size:
        return True
    try:
        from torch.distributed.tensor import DTensor
    except ImportError:  # pragma: no cover - torch built without distributed
        return False
    return isinstance(weight, DTensor)


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
    try:
        policy = get_peft_model(causal_lm, peft_config)
    except ValueError as exc:  # a --lora-targets name the model lacks
        linear = sorted(
            {n.rpartition(".")[2] for n, m in causal_lm.named_modules() if isinstance(m, nn.Linear)}
        )
        raise ConfigError(
            f"--lora-targets {lora.lora_targets}: {exc} The model's linear modules: "
            f"{', '.join(linear)}"
        ) from None
    value_head = nn.Linear(causal_lm.config.hidden_size, 1, device=device, dtype=torch.float32)
    nn.init.zeros_(value_head.weight)
    nn.init.zeros_(value_head.bias)
    return PolicyValueModel(policy, value_head, model.critic_detach), tokenizer, base_spec
