"""Random-weight models with the real architecture of a published checkpoint, for machines with
no weights and no internet: model specs ``random:qwen2.5-7b`` and ``random:qwen2.5-1.5b``.

``random:qwen2.5-toy`` is no released model: Qwen2.5-1.5B's vocabulary and embedding layout on
2 decoder layers of hidden size 64, for CPU dry runs of the code a GPU run takes.

A random model has the real parameter count, shapes, vocabulary and dtype, so memory, speed
and every distributed code path behave as with the released weights; only the text it writes
is noise. It has no tokenizer: pair it with ``qwen2.5-tokenizer`` (the offline Qwen2.5
tokenizer) or the hub id of the real model.

>>> spec = "random:qwen2.5-7b"
>>> is_random_spec(spec), random_config(spec).hidden_size, random_config(spec).vocab_size
(True, 3584, 152064)
>>> random_config("random:qwen2.5-1.5b").tie_word_embeddings
True
"""

from __future__ import annotations

from typing import Any

__all__ = ["PREFIX", "QWEN25_CONFIGS", "is_random_spec", "random_causal_lm", "random_config"]

PREFIX = "random:"

_QWEN25_COMMON = {
    "hidden_act": "silu",
    "max_position_embeddings": 32768,
    "rms_norm_eps": 1e-6,
    "rope_theta": 1000000.0,
    "use_sliding_window": False,
    "attention_dropout": 0.0,
    "bos_token_id": 151643,
    "eos_token_id": 151645,
    "initializer_range": 0.02,
}

#: The architecture fields of the released ``config.json`` of Qwen2.5-{7B,1.5B}-Instruct, and
#: the 2-layer toy with the real vocabulary.
QWEN25_CONFIGS: dict[str, dict[str, Any]] = {
    "qwen2.5-7b": {
        **_QWEN25_COMMON,
        "hidden_size": 3584,
        "intermediate_size": 18944,
        "num_hidden_layers": 28,
        "num_attention_heads": 28,
        "num_key_value_heads": 4,
        "max_window_layers": 28,
        "sliding_window": 131072,
        "tie_word_embeddings": False,
        "vocab_size": 152064,
    },
    "qwen2.5-1.5b": {
        **_QWEN25_COMMON,
        "hidden_size": 1536,
        "intermediate_size": 8960,
        "num_hidden_layers": 28,
        "num_attention_heads": 12,
        "num_key_value_heads": 2,
        "max_window_layers": 21,
        "sliding_window": 32768,
        "tie_word_embeddings": True,
        "vocab_size": 151936,
    },
}
QWEN25_CONFIGS["qwen2.5-toy"] = {
    **QWEN25_CONFIGS["qwen2.5-1.5b"],
    "hidden_size": 64,
    "intermediate_size": 256,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_window_layers": 2,
}


def is_random_spec(spec: object) -> bool:
    """Whether a model spec names a random-weight model (``random:<name>``)."""
    return str(spec).startswith(PREFIX)


def random_config(spec: str) -> Any:
    """The ``Qwen2Config`` of a ``random:<name>`` spec; ``ValueError`` naming the known names."""
    from transformers import Qwen2Config

    name = str(spec)[len(PREFIX) :]
    if name not in QWEN25_CONFIGS:
        raise ValueError(
            f"unknown random model {spec!r}; choose one of "
            f"{sorted(PREFIX + n for n in QWEN25_CONFIGS)}"
        )
    return Qwen2Config(**QWEN25_CONFIGS[name])


def random_causal_lm(spec: str, *, dtype: Any = None, device: Any = "cpu") -> Any:
    """A ``Qwen2ForCausalLM`` of the spec's architecture, initialised by transformers (std 0.02)
    directly on ``device`` in ``dtype`` (a 7B model never passes through host memory), in eval
    mode. Seeded by the caller's torch RNG."""
    import torch
    from transformers import AutoModelForCausalLM

    config = random_config(spec)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype or torch.float32)
    return model.eval()
