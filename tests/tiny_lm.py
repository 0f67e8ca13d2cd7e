"""A tiny random Qwen2 model and a BPE tokenizer with a ChatML template, built offline in ~1 s."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import clarify_gym as cg
from agents.prompts import SYSTEM_PROMPT

CHATML = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def tiny_tokenizer() -> Any:
    """A byte-level BPE tokenizer trained on the bundled tasks, wrapped with a ChatML template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    texts = [SYSTEM_PROMPT, "What sections must the output contain? STOP"]
    for task in cg.load_tasks("sample"):
        texts += [task.objective, task.procedure, task.input_spec, task.output_spec, task.notes]
        texts.append(task.example_input)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=1024,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(texts, trainer)
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=SPECIALS[1:],
    )
    wrapped.chat_template = CHATML
    return wrapped


def tiny_model(vocab_size: int) -> Any:
    """A 2-layer Qwen2 with random weights drawn from a seeded generator (std 0.2 keeps the
    logits well apart, so greedy decoding is not decided by rounding)."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        tie_word_embeddings=True,
        initializer_range=0.2,
        max_position_embeddings=4096,
    )
    model = Qwen2ForCausalLM(config).eval()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for param in model.parameters():
            if param.dim() >= 2:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.2)
    return model


def save_tiny(folder: Path) -> Path:
    """Save the tiny model and tokenizer as a local model folder; returns it."""
    tokenizer = tiny_tokenizer()
    model = tiny_model(len(tokenizer))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
