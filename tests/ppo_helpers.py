"""Helpers for the PPO tests: short tasks (short prompts keep the tiny model fast), a tiny config,
one torch thread (the 2-core CI machine is shared; two threads thrash when it is busy)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from clarify_agents.ppo.config import TrainConfig
from clarify_agents.ppo.presets import preset
from conftest import dolomites_row, write_jsonl


def short_tasks(folder: Path) -> Path:
    """Three short DOLOMITES-format tasks (prompts of ~280 tiny-tokenizer tokens)."""
    folder.mkdir(parents=True, exist_ok=True)
    return write_jsonl(folder / "short_tasks.jsonl", [dolomites_row(f"d{i}") for i in range(3)])


def tiny_config(folder: Path, **overrides: Any) -> TrainConfig:
    """The tiny preset on short tasks, writing into ``folder/run``, no TensorBoard, no bar."""
    settings = {
        "output_dir": str(folder / "run"),
        "tasks": str(short_tasks(folder)),
        "split": None,
        "tensorboard": False,
        "progress": False,
        "save_every": 100,
    }
    settings.update(overrides)
    return preset("tiny").replace(**settings)


@contextmanager
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
