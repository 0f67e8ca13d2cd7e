"""``clarify-gym bench --ray`` on one small local Ray cluster (2 CPUs, no dashboard) shared by
every test here: parity with the thread runner, resume after a killed driver, a worker that dies
mid-episode."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

# Every Ray process of these tests stays on 127.0.0.1 (read when ray is first imported).
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
ray = pytest.importorskip("ray", reason='Ray is an optional extra: pip install "clarify-gym[ray]"')

from clarify_bench.harness.evaluate import BenchConfig, evaluate  # noqa: E402
from helpers import KILLED_RUN_AGENTS, kill_bench_mid_run  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
PATHS = os.pathsep.join(str(p) for p in (ROOT, ROOT / "tests"))


@pytest.fixture(scope="module")
def cluster():
    """The address of a local 2-CPU cluster; the driver of this process is connected to it."""
    if ray.is_initialized():
        ray.shutdown()
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": PATHS}},
    )
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def quiet(**kwargs) -> BenchConfig:
    return BenchConfig(plots=False, progress=False, **kwargs)


def rows_of(folder: Path) -> list[dict]:
    lines = (folder / "results.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def comparable(rows: list[dict]) -> list[dict]:
    out = [{k: v for k, v in r.items() if k != "elapsed_s"} for r in rows]
    return sorted(out, key=lambda r: (r["agent"], r["task_id"], r["seed"]))


def keys(rows: list[dict]) -> list[tuple]:
    return [(r["agent"], r["task_id"], r["seed"]) for r in rows]


def test_ray_rows_equal_the_thread_runner(cluster, tmp_path):
    settings = {"agents": ("random", "oracle", "generic"), "seeds": (0, 1)}
    evaluate(quiet(out=str(tmp_path / "threads"), concurrency=3, **settings))
    evaluate(quiet(out=str(tmp_path / "ray"), concurrency=3, ray=cluster, **settings))
    ray_rows = rows_of(tmp_path / "ray")
    assert len(ray_rows) == 3 * 12 * 2 == len(set(keys(ray_rows)))
    assert comparable(ray_rows) == comparable(rows_of(tmp_path / "threads"))
    meta = json.loads((tmp_path / "ray" / "metadata.json").read_text())
    assert meta["ray"]["cpus"] == 2.0 and meta["finished"]
    assert meta["agents"]["oracle"]["privileged"] is True
    assert meta["agents"]["random"]["class"] == "clarify_agents.baselines.RandomAgent"
    summary = (tmp_path / "ray" / "summary.md").read_text()
    assert "| oracle | 24 | 12 |" in summary


def test_ray_batched_local_model_matches(cluster, tmp_path):
    pytest.importorskip("transformers")
    from clarify_agents.models import tiny_checkpoint

    model = tiny_checkpoint()
    settings = {
        "agents": (f"hf:{model}",),
        "episodes": 3,
        "batch_size": 2,
        "env_kwargs": {"max_questions": 2},
        "agent_kwargs": {"hf": {"max_new_tokens": 4}},
    }
    evaluate(quiet(out=str(tmp_path / "a"), **settings))
    evaluate(quiet(out=str(tmp_path / "b"), ray=cluster, ray_actors=2, **settings))
    assert comparable(rows_of(tmp_path / "b")) == comparable(rows_of(tmp_path / "a"))
    meta = json.loads((tmp_path / "b" / "metadata.json").read_text())
    assert meta["agents"][f"hf:{model}"]["batched"] is True


def test_ray_resume_after_the_driver_is_killed(cluster, tmp_path):
    out = tmp_path / "run"
    kill_bench_mid_run(out, "--ray", cluster)  # the driver joins the cluster, then is killed
    config = quiet(
        agents=KILLED_RUN_AGENTS, seeds=(0, 1, 2, 3), out=str(out), resume=True, ray=cluster
    )
    evaluate(config)
    rows = rows_of(out)
    assert len(rows) == len(set(keys(rows))) == 2 * 12 * 4
    meta = json.loads((out / "metadata.json").read_text())
    assert len(meta["resumed"]) == 1 and meta["finished"]


def test_a_worker_dying_mid_episode_loses_nothing_and_reruns_it(cluster, tmp_path, caplog):
    marker = tmp_path / "died"
    spec = "py:bench_agents:DiesOnce"
    settings = {"agents": (spec, "oracle"), "agent_kwargs": {spec: {"marker": str(marker)}}}
    with caplog.at_level("WARNING", logger="clarify_bench.harness.ray_runner"):
        evaluate(quiet(out=str(tmp_path / "ray"), ray=cluster, concurrency=2, **settings))
    assert marker.exists(), "the worker never died: the test proves nothing"
    assert any("actor died" in r.getMessage() for r in caplog.records)
    rows = rows_of(tmp_path / "ray")
    assert len(rows) == len(set(keys(rows))) == 2 * 12
    evaluate(quiet(out=str(tmp_path / "threads"), agents=("generic", "oracle")))
    expected = [
        {**r, "agent": spec} if r["agent"] == "generic" else r
        for r in rows_of(tmp_path / "threads")
    ]
    assert comparable(rows) == comparable(expected)
    assert json.loads((tmp_path / "ray" / "metadata.json").read_text())["finished"]


def test_bad_ray_input_ends_in_one_line(monkeypatch, tmp_path, capsys):
    from clarify_bench.cli import main

    out = str(tmp_path / "x")
    with pytest.raises(SystemExit) as stop:
        main(["bench", "--agents", "passive", "--ray", "--ray-actors", "0", "--out", out])
    assert stop.value.code == 2 and "--ray-actors: must be >= 1" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "ray", None)  # Ray not installed
    assert main(["bench", "--agents", "passive", "--ray", "--out", out, "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and 'pip install "clarify-gym[ray]"' in err
    assert not (tmp_path / "x").exists()
