"""A local transformers causal LM as a questioner, with an optional LoRA adapter.

The model is given by any spec :func:`clarify_agents.models.load_causal_lm` takes (hub id, local folder,
``.gguf`` file, or the offline ``"smollm2-135m"``), or as an already loaded model and tokenizer
(e.g. the PPO policy during training). The prompt is the project's one chat format
(:func:`clarify_agents.prompts.observation_to_messages`) rendered with the tokenizer's chat template,
and the reply goes through :func:`clarify_agents.prompts.parse_reply`, so a policy sees at benchmark
time exactly the chat it was trained on.

Generation is greedy by default (deterministic) and stops once the reply holds a complete
question (a ``?`` outside any thinking block), since :func:`~clarify_agents.prompts.parse_reply` keeps only
the first question anyway. With ``do_sample=True`` each episode's tokens
are drawn from its own ``torch.Generator``, seeded from the episode seed and the observation, so
a reply does not depend on which other episodes share its batch and no global RNG is touched.
``act_batch`` generates for many episodes at once (left padding); the benchmark harness uses it
to batch episodes.
"""

from __future__ import annotations

import inspect
import logging
import os
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from clarify_agents.base import Agent
from clarify_agents.models import check_model_spec, load_causal_lm, load_tokenizer, stop_token_ids
from clarify_agents.policy_folder import PolicyFolder, attach_adapter, policy_folder
from clarify_agents.prompts import SYSTEM_PROMPT, observation_to_messages, parse_reply
from clarify_gym.dialogue import strip_thinking
from clarify_gym.masking import MaskedTask

__all__ = ["HFAgent", "episode_seed", "resolve_dtype"]

logger = logging.getLogger(__name__)

_DTYPES = ("auto", "float32", "bfloat16", "float16")


def episode_seed(seed: int, observation: str) -> int:
    """The sampling seed of one turn: a stable hash of the episode seed and the observation.

    >>> episode_seed(0, "obs") == episode_seed(0, "obs") != episode_seed(1, "obs")
    True
    """
    return zlib.crc32(f"{seed}\n{observation}".encode()) ^ (seed * 0x9E3779B1 & 0xFFFFFFFF)


class _SeededSampler:
    """A logits processor that samples each row with its own generator and returns scores that
    make greedy decoding pick the sampled token (``generate`` itself takes no generator)."""

    def __init__(self, generators: list[Any], temperature: float, top_p: float) -> None:
        self.generators = generators
        self.temperature = temperature
        self.top_p = top_p

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        probs = torch.softmax(scores.float() / self.temperature, dim=-1)  # (B, V)
        if self.top_p < 1.0:
            sorted_probs, order = probs.sort(dim=-1, descending=True)
            drop = sorted_probs.cumsum(dim=-1) - sorted_probs > self.top_p  # keep the nucleus
            sorted_probs = sorted_probs.masked_fill(drop, 0.0)
            probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
        chosen = torch.stack(
            [
                torch.multinomial(row, 1, generator=g)
                for row, g in zip(probs, self.generators, strict=True)
            ]
        )  # (B, 1)
        out = torch.full_like(scores, float("-inf"))
        return out.scatter(-1, chosen, 0.0)


class _QuestionDone:
    """A stopping criterion: a row is done once its new text has a ``?`` outside thinking."""

    def __init__(self, tokenizer: Any, prompt_length: int) -> None:
        self.tokenizer = tokenizer
        self.prompt_length = prompt_length

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        done = []
        for row in input_ids[:, self.prompt_length :]:
            text = self.tokenizer.decode(row, skip_special_tokens=True)
            done.append("?" in strip_thinking(text))
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


class _NoRepeat:
    """A logits processor applying :class:`clarify_agents.decoding.NoRepeatNgram` per row: the row's
    earlier questions (token lists) plus what it has written so far after the prompt's last
    n - 1 tokens. End-of-turn tokens are never banned."""

    def __init__(
        self, n: int, earlier: list[list[list[int]]], prompt_length: int, end_ids: Sequence[int]
    ) -> None:
        self.n, self.earlier, self.prompt_length = n, earlier, prompt_length
        self.end_ids = set(end_ids)

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        from clarify_agents.decoding import NoRepeatNgram

        scores = scores.clone()
        start = max(0, self.prompt_length - self.n + 1)
        for i, row in enumerate(input_ids.tolist()):
            written = row[start:]
            rule = NoRepeatNgram(self.n, [*self.earlier[i], written])
            ban = sorted(rule.banned(written) - self.end_ids)
            if ban:
                scores[i, ban] = float("-inf")
        return scores


def _check_values(
    max_new_tokens: int,
    no_repeat_ngram: int,
    do_sample: bool,
    temperature: float,
    top_p: float,
    dtype: Any,
) -> None:
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    if no_repeat_ngram < 0:
        raise ValueError(f"no_repeat_ngram must be >= 0 (0: off), got {no_repeat_ngram}")
    if do_sample and (temperature <= 0 or not 0 < top_p <= 1):
        raise ValueError("sampling needs temperature > 0 and 0 < top_p <= 1")
    if isinstance(dtype, str) and dtype not in _DTYPES:
        raise ValueError(
            f"dtype must be one of {', '.join(_DTYPES)} or a torch.dtype, got {dtype!r}"
        )


