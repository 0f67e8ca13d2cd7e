"""Train stable-baselines3 agents on ProactiveGatherBank-v0 and test them on held-out tasks.

Trains SB3 PPO (and A2C / DQN) on the ``train`` split of the tasks, then evaluates every
trained model (its most likely action) and three reference policies on the ``test`` split
(tasks never seen in training):

* the random bank policy — uniform over the K bank questions and STOP, seeded;
* the generic agent — TOP_GENERIC_QUESTIONS in order, through the bank;
* the best fixed sequence — the 5 bank questions chosen greedily on the *train* tasks, asked in
  that order whatever the task (what a policy gains by conditioning on the task and the
  answers is what it gains over this one).

Prints JSON and saves it as ``benchmarks/results/sb3.json`` (``ppo_vs_random`` = PPO's mean
``env/new_info`` on the test tasks ÷ the random policy's, beside the raw figures, the seeds,
timesteps and wall time), each finished (algorithm, seed) run as one line of
``sb3_runs.jsonl`` as soon as it ends, with its learning curve and every test episode (a rerun
with the same settings reuses them; pass ``--fresh`` to retrain), and the learning curves as
``sb3_learning_curve.png``.

Run: ``python -m clarify_agents.sb3`` or ``clarify-gym train-sb3`` (``--help`` for options).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import platform
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import numpy as np

from clarify_gym.cli import CommandParser, add_dataclass_arguments, from_args, run_command
from clarify_gym.errors import ConfigError
from clarify_gym.files import git_commit, write_json_atomic

__all__ = ["ALGO_KWARGS", "SB3TrainConfig", "add_arguments", "main", "plot_curves", "run"]

ENV_ID = "ProactiveGatherBank-v0"
RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"

#: Hyper-parameters per algorithm (the rest are SB3's defaults). The new-information reward
#: is a coverage objective where each question's own gain is the main signal, so a short
#: discount (gamma 0.5) trains far faster than gamma 1; evaluation is always the undiscounted
#: ``env/new_info``.
ALGO_KWARGS: dict[str, dict[str, Any]] = {
    "ppo": {
        "n_steps": 256,
        "batch_size": 512,
        "n_epochs": 10,
        "learning_rate": 3e-4,
        "ent_coef": 0.01,
        "gamma": 0.5,
    },
    "a2c": {"n_steps": 16, "learning_rate": 1e-3, "ent_coef": 0.01, "gamma": 0.5},
    "dqn": {
        "buffer_size": 100_000,
        "learning_starts": 2_000,
        "batch_size": 128,
        "learning_rate": 5e-4,
        "train_freq": 4,
        "target_update_interval": 2_000,
        "exploration_fraction": 0.3,
        "exploration_final_eps": 0.02,
        "gamma": 0.5,
    },
}


@dataclass
class SB3TrainConfig:
    """Settings of one benchmark run (each field is also a command-line option)."""

    algos: tuple[Literal["ppo", "a2c", "dqn"], ...] = ("ppo", "a2c", "dqn")
    """Algorithms to train: ppo, a2c, dqn."""
    seeds: tuple[int, ...] = (0, 1, 2)
    """Training seeds."""
    timesteps: int = 200_000
    """Env steps of training per run."""
    n_envs: int = 8
    """Parallel envs (DummyVecEnv) for training."""
    eval_every: int = 10_000
    """Timesteps between learning-curve evaluations."""
    random_episodes: int = 20
    """Random-policy episodes per task (seeded)."""
    tasks: str = "sample"
    """Task source (see load_tasks)."""
    train_split: str = "train"
    """Split to train on."""
    test_split: str = "test"
    """Held-out split to evaluate on."""
    user: str = "lexical"
    """Simulated user: lexical, embedding."""
    text_features: str = "hash"
    """Task features: hash, embedding, none."""
    text_dim: int = 128
    """Hash buckets for the visible task."""
    answer_dim: int = 64
    """Hash buckets for the user's answers."""
    out: str = str(RESULTS)
    """Folder for the JSON, JSONL, PNG."""
    fresh: bool = False
    """Retrain even if runs are saved."""
    torch_threads: int = 1
    """torch CPU threads."""

    def __post_init__(self) -> None:
        unknown = [a for a in self.algos if a not in ALGO_KWARGS]
        if unknown:
            raise ConfigError(
                f"--algos: unknown algorithm(s) {unknown}; choose from {sorted(ALGO_KWARGS)}"
            )
        if not self.algos or not self.seeds:
            raise ConfigError("--algos and --seeds each need at least one value")
        low = {
            name: value
            for name, value in (
                ("timesteps", self.timesteps),
                ("n_envs", self.n_envs),
                ("eval_every", self.eval_every),
                ("random_episodes", self.random_episodes),
                ("text_dim", self.text_dim),
                ("answer_dim", self.answer_dim),
                ("torch_threads", self.torch_threads),
            )
            if value < 1
        }
        if low:
            flags = ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in low.items())
            raise ConfigError(f"{flags}: must be >= 1")
        if any(seed < 0 for seed in self.seeds):
            raise ConfigError(f"--seeds must be >= 0, got {list(self.seeds)}")

    def env_kwargs(self, split: str) -> dict[str, Any]:
        """Keyword arguments of ``gym.make(ENV_ID, ...)`` for one split."""
        return {
            "tasks": self.tasks,
            "split": split,
            "user": self.user,
            "text_features": self.text_features,
            "text_dim": self.text_dim,
            "answer_dim": self.answer_dim,
        }

    def run_key(self) -> str:
        """A short hash of every setting that changes a training run's outcome."""
        keep = {
            k: v
            for k, v in dataclasses.asdict(self).items()
            if k not in ("algos", "seeds", "out", "fresh", "random_episodes")
        }
        keep["algo_kwargs"] = ALGO_KWARGS
        return hashlib.sha1(json.dumps(keep, sort_keys=True).encode()).hexdigest()[:12]


