"""Training rows for cluster RL engines: one row per (task, seed), as parquet.

Both engines read a parquet file whose rows carry the first prompt (chat messages) and where the
episode comes from. :func:`episode_rows` builds what they share; :func:`verl_row` and
:func:`skyrl_row` add each engine's routing keys (verl: ``agent_name`` picks the AgentLoop;
SkyRL: ``env_class`` picks the registered env). The episode itself (task id, seed, env id and
env kwargs) travels in ``extra_info``, which both engines hand to the adapter.

``python -m clarify_agents.integrations.dataset --engine verl --out data/verl`` writes ``train.parquet``
and ``test.parquet`` (the bundled sample's splits by default; ``--tasks`` takes any DOLOMITES
source). A source with a ``test`` split keeps it; one without (a DOLOMITES ``dev`` file) gets a
held-out share of its tasks as ``test`` (``--test-share``, chosen by a hash of the task id, so
the same tasks are held out on every run and machine: :func:`split_tasks`).
"""

from __future__ import annotations

import argparse
import json
import sys
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from clarify_gym.cli import CommandParser, add_dataclass_arguments, flag, from_args, run_command
from clarify_gym.errors import ConfigError
from clarify_gym.registration import DEFAULT_ENV_ID

__all__ = [
    "AGENT_NAME",
    "ENV_CLASS",
    "DatasetConfig",
    "episode_rows",
    "episode_settings",
    "skyrl_row",
    "split_tasks",
    "verl_row",
    "write_dataset",
    "write_parquet",
]

#: The name the verl AgentLoop is registered under (``agent_name`` of every row).
AGENT_NAME = "proactive_gather"
#: The id the SkyRL env is registered under (``env_class`` of every row).
ENV_CLASS = "proactive_gather"
DATA_SOURCE = "clarify_gym/dolomites"


