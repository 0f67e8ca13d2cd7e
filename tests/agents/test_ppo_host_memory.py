"""clarify_agents.ppo.host_memory: a fixed malloc mmap threshold maps large blocks and unmaps them."""

from __future__ import annotations

import subprocess
import sys

import pytest
from clarify_agents.ppo.config import ModelSettings
from clarify_agents.ppo.host_memory import glibc_version, mmapped_bytes, set_mmap_threshold

glibc = pytest.mark.skipif(
    glibc_version() is None or mmapped_bytes() is None, reason="needs glibc >= 2.33"
)


_PROBE = """
import sys, torch
from clarify_agents.ppo.host_memory import mmapped_bytes, set_mmap_threshold
if sys.argv[1] == "fixed":
    assert set_mmap_threshold(1 << 20)
torch.empty(16 << 20, dtype=torch.uint8).fill_(1)  # freed at once; glibc's default: threshold -> 16 MiB
before = mmapped_bytes()
block = torch.empty(3 << 20, dtype=torch.uint8).fill_(1)
mapped = mmapped_bytes() - before
del block
print(mapped >= 3 << 20, mmapped_bytes() - before < 3 << 20)
"""


@glibc
@pytest.mark.parametrize(("mode", "mapped"), [("default", False), ("fixed", True)])
def test_a_fixed_threshold_maps_blocks_a_dynamic_one_would_not(mode: str, mapped: bool) -> None:
    # a fresh process each: the setting is process-wide and cannot be undone
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == [str(mapped), "True"]


def test_out_of_range_thresholds_are_refused() -> None:
    with pytest.raises(ValueError, match="mmap threshold"):
        set_mmap_threshold(64 << 20)
    with pytest.raises(ValueError, match="cpu_mmap_threshold_mb"):
        ModelSettings(cpu_mmap_threshold_mb=-1)


@glibc
def test_setup_fixes_the_threshold_on_cpu(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    from clarify_agents.ppo import trainer
    from clarify_agents.ppo.presets import preset

    calls: list[int] = []
    monkeypatch.setattr(trainer, "set_mmap_threshold", calls.append)
    trainer.setup(preset("tiny").replace(output_dir=str(tmp_path / "a"), tensorboard=False))
    trainer.setup(
        preset("tiny").replace(
            output_dir=str(tmp_path / "b"), tensorboard=False, cpu_mmap_threshold_mb=0
        )
    )
    assert calls == [1 << 20]