def _evaluate(env: Any, policy: Any, episodes: int = 1, seed: int = 0) -> dict[str, Any]:
    from clarify_gym.integrations.sb3 import evaluate_bank_policy, summarize

    results = evaluate_bank_policy(env, policy, episodes_per_task=episodes, seed=seed)
    return {**summarize(results), "per_episode": [r.as_dict() for r in results]}


def train_one(cfg: SB3TrainConfig, algo: str, seed: int) -> dict[str, Any]:
    """Train one (algorithm, seed) run; return its row (learning curve and final evaluation)."""
    import gymnasium as gym
    import stable_baselines3 as sb3
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env

    from clarify_gym.integrations.sb3 import SB3BankPolicy, evaluate_bank_policy, summarize

    train_env = gym.make(ENV_ID, **cfg.env_kwargs(cfg.train_split))
    test_env = gym.make(ENV_ID, **cfg.env_kwargs(cfg.test_split))
    vec = make_vec_env(
        ENV_ID, n_envs=cfg.n_envs, seed=seed, env_kwargs=cfg.env_kwargs(cfg.train_split)
    )
    cls = {"ppo": sb3.PPO, "a2c": sb3.A2C, "dqn": sb3.DQN}[algo]
    model = cls("MlpPolicy", vec, seed=seed, device="cpu", verbose=0, **ALGO_KWARGS[algo])
    curve: list[dict[str, float]] = []
    started = time.perf_counter()

    def point() -> None:
        policy = SB3BankPolicy(model)
        curve.append(
            {
                "timesteps": int(model.num_timesteps),
                "wall_s": round(time.perf_counter() - started, 2),
                "train/new_info": summarize(evaluate_bank_policy(train_env, policy))[
                    "env/new_info"
                ],
                "test/new_info": summarize(evaluate_bank_policy(test_env, policy))["env/new_info"],
            }
        )

    class Curve(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.next_at = cfg.eval_every

        def _on_step(self) -> bool:
            if self.num_timesteps >= self.next_at:
                point()
                self.next_at += cfg.eval_every
            return True

    point()
    model.learn(cfg.timesteps, callback=Curve())
    wall = time.perf_counter() - started
    if curve[-1]["timesteps"] != model.num_timesteps:
        point()
    policy = SB3BankPolicy(model)
    vec.close()
    return {
        "run_key": cfg.run_key(),
        "algo": algo,
        "seed": seed,
        "timesteps": int(model.num_timesteps),
        "wall_s": round(wall, 1),
        "steps_per_s": round(model.num_timesteps / wall, 1),
        "hyperparameters": ALGO_KWARGS[algo],
        "curve": curve,
        "train": _evaluate(train_env, policy),
        "test": _evaluate(test_env, policy),
    }


def plot_curves(results: dict[str, Any], path: Path) -> None:
    """The learning curves (test ``env/new_info`` over timesteps, one thin line per seed, the
    mean thick; PPO's mean on the train tasks dotted) with the reference policies and twice the
    random policy as horizontal lines, from ``results`` (the content of ``sb3.json``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.5), dpi=100)
    colors = {"ppo": "tab:blue", "a2c": "tab:green", "dqn": "tab:purple"}
    for algo, block in results["algos"].items():
        color = colors.get(algo, "black")
        curves = [run["curve"] for run in block["runs"]]
        for c in curves:
            ax.plot(
                [p["timesteps"] for p in c],
                [p["test/new_info"] for p in c],
                color=color,
                alpha=0.3,
                linewidth=0.8,
            )
        n = min(len(c) for c in curves)
        xs = [curves[0][i]["timesteps"] for i in range(n)]
        mean = [float(np.mean([c[i]["test/new_info"] for c in curves])) for i in range(n)]
        ax.plot(xs, mean, color=color, linewidth=2, label=f"{algo.upper()} (mean of {len(curves)})")
        if algo == "ppo":
            train = [float(np.mean([c[i]["train/new_info"] for c in curves])) for i in range(n)]
            ax.plot(
                xs, train, color=color, linestyle=":", linewidth=1.2, label="PPO on train tasks"
            )
    names = {
        "random": "random bank policy",
        "generic": "generic agent",
        "greedy_fixed": "best fixed sequence (train)",
    }
    for name, style in (("random", ":"), ("generic", "--"), ("greedy_fixed", "-.")):
        if name in results["baselines"]:
            value = results["baselines"][name]["test"]["env/new_info"]
            ax.axhline(value, color="gray", linestyle=style, label=f"{names[name]} ({value:.2f})")
    target = 2 * results["baselines"]["random"]["test"]["env/new_info"]
    ax.axhline(
        target, color="tab:red", alpha=0.5, linewidth=0.8, label=f"2 x random ({target:.2f})"
    )
    ax.set_xlabel("training timesteps (train split)")
    ax.set_ylabel("env/new_info on held-out test tasks")
    ax.set_title(f"{ENV_ID}: hidden sentences elicited per episode")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)


def _load_runs(path: Path, key: str) -> dict[tuple[str, int], dict[str, Any]]:
    runs: dict[tuple[str, int], dict[str, Any]] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                if row.get("run_key") == key:
                    runs[(row["algo"], int(row["seed"]))] = row
    return runs


def benchmark(cfg: SB3TrainConfig) -> dict[str, Any]:
    """Train every (algorithm, seed), evaluate the baselines, save everything; return the JSON."""
    from clarify_gym.files import check_output_folder
    from clarify_gym.registration import make_env

    for split in (cfg.train_split, cfg.test_split):  # bad settings fail here, before training
        make_env(ENV_ID, **cfg.env_kwargs(split)).close()
    out = check_output_folder(cfg.out, "--out")

    import gymnasium as gym
    import stable_baselines3 as sb3
    import torch

    import clarify_gym
    from clarify_gym.integrations.sb3 import (
        GenericBankPolicy,
        RandomBankPolicy,
        greedy_fixed_sequence,
    )

    torch.set_num_threads(cfg.torch_threads)
    out.mkdir(parents=True, exist_ok=True)
    runs_path = out / "sb3_runs.jsonl"
    key = cfg.run_key()
    saved = {} if cfg.fresh else _load_runs(runs_path, key)
    started = time.perf_counter()

    baselines: dict[str, Any] = {}
    fixed = greedy_fixed_sequence(gym.make(ENV_ID, **cfg.env_kwargs(cfg.train_split)))
    for split_name, split in (("train", cfg.train_split), ("test", cfg.test_split)):
        env = gym.make(ENV_ID, **cfg.env_kwargs(split))
        for name, policy, episodes in (
            ("random", RandomBankPolicy(env, seed=0), cfg.random_episodes),
            ("generic", GenericBankPolicy(env), 1),
            ("greedy_fixed", GenericBankPolicy(env, fixed), 1),
        ):
            evaluated = _evaluate(env, policy, episodes=episodes)
            if split_name == "train":
                evaluated.pop("per_episode")
            baselines.setdefault(name, {})[split_name] = evaluated

    algos: dict[str, Any] = {}
    for algo in cfg.algos:
        rows = []
        for seed in cfg.seeds:
            row = saved.get((algo, seed))
            if row is None:
                row = train_one(cfg, algo, seed)
                with runs_path.open("a", encoding="utf-8") as handle:
                    handle.write(json.dumps(row) + "\n")
            print(
                f"{algo} seed {seed}: test env/new_info {row['test']['env/new_info']:.2f} "
                f"(train {row['train']['env/new_info']:.2f}) in {row['wall_s']:.0f} s",
                file=sys.stderr,
            )
            rows.append(row)
        test = [r["test"]["env/new_info"] for r in rows]
        algos[algo] = {
            "test/new_info_mean": float(np.mean(test)),
            "test/new_info_per_seed": test,
            "train/new_info_mean": float(np.mean([r["train"]["env/new_info"] for r in rows])),
            "vs_random": float(np.mean(test)) / baselines["random"]["test"]["env/new_info"],
            # per-episode rows stay in sb3_runs.jsonl
            "runs": [
                {
                    **row,
                    "train": {k: v for k, v in row["train"].items() if k != "per_episode"},
                    "test": {k: v for k, v in row["test"].items() if k != "per_episode"},
                }
                for row in rows
            ],
        }

    random_test = baselines["random"]["test"]["env/new_info"]
    results: dict[str, Any] = {
        "metadata": {
            "env_id": ENV_ID,
            "env_kwargs": {
                "train": cfg.env_kwargs(cfg.train_split),
                "test": cfg.env_kwargs(cfg.test_split),
            },
            "config": dataclasses.asdict(cfg),
            "run_key": key,
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "git_commit": git_commit(),
            "versions": {
                "clarify_gym": clarify_gym.__version__,
                "stable_baselines3": sb3.__version__,
                "torch": torch.__version__,
                "gymnasium": gym.__version__,
                "python": platform.python_version(),
            },
            "wall_s_this_invocation": round(time.perf_counter() - started, 1),
        },
        "baselines": baselines,
        "greedy_fixed_sequence": list(fixed),
        "algos": algos,
    }
    if "ppo" in algos:
        ppo = algos["ppo"]
        results["ppo_vs_random"] = ppo["test/new_info_mean"] / random_test
        results["ppo_vs_random_per_seed"] = [v / random_test for v in ppo["test/new_info_per_seed"]]
        results["ppo_vs_generic"] = (
            ppo["test/new_info_mean"] / baselines["generic"]["test"]["env/new_info"]
        )
        results["ppo_vs_greedy_fixed"] = (
            ppo["test/new_info_mean"] / baselines["greedy_fixed"]["test"]["env/new_info"]
        )
        results["target_ppo_vs_random_2x_met"] = results["ppo_vs_random"] >= 2.0
    write_json_atomic(out / "sb3.json", results)
    plot_curves(results, out / "sb3_learning_curve.png")
    return results


def _summary(results: dict[str, Any]) -> dict[str, Any]:
    """The JSON printed on stdout: the headline figures, without per-episode rows and curves."""
    brief = {
        k: v
        for k, v in results.items()
        if k not in ("algos", "baselines", "metadata", "greedy_fixed_sequence")
    }
    brief["baselines"] = {
        name: {split: block[split]["env/new_info"] for split in block}
        for name, block in results["baselines"].items()
    }
    brief["algos"] = {
        algo: {k: v for k, v in block.items() if k != "runs"}
        | {
            "timesteps": [r["timesteps"] for r in block["runs"]],
            "wall_s": [r["wall_s"] for r in block["runs"]],
            "seeds": [r["seed"] for r in block["runs"]],
        }
        for algo, block in results["algos"].items()
    }
    brief["metadata"] = {
        k: results["metadata"][k] for k in ("env_id", "date", "git_commit", "run_key")
    }
    return brief


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``clarify-gym train-sb3`` (one per :class:`SB3TrainConfig` field)."""
    add_dataclass_arguments(parser, SB3TrainConfig)


def run(args: argparse.Namespace) -> int:
    """Run the benchmark with the parsed arguments; print the headline JSON."""
    results = benchmark(from_args(SB3TrainConfig, args))
    print(json.dumps(_summary(results), indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m clarify_agents.sb3``: the same as ``clarify-gym train-sb3``."""
    parser = CommandParser(
        prog="python -m clarify_agents.sb3", description=__doc__.split("\n\n")[0]
    )
    add_arguments(parser)
    parser.set_defaults(_run=run)
    return run_command(parser, argv)


if __name__ == "__main__":
    sys.exit(main())
