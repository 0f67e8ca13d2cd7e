"""The trained-policy folder: the one reader of what ``clarify-gym train`` saves, used by
inference (:class:`clarify_agents.hf.HFAgent`, ``bench --agents hf:<folder>``) and training
(resume, :mod:`clarify_agents.ppo.checkpoint`) alike. :mod:`clarify_agents.ppo.checkpoint`
writes it.

A folder holds

* ``adapter_config.json``, ``adapter_model.safetensors``: the LoRA adapter in peft format;
* ``clarify_gym_ppo.json``: the base model (``base_model``, the spec it was trained from, and
  ``base_model_path``, the local folder it was loaded from), the update and the training
  config (its ``rollout.reply_prefix`` is the prefill the policy was trained with);
* optionally ``value_head.safetensors`` (training only) and the tokenizer files (without them
  the base model's tokenizer is used).

A plain peft adapter folder (no ``clarify_gym_ppo.json``) loads too, on a base model given
separately. This module imports no heavy dependency; torch, safetensors and peft are imported
by the functions that load weights.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clarify_gym.errors import ClarifyGymError, MissingDependencyError

__all__ = [
    "ADAPTER_CONFIG",
    "ADAPTER_WEIGHTS",
    "POLICY_META",
    "VALUE_HEAD_FILE",
    "PolicyFolder",
    "PolicyFolderError",
    "attach_adapter",
    "load_policy",
    "policy_folder",
]

logger = logging.getLogger(__name__)

#: The file naming the base model, the update and the training config.
POLICY_META = "clarify_gym_ppo.json"
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
VALUE_HEAD_FILE = "value_head.safetensors"
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")


class PolicyFolderError(ClarifyGymError, FileNotFoundError):
    """A folder that should hold a trained policy lacks one of its files, or cannot be read."""


@dataclass(frozen=True)
class PolicyFolder:
    """A trained-policy folder and its ``clarify_gym_ppo.json`` (empty for a plain adapter)."""

    path: Path
    """The folder."""
    meta: dict[str, Any] = field(default_factory=dict)
    """The content of ``clarify_gym_ppo.json``."""

    @property
    def base_model(self) -> str | None:
        """The base model to load the adapter on: the local folder it was trained from when that
        still exists here, else its model spec (``"tiny"`` resolved); None for a plain adapter.
        """
        if "base_model" not in self.meta:
            return None
        local = self.meta.get("base_model_path")
        if local and Path(local).is_dir():
            return str(local)
        from clarify_agents.models import resolve_base

        return resolve_base(str(self.meta["base_model"]))

    @property
    def config(self) -> dict[str, Any]:
        """The training config it was saved with (``TrainConfig.to_dict()``; {} if none)."""
        return dict(self.meta.get("config") or {})

    @property
    def reply_prefix(self) -> str:
        """The ``rollout.reply_prefix`` it was trained with ("" if none)."""
        return str(self.config.get("rollout", {}).get("reply_prefix", ""))

    @property
    def has_tokenizer(self) -> bool:
        """Whether the folder holds tokenizer files (else the base model's tokenizer is used)."""
        return any((self.path / name).is_file() for name in _TOKENIZER_FILES)

    @property
    def tokenizer(self) -> str | None:
        """Where to load the tokenizer from: this folder, else the base model."""
        return str(self.path) if self.has_tokenizer else self.base_model

    def require_adapter(self) -> None:
        """Raise :class:`PolicyFolderError` unless the folder holds a peft adapter."""
        if not (self.path / ADAPTER_CONFIG).is_file():
            raise PolicyFolderError(
                f"adapter folder {str(self.path)!r} has no {ADAPTER_CONFIG}: pass a folder saved "
                "with peft's save_pretrained (a `clarify-gym train` checkpoint or adapter)"
            )

    def adapter_weights(self, device: str = "cpu") -> dict[str, Any]:
        """The LoRA weights (peft's state-dict keys) on ``device``."""
        from safetensors.torch import load_file

        return load_file(self.path / ADAPTER_WEIGHTS, device=device)

    def value_head_weights(self, device: str = "cpu") -> dict[str, Any]:
        """The value head's weights on ``device`` (saved by training, not needed to act)."""
        from safetensors.torch import load_file

        return load_file(self.path / VALUE_HEAD_FILE, device=device)


def policy_folder(path: str | os.PathLike[str]) -> PolicyFolder | None:
    """The trained-policy folder at ``path``, or None when ``path`` holds no
    ``clarify_gym_ppo.json`` (a model spec, a plain adapter). A metadata file that is not JSON
    raises :class:`PolicyFolderError`."""
    folder = Path(path).expanduser()
    meta_file = folder / POLICY_META
    if not meta_file.is_file():
        return None
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise PolicyFolderError(f"{meta_file} is not JSON ({exc}); the folder is damaged") from None
    if not isinstance(meta, dict):
        raise PolicyFolderError(f"{meta_file} is not a JSON object; the folder is damaged")
    return PolicyFolder(folder, meta)


def attach_adapter(
    model: Any, adapter: str | os.PathLike[str], *, merge: bool, trainable: bool = False
) -> Any:
    """``model`` with the LoRA adapter saved in folder ``adapter`` (peft format); merged into
    the base weights with ``merge`` (faster inference)."""
    folder = policy_folder(adapter) or PolicyFolder(Path(adapter).expanduser())
    folder.require_adapter()
    try:
        from peft import PeftModel
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise MissingDependencyError("peft", "train", "LoRA adapters") from exc
    logger.info("loading LoRA adapter %s", folder.path)
    wrapped = PeftModel.from_pretrained(model, str(folder.path), is_trainable=trainable)
    return wrapped.merge_and_unload() if merge else wrapped


def load_policy(
    path: str | os.PathLike[str],
    *,
    device: str = "cpu",
    dtype: Any = None,
    merge: bool = False,
) -> tuple[Any, Any, PolicyFolder]:
    """The trained policy for inference: ``(model in eval mode, tokenizer, folder)``; the base
    model the folder names with its adapter (a peft model, or merged with ``merge``)."""
    from clarify_agents.models import load_causal_lm, load_tokenizer

    folder = policy_folder(path)
    if folder is None or folder.base_model is None:
        raise PolicyFolderError(
            f"{path} has no {POLICY_META} naming its base model: not a `clarify-gym train` "
            "checkpoint or adapter (for a plain peft adapter use hf:<base model>@<adapter>)"
        )
    base = load_causal_lm(folder.base_model, dtype=dtype, device=device)
    policy = attach_adapter(base, folder.path, merge=merge).to(device).eval()
    assert folder.tokenizer is not None
    return policy, load_tokenizer(folder.tokenizer), folder
