"""Multi-process PPO on CPUs: DDP and FSDP2 over gloo (torchrun, 2 processes, tiny preset), the
bf16 cast DeepSpeed ZeRO applies, global advantage whitening and the batch geometry check.

The torchrun tests start ``tests/dist_worker.py`` in 2 processes (~15 s each on 2 cores).
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch
from clarify_agents.policy_folder import load_policy
from clarify_agents.ppo.config import PPOSettings
from clarify_agents.ppo.core import masked_whiten
from clarify_agents.ppo.presets import preset
from ppo_helpers import short_tasks

ROOT = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("dist_worker.py")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(mode: str, tmp_path: Path, python: str = sys.executable, **overrides) -> list[dict]:
    """Run the worker in 2 processes; the report of each rank."""
    out = tmp_path / mode
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",
        "MASTER_ADDR": "127.0.0.1",
    }
    cmd = [
        python, "-m", "torch.distributed.run", "--nproc-per-node", "2",
        "--master-addr", "127.0.0.1", "--master-port", str(_free_port()),
        str(WORKER), mode, str(out), str(short_tasks(tmp_path)), json.dumps(overrides),
    ]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    # the error lines first, then the whole tail: a rank killed by a signal names no Error
    errors = [line for line in proc.stderr.splitlines() if "Error" in line]
    assert proc.returncode == 0, "\n".join(
        [*errors[-5:], "--- stderr tail ---", proc.stderr[-6000:]]
    )
    return [json.loads((out / f"rank-{r}.json").read_text()) for r in range(2)]


def check_run(reports: list[dict]) -> None:
    """Both processes saw the same (reduced) metrics; the first update has KL 0 (LoRA starts as
    a no-op), the second does not (the reference, the adapter switched off, stays behind);
    losses are finite; the base weights did not move; the checkpoint is a loadable adapter."""
    first, second = reports
    assert first["world"] == 2 and first["history"] == second["history"]
    h1, h2 = first["history"]
    assert h1["objective/kl"] == 0.0 and h2["objective/kl"] != 0.0
    for row in (h1, h2):
        assert all(math.isfinite(v) for k, v in row.items() if k.startswith("losses/policy"))
        assert math.isfinite(row["losses/value"]) and math.isfinite(row["losses/grad_norm_actor"])
    assert first["base_changed"] == [] and second["base_changed"] == []
    policy, _, folder = load_policy(first["checkpoint"])
    assert folder.meta["update"] == 2
    lora_b = [p for n, p in policy.named_parameters() if "lora_B" in n]
    assert lora_b and all(p.abs().sum() > 0 for p in lora_b)  # trained (they start at 0)


def test_ddp_two_processes_with_the_micro_batch_picked_per_process(tmp_path):
    # minibatch 4 over 2 processes is 2 each: micro-batch 4 does not fit (on main: "4 % 8")
    reports = torchrun("ddp", tmp_path, minibatch_size=4, micro_batch_size=4)
    check_run(reports)
    assert reports[0]["distributed_type"] == "DistributedType.MULTI_CPU"
    assert (reports[0]["micro_batch"], reports[0]["grad_accum_steps"]) == (2, 1)


def test_fsdp2_two_processes_with_the_shipped_config(tmp_path):
    reports = torchrun("fsdp", tmp_path)
    check_run(reports)
    assert reports[0]["distributed_type"] == "DistributedType.FSDP"
    # frozen base in bf16, trainable LoRA and value head kept as fp32 master weights
    assert reports[0]["dtypes"] == ["torch.bfloat16", "torch.float32"]


def _deepspeed_python() -> str | None:
    """A Python with DeepSpeed: $CLARIFY_GYM_DEEPSPEED_PYTHON, or this one if it has it."""
    if os.environ.get("CLARIFY_GYM_DEEPSPEED_PYTHON"):
        return os.environ["CLARIFY_GYM_DEEPSPEED_PYTHON"]
    return sys.executable if importlib.util.find_spec("deepspeed") else None


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["zero2", "zero3"])
def test_deepspeed_zero_two_processes_with_the_shipped_config(tmp_path, monkeypatch, stage):
    """ZeRO-2/3 through accelerate on CPUs (DS_ACCELERATOR=cpu, gloo), ~45 s each. DeepSpeed is
    not in the test environment (it would change its torch): install it in a venv of its own
    (``pip install torch==2.13.0 deepspeed accelerate peft transformers gymnasium``) and point
    CLARIFY_GYM_DEEPSPEED_PYTHON at its python."""
    python = _deepspeed_python()
    if python is None:
        pytest.skip("DeepSpeed is not installed; set CLARIFY_GYM_DEEPSPEED_PYTHON (see docstring)")
    monkeypatch.setenv("DS_ACCELERATOR", "cpu")
    reports = torchrun(stage, tmp_path, python=python)
    check_run(reports)
    assert reports[0]["distributed_type"] == "DistributedType.DEEPSPEED"


def test_every_weight_cast_to_bf16_as_deepspeed_zero_does(tmp_path):
    reports = torchrun("zero-cast", tmp_path)
    check_run(reports)
    assert reports[0]["dtypes"] == ["torch.bfloat16"]


@pytest.mark.parametrize("world", [1, 2, 4, 8])
def test_the_qwen_preset_splits_over_1_to_8_gpus(world):
    p = preset("qwen2.5-7b").ppo
    geometry = p.per_process(world)
    assert geometry.episodes * world == p.episodes_per_batch
    assert geometry.minibatch * world == p.minibatch_size
    assert geometry.micro_batch * geometry.grad_accum_steps == geometry.minibatch
    assert geometry.micro_batch <= p.micro_batch_size


def test_an_uneven_split_names_the_numbers_and_the_flag():
    with pytest.raises(ValueError, match=r"6 processes, --minibatch-size 16 .* 12 or 18"):
        PPOSettings().per_process(6)


class _ThreadSum:
    """An all-reduce (sum) between threads, standing in for processes."""

    def __init__(self, world: int):
        self.barrier = threading.Barrier(world)
        self.parts: dict[int, torch.Tensor] = {}

    def __call__(self, t: torch.Tensor) -> torch.Tensor:
        rank = int(threading.current_thread().name)
        self.barrier.wait()
        self.parts[rank] = t
        self.barrier.wait()
        total = sum(self.parts.values())
        self.barrier.wait()
        return total


def test_whitening_uses_the_statistics_of_the_whole_batch():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(6, 5, generator=g) + torch.arange(6.0)[:, None]  # halves differ in mean
    mask = torch.rand(6, 5, generator=g) > 0.3
    whole = masked_whiten(x, mask)
    reduce, out = _ThreadSum(2), {}

    def run(rank: int) -> None:
        rows = slice(3 * rank, 3 * rank + 3)
        out[rank] = masked_whiten(x[rows], mask[rows], all_reduce=reduce)

    threads = [threading.Thread(target=run, args=(r,), name=str(r)) for r in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    torch.testing.assert_close(torch.cat([out[0], out[1]]), whole)
    assert not torch.allclose(masked_whiten(x[:3], mask[:3]), whole[:3])  # per process differs
