"""Small helpers shared by the tests (not fixtures)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import gymnasium as gym

import clarify_gym  # noqa: F401  (registers the ids)

#: Five different generic questions (conformance checks play them in order).
QUESTIONS = [
    "What steps should I follow?",
    "What sections must the output contain, and in what order?",
    "Who is the audience?",
    "Are there constraints or things I must avoid?",
    "How long should it be?",
]


def good_question(env: gym.Env, index: int = 0) -> str:
    """A question built from the words of the index-th hidden sentence of the current task."""
    task = env.unwrapped.state.task
    sentence = task.hidden_sentences[index]
    return f"Could you tell me about this: {sentence.text.rstrip('.')}?"


def rollout(
    env: gym.Env, seed: int, actions: list[str], options: dict[str, Any] | None = None
) -> list[tuple]:
    """Reset with ``seed`` and play ``actions`` (stopping at the end of the episode)."""
    obs, info = env.reset(seed=seed, options=options)
    out: list[tuple] = [(obs, info)]
    for action in actions:
        obs, reward, terminated, truncated, info = env.step(action)
        out.append((obs, reward, terminated, truncated, info))
        if terminated or truncated:
            break
    return out


def run_python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter at the repository root, with extra env variables."""
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).parent.parent,
        env={**os.environ, **env},
    )


def last_turn(env: gym.Env) -> Any:
    """The env's last :class:`~clarify_gym.dialogue.Turn` (cited and new hidden ids are not in
    ``info`` before the episode ends, so tests read them from the state)."""
    return env.unwrapped.state.turns[-1]


def short_id(value: Any) -> str | None:
    """A readable id for a parametrised test: numbers and short one-line strings as they are,
    anything else by position (pytest's ``argname<index>``)."""
    if isinstance(value, (bool, int, float)):
        return str(value)
    if isinstance(value, str) and 0 < len(value) <= 40 and value.isprintable():
        return value
    return None


#: The agents of the killed-run tests: a slow first question, so a kill lands mid-run.
KILLED_RUN_AGENTS = ("py:bench_agents:SlowGeneric", "oracle")


def kill_bench_mid_run(out: Path, *extra: str, min_rows: int = 5, timeout: float = 180) -> None:
    """Start ``clarify-gym bench`` (KILLED_RUN_AGENTS, seeds 0-3: 96 episodes) in a subprocess,
    kill it once ``min_rows`` rows are written, and leave the torn line a kill mid-write leaves."""
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(root), str(root / "tests"), env.get("PYTHONPATH")) if p
    )
    command = [
        sys.executable,
        "-m",
        "clarify_bench.cli",
        "bench",
        "--agents",
        ",".join(KILLED_RUN_AGENTS),
    ]
    command += ["--seeds", "0-3", "--out", str(out), "--no-progress", "--no-plots", *extra]
    proc = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=out.parent
    )
    results = out / "results.jsonl"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if results.exists() and results.read_bytes().count(b"\n") >= min_rows:
            break
        time.sleep(0.005)
    proc.kill()
    proc.wait()
    assert proc.returncode != 0, "the run ended before the kill: slow SlowGeneric down"
    assert min_rows <= results.read_bytes().count(b"\n") < 96
    with open(results, "ab") as f:  # what a kill in the middle of a write leaves
        f.write(b'{"agent": "oracle", "task_id": "cg-la')
