"""Checkpoints: adapter + value head + optimizer + RNG states + step, written atomically.

A checkpoint is ``<output_dir>/checkpoints/update-000010/``:

* ``adapter_config.json``, ``adapter_model.safetensors``: the LoRA adapter in peft format;
* ``value_head.safetensors``, the tokenizer files, ``clarify_gym_ppo.json`` (base model spec,
  update, config): see :func:`agents.ppo.model.save_policy`;
* ``trainer_state.rank<r>.pt`` per process: optimizer state, the Python, NumPy, torch (CPU and
  CUDA) and sampling-generator RNG states, the update count and the KL coefficient.

Environments need no saved state: every episode is reset with a seed derived from the run seed
and its index, so a resumed run replays the same tasks. The folder is first written under a
temporary name and renamed when complete, so a crash never leaves a half-written checkpoint;
older checkpoints beyond ``keep`` are deleted after the rename.
"""

from __future__ import annotations

import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = [
    "capture_rng",
    "find_checkpoint",
    "list_checkpoints",
    "restore_rng",
    "trainer_state_file",
]

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


def find_checkpoint(path: str | os.PathLike[str]) -> Path:
    """The checkpoint to resume from: ``path`` itself if it is one, else the latest in the run
    folder ``path``."""
    path = Path(path)
    if trainer_state_file(path, 0).exists():
        return path
    found = list_checkpoints(path)
    if not found:
        raise FileNotFoundError(
            f"{path} is neither a checkpoint folder (with trainer_state.rank0.pt) nor a run folder "
            "with checkpoints/update-*; pass the --output-dir of an earlier run"
        )
    return found[-1]


def checkpoint_dir(output_dir: str | os.PathLike[str], update: int) -> Path:
    """Where the checkpoint after ``update`` updates goes."""
    return Path(output_dir) / "checkpoints" / f"update-{update:06d}"


def capture_rng(generators: dict[str, torch.Generator]) -> dict[str, Any]:
    """Every RNG state a run depends on, as plain data ``torch.load(weights_only=True)`` accepts."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
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
