"""Training rows for cluster RL engines: one row per (task, seed), as parquet.

Both engines read a parquet file whose rows carry the first prompt (chat messages) and where the
episode comes from. :func:`episode_rows` builds what they share; :func:`verl_row` and
:func:`skyrl_row` add each engine's routing keys (verl: ``agent_name`` picks the AgentLoop;
SkyRL: ``env_class`` picks the registered env). The episode itself (task id, seed, env id and
env kwargs) travels in ``extra_info``, which both engines hand to the adapter.

``python -m clarify_agents.integrations.dataset --engine verl --out data/verl`` writes ``train.parquet``
and ``test.parquet`` (the bundled sample's splits by default; ``--tasks`` takes any DOLOMITES
source).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "AGENT_NAME",
    "ENV_CLASS",
    "episode_rows",
    "episode_settings",
    "skyrl_row",
    "verl_row",
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
    env_id: str = "ProactiveGather-v0",
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
        str(info.get("env_id") or "ProactiveGather-v0"),
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


def main(argv: Sequence[str] | None = None) -> int:
    import clarify_gym

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", choices=("verl", "skyrl"), required=True)
    parser.add_argument("--out", type=Path, required=True, help="folder for the parquet files")
    parser.add_argument("--tasks", default="sample", help="task source (default: the sample)")
    parser.add_argument("--seeds", type=int, default=1, help="seeds 0..N-1 per task (default: 1)")
    parser.add_argument("--env-id", default="ProactiveGather-v0")
    parser.add_argument("--env-kwargs", type=json.loads, default={}, help="JSON for gym.make")
    args = parser.parse_args(argv)
    convert = verl_row if args.engine == "verl" else skyrl_row
    tasks = clarify_gym.load_tasks(args.tasks)
    by_split: dict[str, list[Any]] = {}
    for task in tasks:
        by_split.setdefault("test" if task.split == "test" else "train", []).append(task)
    # the training env loads the same source (the bundled sample is the env's default)
    env_kwargs = {**args.env_kwargs, **({"tasks": args.tasks} if args.tasks != "sample" else {})}
    for split, chosen in sorted(by_split.items()):
        rows = episode_rows(chosen, range(args.seeds), env_id=args.env_id, env_kwargs=env_kwargs)
        path = write_parquet([convert(r) for r in rows], args.out / f"{split}.parquet")
        print(json.dumps({"split": split, "rows": len(rows), "path": str(path)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
