"""Checkpoints: adapter + value head + optimizer + RNG states + step, written atomically. This
module writes every file of a checkpoint folder (:func:`save_policy`, :func:`save_checkpoint`);
the policy's files are read by :mod:`clarify_agents.policy_folder` (for inference and to resume
alike), the trainer state here.

A checkpoint is ``<output_dir>/checkpoints/update-000010/``:

* ``adapter_config.json``, ``adapter_model.safetensors``: the LoRA adapter in peft format;
* ``value_head.safetensors``, the tokenizer files, ``clarify_gym_ppo.json`` (base model spec,
  update, config): see :func:`save_policy`;
* ``trainer_state.rank<r>.pt`` per process: optimizer state, the Python, NumPy, torch (CPU and
  CUDA) and sampling-generator RNG states, the update count and the KL coefficient.

Environments need no saved state: every episode is reset with a seed derived from the run seed
and its index, so a resumed run replays the same tasks. The folder is first written under a
temporary name and renamed when complete, so a crash never leaves a half-written checkpoint;
older checkpoints beyond ``keep`` are deleted after the rename.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from clarify_agents.models import resolve_base
from clarify_agents.policy_folder import POLICY_META, VALUE_HEAD_FILE, PolicyFolder, policy_folder
from clarify_gym.errors import ClarifyGymError

if TYPE_CHECKING:
    from clarify_agents.ppo.model import PolicyValueModel

__all__ = [
    "CHECKPOINT_META",
    "VALUE_HEAD_FILE",
    "CheckpointError",
    "capture_rng",
    "find_checkpoint",
    "list_checkpoints",
    "load_trainable_weights",
    "restore_rng",
    "save_checkpoint",
    "save_policy",
    "trainer_state_file",
]

logger = logging.getLogger(__name__)

#: File in a checkpoint folder naming the base model and the training step.
CHECKPOINT_META = POLICY_META

_NAME = re.compile(r"^update-(\d{6,})$")


def trainer_state_file(folder: Path, rank: int) -> Path:
    """The per-process trainer state file of a checkpoint folder."""
    return folder / f"trainer_state.rank{rank}.pt"


def list_checkpoints(output_dir: str | os.PathLike[str]) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    root = Path(output_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found)]


class CheckpointError(ClarifyGymError, RuntimeError):
    """No usable checkpoint where one was asked for."""


def _check_readable(folder: Path) -> None:
    """Read every file a resume reads (raises if one is missing or corrupt)."""
    policy = policy_folder(folder)
    if policy is None or not policy.config:
        raise FileNotFoundError(f"no {CHECKPOINT_META} with the run's config")
    policy.adapter_weights()
    policy.value_head_weights()
    states = sorted(folder.glob("trainer_state.rank*.pt"))
    if not states:
        raise FileNotFoundError(f"no {trainer_state_file(folder, 0).name}")
    for state in states:
        torch.load(state, weights_only=True)


def find_checkpoint(path: str | os.PathLike[str]) -> Path:
    """The checkpoint to resume from: ``path`` itself if it is one, else the latest readable one
    in the run folder ``path``. A latest checkpoint that cannot be read (a disk that filled up,
    a file damaged after the atomic rename) is skipped with a warning, falling back to the
    previous kept one."""
    path = Path(path)
    if trainer_state_file(path, 0).exists():
        try:
            _check_readable(path)
        except Exception as exc:
            raise CheckpointError(
                f"checkpoint {path} is unreadable ({type(exc).__name__}: {exc}); pass its run "
                f"folder {path.parent.parent} to fall back to an earlier kept checkpoint"
            ) from exc
        return path
    if not path.is_dir():
        raise FileNotFoundError(f"--resume {path}: no such folder; pass the --output-dir of a run")
    found = list_checkpoints(path)
    if not found:
        raise CheckpointError(
            f"--resume {path}: this run folder has no checkpoint yet (checkpoints/update-* is "
            "written every --save-every updates, and the run stopped before its first one); "
            f"start the run again without --resume (same --output-dir {path}), or resume "
            "another run"
        )
    for newer, folder in zip([None, *found[::-1]], found[::-1], strict=False):
        try:
            _check_readable(folder)
        except Exception as exc:
            logger.warning(
                "checkpoint %s is unreadable (%s: %s); falling back to the previous one",
                folder, type(exc).__name__, exc,
            )  # fmt: skip
            continue
        if newer is not None:
            logger.warning("resuming from %s, an older checkpoint than %s", folder, found[-1])
        return folder
    raise CheckpointError(
        f"--resume {path}: none of its {len(found)} kept checkpoints is readable (see the "
        "warnings above); start a fresh run in another --output-dir"
    )


def checkpoint_dir(output_dir: str | os.PathLike[str], update: int) -> Path:
    """Where the checkpoint after ``update`` updates goes."""
    return Path(output_dir) / "checkpoints" / f"update-{update:06d}"


def capture_rng(generators: dict[str, torch.Generator]) -> dict[str, Any]:
    """Every RNG state a run depends on, as plain data ``torch.load(weights_only=True)`` accepts."""
    numpy_state = np.random.get_state()
    assert isinstance(numpy_state, tuple)  # the legacy tuple form, not the dict form
    kind, keys, pos, has_gauss, cached = numpy_state
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": (kind, keys.tolist(), pos, has_gauss, cached),
        "torch": torch.get_rng_state(),
        "generators": {name: g.get_state() for name, g in generators.items()},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any], generators: dict[str, torch.Generator]) -> None:
    """Inverse of :func:`capture_rng`."""
    random.setstate(_tuples(state["python"]))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    for name, g in generators.items():
        g.set_state(state["generators"][name])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _tuples(x: Any) -> Any:
    return tuple(_tuples(v) for v in x) if isinstance(x, list | tuple) else x


def begin(output_dir: str | os.PathLike[str], update: int) -> Path:
    """The temporary folder a checkpoint is written into (emptied first)."""
    tmp = Path(output_dir) / "checkpoints" / f".tmp-update-{update:06d}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    return tmp


def commit(tmp: Path, final: Path, keep: int) -> None:
    """Rename the finished temporary folder into place, then delete all but the ``keep`` newest."""
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    for old in list_checkpoints(final.parent.parent)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def save_checkpoint(state: Any) -> Path:
    """Write a training run's checkpoint after ``state.update`` updates: adapter, value head,
    optimizer, RNG states and step, atomically (see the module docstring). Every process
    calls it (``state`` is an :class:`clarify_agents.ppo.trainer.TrainState`)."""
    from accelerate.utils import DistributedType

    acc, cfg = state.accelerator, state.cfg
    out = Path(cfg.log.output_dir)
    final = checkpoint_dir(out, state.update)
    tmp = final.parent / f".tmp-{final.name}"
    if acc.is_main_process:
        begin(out, state.update)
    acc.wait_for_everyone()
    sharded = acc.distributed_type in (DistributedType.DEEPSPEED, DistributedType.FSDP)
    gathered = acc.get_state_dict(state.model) if sharded else None  # collective
    if acc.is_main_process:
        save_policy(
            state.policy,
            tmp,
            tokenizer=state.tokenizer,
            base_model=cfg.model.model,
            extra={"update": state.update, "config": cfg.to_dict()},
            state_dict=gathered,
        )
    trainer_state = {
        "optimizer": state.optimizer.state_dict(),
        "rng": capture_rng(state.generators()),
        "update": state.update,
        "kl_coef": state.kl_ctl.value,
    }
    torch.save(trainer_state, trainer_state_file(tmp, acc.process_index))
    acc.wait_for_everyone()
    if acc.is_main_process:
        commit(tmp, final, cfg.log.keep_checkpoints)
    acc.wait_for_everyone()
    return final


# ---- the policy's files: peft adapter, value head, tokenizer, metadata ------------------------


def _local_path(spec: str) -> str:
    """The folder transformers can load a base model from (for adapter_config.json)."""
    from clarify_agents.models import converted_checkpoint, resolve_model

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
    _sort_target_modules(folder / "adapter_config.json")
    value_sd = value_sd or model.value_head.state_dict()
    save_file(
        {k: v.detach().float().cpu().contiguous() for k, v in value_sd.items()},
        folder / VALUE_HEAD_FILE,
    )
    tokenizer.save_pretrained(str(folder))
    meta = {"base_model": base_model, "base_model_path": base_path, "format": 1, **(extra or {})}
    (folder / CHECKPOINT_META).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")


def _sort_target_modules(config_file: Path) -> None:
    """peft keeps ``target_modules`` as a set, so its saved order varies from run to run: sort
    it, so that the same training writes the same file."""
    config = json.loads(config_file.read_text(encoding="utf-8"))
    if isinstance(config.get("target_modules"), list):
        config["target_modules"] = sorted(config["target_modules"])
        config_file.write_text(
            json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8"
        )


def load_trainable_weights(model: PolicyValueModel, folder: str | os.PathLike[str]) -> None:
    """Load a checkpoint's adapter and value-head weights into ``model`` (to resume)."""
    from peft import set_peft_model_state_dict

    policy = PolicyFolder(Path(folder))
    device = str(next(model.value_head.parameters()).device)
    result = set_peft_model_state_dict(model.policy, policy.adapter_weights(device))
    unexpected = getattr(result, "unexpected_keys", [])
    if unexpected:
        raise RuntimeError(
            f"checkpoint {folder} has adapter weights this model lacks: {unexpected[:5]}"
        )
    model.value_head.load_state_dict(policy.value_head_weights(device))
