"""Fixtures of the harness tests: one small real run folder that the view, rescore and browser
tests share (built once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest

#: The main job's agents without the local model (the four baselines run in about a second).
BASELINES = ("passive", "generic", "random", "oracle")


@pytest.fixture(scope="session")
def baseline_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``clarify-gym bench`` of the four baselines on the bundled test split (48 episodes), with
    plots: a real run folder. Tests must not change it (copy it first)."""
    from clarify_bench.harness.evaluate import BenchConfig, evaluate

    out = tmp_path_factory.mktemp("bench") / "run"
    return evaluate(BenchConfig(agents=BASELINES, out=str(out), progress=False))
