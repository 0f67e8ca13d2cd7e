"""Summarise the partial H200 training runs of this folder (their metrics.jsonl files) as JSON.

Run: python benchmarks/results/learn_ppo_gpu_partial/summarize.py > .../summary.json
"""

import json
import statistics as st
from pathlib import Path

from benchmarks.learn_ppo import _train_summary

HERE = Path(__file__).resolve().parent
KEYS = ("env/hidden_coverage", "env/paper_reward", "env/redundant_rate")
TIMES = ("charts/iteration_s", "charts/rollout_s", "charts/update_s", "charts/tokens_per_s")
MEMORY = ("memory/rollout_gib", "memory/scoring_gib", "memory/update_gib")


def summary(run: Path) -> dict:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return {
        **_train_summary(run / "metrics.jsonl"),
        "train_first3_mean": {k: st.mean(r[k] for r in rows[:3]) for k in KEYS},
        "train_last3_mean": {k: st.mean(r[k] for r in rows[-3:]) for k in KEYS},
        "median": {k: st.median(r[k] for r in rows) for k in TIMES},
        "peak_gib": {k: max(r[k] for r in rows) for k in MEMORY},
        "first_log_ratio_max": rows[0]["losses/first_log_ratio_max"],
        "logprob_gap_mean": st.mean(r["rollout/logprob_gap"] for r in rows),
    }


print(
    json.dumps(
        {
            "what": "learn_ppo's 4 training runs at its default budget (30 updates of 16 "
            "episodes), in parallel on one H200 (bf16), stopped by the device call's 420 s limit "
            "at updates 24-27; no test-split evaluation ran (a resuming call was cut off at its "
            "own limit with nothing returned)",
            "command": "bash .gpu/run2.sh (run2.sh here; .gpu/ held the SmolLM2 GGUF in two "
            "halves and the wheels of setup.sh)",
            "device": "NVIDIA H200 143771 MiB, driver 580.159.04; python 3.12.3, torch "
            "2.11.0+cu130, transformers 5.17.0, peft 0.21.2, accelerate 1.15.0",
            "date": "2026-12-04",
            "runs": {p.name: summary(p) for p in sorted(HERE.iterdir()) if p.is_dir()},
        },
        indent=1,
    )
)