def episode_rows(
    tasks: Sequence[Any],
    seeds: Iterable[int],
    *,
    env_id: str = DEFAULT_ENV_ID,
    env_kwargs: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """One engine-neutral row per (seed, task): the first chat messages, as the env's first
    observation renders them (:func:`clarify_agents.prompts.observation_to_messages`), and the episode's
    settings under ``extra_info``."""
    import gymnasium as gym

    import clarify_gym  # noqa: F401  (registers the env ids)
    from clarify_agents.prompts import observation_to_messages

    env_kwargs = dict(env_kwargs or {})
    env = gym.make(env_id, **{**env_kwargs, "tasks": list(tasks)})
    rows: list[dict[str, Any]] = []
    try:
        for seed in seeds:
            for task in tasks:
                obs, _ = env.reset(seed=seed, options={"task_id": task.id})
                rows.append(
                    {
                        "data_source": DATA_SOURCE,
                        "prompt": observation_to_messages(obs),
                        "extra_info": {
                            "index": len(rows),
                            "task_id": task.id,
                            "seed": int(seed),
                            "split": task.split or "",
                            "env_id": env_id,
                            "env_kwargs": json.dumps(env_kwargs, sort_keys=True),
                        },
                    }
                )
    finally:
        env.close()
    return rows


def episode_settings(extra_info: Any) -> tuple[str, dict[str, Any], str, int]:
    """``(env_id, env_kwargs, task_id, seed)`` from a row's ``extra_info`` (a dict, or what
    parquet and numpy make of one).

    >>> episode_settings({"task_id": "t1", "seed": 3, "env_id": "E-v0", "env_kwargs": '{"max_questions": 2}'})
    ('E-v0', {'max_questions': 2}, 't1', 3)
    """
    info = dict(extra_info or {})
    missing = [k for k in ("task_id", "seed") if k not in info]
    if missing:
        raise KeyError(
            f"extra_info lacks {missing}: build the rows with clarify_agents.integrations.dataset"
        )
    kwargs = info.get("env_kwargs") or "{}"
    kwargs = json.loads(kwargs) if isinstance(kwargs, str) else dict(kwargs)
    return (
        str(info.get("env_id") or DEFAULT_ENV_ID),
        kwargs,
        str(info["task_id"]),
        int(info["seed"]),
    )


def verl_row(row: dict[str, Any]) -> dict[str, Any]:
    """A row for verl's ``RLHFDataset``: ``agent_name`` routes it to the ProactiveGather
    AgentLoop; ``reward_model`` is required by verl's dataset but unused (the env scores)."""
    return {
        **row,
        "agent_name": AGENT_NAME,
        "ability": "clarification",
        "reward_model": {"style": "env", "ground_truth": row["extra_info"]["task_id"]},
    }


def skyrl_row(row: dict[str, Any]) -> dict[str, Any]:
    """A row for SkyRL's prompt dataset: ``env_class`` routes it to the registered env, which
    gets the other keys (``extra_info``, ``reward_spec``) as its ``extras``."""
    return {
        **row,
        "env_class": ENV_CLASS,
        "reward_spec": {"method": "env", "ground_truth": row["extra_info"]["task_id"]},
    }


def write_parquet(rows: Sequence[dict[str, Any]], path: Path) -> Path:
    """Write rows to ``path`` (through a temporary file, so a kill leaves no half file)."""
    import pandas as pd

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    pd.DataFrame(list(rows)).to_parquet(tmp, index=False)
    tmp.replace(path)
    return path


def split_tasks(tasks: Sequence[Any], test_share: float) -> dict[str, list[Any]]:
    """``{"train": [...], "test": [...]}``: a source's own ``test`` split when it has one, else
    about ``test_share`` of its tasks held out by a hash of the task id (CRC-32, the same on
    every run and machine), at least one task on each side when there are two or more.

    >>> from types import SimpleNamespace as T
    >>> dev = [T(id=f"t{i}", split="dev") for i in range(10)]
    >>> {k: len(v) for k, v in split_tasks(dev, 0.2).items()}
    {'train': 8, 'test': 2}
    >>> sample = [T(id="a", split="train"), T(id="b", split="test")]
    >>> {k: [t.id for t in v] for k, v in split_tasks(sample, 0.2).items()}
    {'train': ['a'], 'test': ['b']}
    """
    if any(t.split == "test" for t in tasks):
        return {
            "train": [t for t in tasks if t.split != "test"],
            "test": [t for t in tasks if t.split == "test"],
        }
    ranked = sorted(tasks, key=lambda t: (zlib.crc32(str(t.id).encode()), str(t.id)))
    held = round(test_share * len(ranked)) if len(ranked) > 1 else 0
    held = min(max(held, 1 if len(ranked) > 1 and test_share > 0 else 0), len(ranked) - 1)
    test_ids = {t.id for t in ranked[:held]}
    return {
        "train": [t for t in tasks if t.id not in test_ids],
        "test": [t for t in tasks if t.id in test_ids],
    }


@dataclass
class DatasetConfig:
    """Settings of ``python -m clarify_agents.integrations.dataset``."""

    out: str = ""
    """Folder for train.parquet and test.parquet (required)."""
    engine: Literal["verl", "skyrl"] = "verl"
    """Which engine's routing keys the rows carry."""
    tasks: str = "sample"
    """Task source: 'sample', a DOLOMITES .jsonl/.zip path, 'hf:cmalaviya/dolomites'."""
    seeds: int = 1
    """Seeds 0..N-1 per task: one row each."""
    test_share: float = 0.2
    """Share of the tasks held out as test when the source has no test split."""
    env_id: str = DEFAULT_ENV_ID
    """Gymnasium env id the episodes are played in."""
    env_kwargs: dict[str, Any] = field(default_factory=dict, metadata=flag(metavar="JSON"))
    """JSON keyword arguments for gym.make, e.g. '{"max_questions": 5}'."""

    def __post_init__(self) -> None:
        if not self.out:
            raise ConfigError("--out is required: the folder for train.parquet and test.parquet")
        if self.seeds < 1 or not 0.0 < self.test_share < 1.0:
            raise ConfigError(
                f"--seeds must be >= 1 and --test-share between 0 and 1, got {self.seeds} and "
                f"{self.test_share}"
            )


def write_dataset(cfg: DatasetConfig) -> dict[str, Path]:
    """Write ``train.parquet`` and ``test.parquet`` for ``cfg``; returns their paths."""
    import clarify_gym

    convert = verl_row if cfg.engine == "verl" else skyrl_row
    tasks = clarify_gym.load_tasks(cfg.tasks)
    splits = split_tasks(tasks, cfg.test_share)
    if not splits["train"] or not splits["test"]:
        raise ConfigError(
            f"{cfg.tasks} has {len(tasks)} task(s); a train and a test split need at least 2"
        )
    # the training env loads the same source (the bundled sample is the env's default)
    env_kwargs = {**cfg.env_kwargs, **({"tasks": cfg.tasks} if cfg.tasks != "sample" else {})}
    paths = {}
    for split, chosen in splits.items():
        rows = episode_rows(chosen, range(cfg.seeds), env_id=cfg.env_id, env_kwargs=env_kwargs)
        paths[split] = write_parquet([convert(r) for r in rows], Path(cfg.out) / f"{split}.parquet")
        print(json.dumps({"split": split, "rows": len(rows), "path": str(paths[split])}))
    return paths


def run(args: argparse.Namespace) -> int:
    """Write the rows of the parsed settings."""
    write_dataset(from_args(DatasetConfig, args))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m clarify_agents.integrations.dataset``; bad settings end in one line on
    stderr and status 2."""
    parser = CommandParser(
        prog="python -m clarify_agents.integrations.dataset",
        description=(__doc__ or "").split("\n\n")[0],
    )
    add_dataclass_arguments(parser, DatasetConfig)
    parser.set_defaults(_run=run)
    return run_command(parser, argv)


if __name__ == "__main__":
    sys.exit(main())