def resolve_dtype(dtype: Any) -> Any:
    """A torch dtype from ``None``/``"float32"``/``"bfloat16"``/``"auto"`` or a dtype.

    ``"auto"`` is bfloat16 on CPUs with native bfloat16 matrix units (AMX or AVX512-BF16, read
    from ``/proc/cpuinfo``), several times faster there than float32, and float32 elsewhere.
    """
    import torch

    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        from clarify_agents.models import bf16_unsupported_reason

        return torch.bfloat16 if bf16_unsupported_reason("cpu") is None else torch.float32
    if dtype in _DTYPES:
        return getattr(torch, dtype)
    raise ValueError(
        f"dtype must be 'auto', 'float32', 'bfloat16', 'float16' or a torch.dtype, got {dtype!r}"
    )


class HFAgent(Agent):
    """A local causal LM that asks one question per turn (see the module docstring).

    Args:
        model: A model spec (hub id, folder, ``.gguf`` file, ``"smollm2-135m"``), a loaded
            ``PreTrainedModel``, or a ``clarify-gym train`` checkpoint folder (its base model,
            adapter and tokenizer are loaded from what the checkpoint names).
        adapter: A LoRA adapter folder saved by peft (``adapter_config.json`` +
            ``adapter_model.safetensors``); other files in it (e.g. a value head) are ignored.
        tokenizer: A tokenizer spec or object (default: the model's own).
        max_new_tokens: The longest reply generated.
        do_sample: Sample instead of greedy decoding.
        temperature: Sampling temperature (with ``do_sample``).
        top_p: Nucleus sampling mass (with ``do_sample``).
        seed: The seed used when ``act`` is called without ``reset(seed=...)``.
        system_prompt: The system message (default :data:`clarify_agents.prompts.SYSTEM_PROMPT`).
        merge_adapter: Merge the LoRA weights into the base model (faster inference).
        stop_at_question: Stop generating a reply once it holds a complete question.
        no_repeat_ngram: 0 (off), or n: never write an n-gram of the agent's own earlier
            questions in the chat, nor repeat one within the reply
            (:class:`clarify_agents.decoding.NoRepeatNgram`; the prompt's last n - 1 tokens count as
            the reply's start, so with a reply prefix no question opens as an earlier one did).
        reply_prefix: Text that starts every reply (a prefill ending the prompt; the reply is
            prefix + generated text). ``None``: the ``rollout.reply_prefix`` a PPO checkpoint
            or adapter folder was trained with (:mod:`clarify_agents.policy_folder`), else none.
        dtype: Torch dtype to load in: float32 by default, ``"auto"`` (see
            :func:`resolve_dtype`), ``"bfloat16"``, or a ``torch.dtype``.
        device: Torch device.
        name: Name in benchmark results (default: the model spec).
    """

    batched = True

    def __init__(
        self,
        model: Any = "smollm2-135m",
        *,
        adapter: str | os.PathLike[str] | None = None,
        tokenizer: Any = None,
        max_new_tokens: int = 48,
        do_sample: bool = False,
        temperature: float = 0.7,
        top_p: float = 0.95,
        seed: int = 0,
        system_prompt: str = SYSTEM_PROMPT,
        merge_adapter: bool = True,
        stop_at_question: bool = True,
        no_repeat_ngram: int = 0,
        reply_prefix: str | None = None,
        dtype: Any = None,
        device: str = "cpu",
        name: str | None = None,
    ) -> None:
        _check_values(max_new_tokens, no_repeat_ngram, do_sample, temperature, top_p, dtype)
        trained = (
            policy_folder(model)
            if adapter is None and isinstance(model, (str, os.PathLike))
            else None
        )
        if trained is not None and trained.base_model is not None:
            # a `clarify-gym train` checkpoint or adapter: its base model + adapter (+ tokenizer)
            adapter, name = model, name or f"ppo:{model}"
            tokenizer = tokenizer if tokenizer is not None else trained.tokenizer
            model = trained.base_model
        self.model_spec = model if isinstance(model, (str, os.PathLike)) else type(model).__name__
        self.adapter = str(adapter) if adapter is not None else None
        if isinstance(model, (str, os.PathLike)):
            self.model = load_causal_lm(model, dtype=resolve_dtype(dtype), device=device)
        else:
            self.model = model
        if tokenizer is None:
            if not isinstance(model, (str, os.PathLike)):
                raise ValueError("pass tokenizer= when model is a loaded model object")
            tokenizer = model
        self.tokenizer = (
            load_tokenizer(tokenizer) if isinstance(tokenizer, (str, os.PathLike)) else tokenizer
        )
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        if self.tokenizer.chat_template is None:
            raise ValueError(
                f"the tokenizer of {self.model_spec!r} has no chat template; pass a tokenizer "
                "that has one (HFAgent prompts in chat format)"
            )
        if adapter is not None:
            self.model = attach_adapter(self.model, adapter, merge=merge_adapter)
        self.model.eval()
        self.max_new_tokens = max_new_tokens
        self.do_sample = do_sample
        self.temperature = temperature
        self.top_p = top_p
        self.seed = seed
        self.stop_at_question = stop_at_question
        self.no_repeat_ngram = no_repeat_ngram
        if reply_prefix is None:  # the prefill a trained adapter was trained with
            folder = policy_folder(self.adapter) if self.adapter is not None else None
            reply_prefix = folder.reply_prefix if folder is not None else ""
        self.reply_prefix = reply_prefix
        self.system_prompt = system_prompt
        self.name = name or str(self.model_spec)
        self._end_ids = stop_token_ids(self.tokenizer, self.model)

    @classmethod
    def check_arguments(cls, **kwargs: Any) -> None:
        """The values :meth:`__init__` would refuse, and a model or adapter folder that is
        not there, found without loading anything."""
        bound = inspect.signature(cls).bind(**kwargs)
        bound.apply_defaults()
        a = bound.arguments
        _check_values(
            a["max_new_tokens"], a["no_repeat_ngram"], a["do_sample"], a["temperature"],
            a["top_p"], a["dtype"],
        )  # fmt: skip
        model, adapter = a["model"], a["adapter"]
        if isinstance(model, (str, os.PathLike)):
            check_model_spec(model)
        if adapter is not None:
            folder = policy_folder(adapter) or PolicyFolder(Path(adapter).expanduser())
            folder.require_adapter()

    def reset(self, *, seed: int | None = None, task: MaskedTask | None = None) -> None:
        if seed is not None:
            self.seed = seed

    def prompts(self, observations: Sequence[str]) -> list[str]:
        """The chat-formatted prompt text for each observation."""
        return [
            self.tokenizer.apply_chat_template(
                observation_to_messages(o, system_prompt=self.system_prompt),
                add_generation_prompt=True,
                tokenize=False,
            )
            + self.reply_prefix
            for o in observations
        ]

    def generate(
        self, observations: Sequence[str], seeds: Sequence[int] | None = None
    ) -> list[str]:
        """The raw reply text for each observation (one batched ``generate`` call)."""
        import torch
        from transformers import LogitsProcessorList, StoppingCriteriaList

        if not observations:
            return []
        batch = self.tokenizer(
            self.prompts(observations),
            return_tensors="pt",
            padding=True,
            add_special_tokens=False,
        ).to(self.model.device)
        kwargs: dict[str, Any] = {
            "max_new_tokens": self.max_new_tokens,
            "do_sample": False,
            "pad_token_id": self.tokenizer.pad_token_id,
            "eos_token_id": self._end_ids,
            "temperature": None,
            "top_p": None,
            "top_k": None,
        }
        if self.stop_at_question:
            kwargs["stopping_criteria"] = StoppingCriteriaList(
                [_QuestionDone(self.tokenizer, batch["input_ids"].shape[1])]
            )
        processors: list[Any] = []
        if self.no_repeat_ngram:
            processors.append(self._no_repeat(observations, batch["input_ids"].shape[1]))
        if self.do_sample:
            seeds = list(seeds) if seeds is not None else [self.seed] * len(observations)
            generators = [
                torch.Generator().manual_seed(episode_seed(s, o))
                for s, o in zip(seeds, observations, strict=True)
            ]
            processors.append(_SeededSampler(generators, self.temperature, self.top_p))
        if processors:
            kwargs["logits_processor"] = LogitsProcessorList(processors)
        with torch.inference_mode():
            output = self.model.generate(**batch, **kwargs)  # (B, prompt + new)
        new = output[:, batch["input_ids"].shape[1] :]
        texts = self.tokenizer.batch_decode(new, skip_special_tokens=True)
        return [self.reply_prefix + t for t in texts]

    def _no_repeat(self, observations: Sequence[str], prompt_length: int) -> _NoRepeat:
        earlier = [
            [
                list(self.tokenizer(m["content"], add_special_tokens=False)["input_ids"])
                for m in observation_to_messages(o, system_prompt=self.system_prompt)
                if m["role"] == "assistant"
            ]
            for o in observations
        ]
        return _NoRepeat(self.no_repeat_ngram, earlier, prompt_length, self._end_ids)

    def act(self, observation: str) -> str:
        return self.act_batch([observation])[0]

    def act_batch(
        self, observations: Sequence[str], *, seeds: Sequence[int] | None = None
    ) -> list[str]:
        return [parse_reply(text) for text in self.generate(observations, seeds)]

    def describe(self) -> dict[str, Any]:
        return {
            "model": str(self.model_spec),
            "adapter": self.adapter,
            "max_new_tokens": self.max_new_tokens,
            "do_sample": self.do_sample,
            "dtype": str(next(self.model.parameters()).dtype).removeprefix("torch."),
            "stop_at_question": self.stop_at_question,
            **({"no_repeat_ngram": self.no_repeat_ngram} if self.no_repeat_ngram else {}),
            **({"reply_prefix": self.reply_prefix} if self.reply_prefix else {}),
            **({"temperature": self.temperature, "top_p": self.top_p} if self.do_sample else {}),
            "parameters": int(sum(p.numel() for p in self.model.parameters())),
        }
