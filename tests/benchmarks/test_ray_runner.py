"""``clarify-gym bench --ray`` on one small local Ray cluster (2 CPUs, 2 logical GPUs, no
dashboard) shared by every test here: parity with the thread runner, resume after a killed
driver, a worker that dies mid-episode, one model per GPU; ``--ray`` alone never joins that
cluster; addresses nothing answers at end in one line within 30 s."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
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
        num_gpus=2,  # logical: Ray hands each GPU actor its own id (CUDA_VISIBLE_DEVICES)
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
    # --ray-gpus 1: one actor per GPU of the cluster (2), each model on its own GPU
    evaluate(quiet(out=str(tmp_path / "b"), ray=cluster, ray_gpus=1.0, **settings))
    assert comparable(rows_of(tmp_path / "b")) == comparable(rows_of(tmp_path / "a"))
    meta = json.loads((tmp_path / "b" / "metadata.json").read_text())
    agent = meta["agents"][f"hf:{model}"]
    assert agent["batched"] is True and (agent["ray_actors"], agent["ray_gpus_per_actor"]) == (2, 1)
    assert meta["ray"]["gpus"] == 2.0 and meta["ray"]["gpus_per_actor"] == 1.0


def test_gpu_actors_get_one_gpu_each_and_too_few_gpus_is_one_line(cluster):
    from clarify_bench.harness.ray_runner import RayAddressError, RayRunner, model_agent

    runner = RayRunner(cluster, gpus=1.0)
    cls = runner.actor_class(threads=1, count=2, gpus=1.0)
    actors = [cls.remote("oracle", {}, "ProactiveGather-v1", {}, [], None, None) for _ in "ab"]
    ids = [ray.get(a.describe.remote())["gpu_ids"] for a in actors]
    assert sorted(ids) == [["0"], ["1"]]  # one GPU each, not shared
    for actor in actors:
        ray.kill(actor)
    assert runner.gpu_actors("smollm2", None, batches=5) == 2  # one per GPU
    assert runner.gpu_actors("smollm2", None, batches=1) == 1
    with pytest.raises(RayAddressError, match=r"need 3 GPUs; the cluster at .* has 2"):
        runner.gpu_actors("smollm2", 3, batches=5)
    assert model_agent("smollm2") and not model_agent("random")  # baselines never ask for GPUs


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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def bench_cli(*args: str, env: dict | None = None, timeout: float = 120) -> tuple:
    """``clarify-gym bench`` in a child process: (exit status, stderr, seconds)."""
    start = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-m", "clarify_bench.cli", "bench", "--no-plots", "--no-progress", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": PATHS, **(env or {})},
        check=False,
    )
    return out.returncode, out.stderr, time.monotonic() - start


def test_unreachable_addresses_end_in_one_line_within_30_s(tmp_path):
    """HOST:PORT used to hang (no exit after 200 s), ray:// died in a 30-line traceback."""
    port = free_port()
    for address in (f"127.0.0.1:{port}", f"ray://127.0.0.1:{port}"):
        out = tmp_path / "run"
        status, err, seconds = bench_cli("--agents", "passive", "--ray", address, "--out", str(out))
        lines = err.strip().splitlines()
        assert status == 2 and seconds < 30 and "Traceback" not in err, err
        assert lines[-1].startswith("clarify-gym bench: error: nothing answers at --ray " + address)
        assert not out.exists()  # before the run folder is touched


def test_auto_without_a_cluster_and_a_silent_port_are_one_line(monkeypatch):
    from clarify_bench.harness.ray_runner import RayAddressError, check_ray_address
    from ray._private import services

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(services, "find_gcs_addresses", lambda: [])  # no cluster on this machine
    monkeypatch.setattr(services, "find_bootstrap_address", lambda temp_dir=None: None)
    with pytest.raises(RayAddressError, match="--ray auto found no Ray cluster to join"):
        check_ray_address("auto")
    with socket.socket() as silent:  # accepts, never speaks Ray: ray.init would retry for minutes
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        start = time.monotonic()
        with pytest.raises(RayAddressError, match="no Ray handshake within"):
            check_ray_address(f"127.0.0.1:{silent.getsockname()[1]}", timeout=8)
        assert time.monotonic() - start < 12


def test_ray_alone_starts_its_own_cluster_even_with_one_to_join(cluster, tmp_path):
    """``--ray`` with no address used to join whatever RAY_ADDRESS (or ``ray start``) named."""
    from ray._private.state import jobs

    before = len(jobs())
    out = tmp_path / "run"
    status, err, _ = bench_cli(
        "--agents", "passive", "--episodes", "1", "--ray", "--out", str(out),
        env={"RAY_ADDRESS": cluster}, timeout=300,
    )  # fmt: skip
    assert status == 0, err[-2000:]
    assert json.loads((out / "metadata.json").read_text())["ray"]["started"] is True
    assert len(jobs()) == before  # no driver ever joined this cluster
