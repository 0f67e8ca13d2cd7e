"""The trainer as a new user meets it: killed runs, damaged files, the resume messages."""

from __future__ import annotations

import json
import logging
import shutil

import pytest
from clarify_agents.ppo.checkpoint import CheckpointError, _sort_target_modules, find_checkpoint
from clarify_agents.ppo.logs import read_metrics
from clarify_agents.ppo.trainer import train
from clarify_bench.cli import main
from ppo_helpers import one_thread, tiny_config


@pytest.fixture(scope="module")
def two_updates(tmp_path_factory):
    """A finished 2-update run with a checkpoint after each update."""
    folder = tmp_path_factory.mktemp("two_updates")
    cfg = tiny_config(folder, updates=2, save_every=1, keep_checkpoints=2)
    with one_thread():
        train(cfg)
    return cfg, folder / "run"


def _copy(two_updates, tmp_path):
    cfg, run = two_updates
    target = tmp_path / "run"
    shutil.copytree(run, target)
    return cfg.replace(output_dir=str(target)), target


def test_fresh_run_after_a_kill_before_the_first_checkpoint_starts_its_metrics_afresh(
    tmp_path, caplog
):
    cfg = tiny_config(tmp_path, updates=2, save_every=5)
    run = tmp_path / "run"
    run.mkdir()
    # killed after update 1's metrics line, before any checkpoint was written
    (run / "metrics.jsonl").write_text(json.dumps({"update": 1, "env/return": 9.0}) + "\n")
    with one_thread(), caplog.at_level(logging.WARNING, logger="clarify_agents.ppo.trainer"):
        train(cfg)
    rows = read_metrics(run / "metrics.jsonl")
    assert [r["update"] for r in rows] == [1, 2]  # not [1, 1, 2]
    assert rows[0]["env/return"] != 9.0 and "left no checkpoint" in caplog.text


def test_a_corrupt_middle_metrics_line_is_an_error_naming_it(two_updates, tmp_path):
    cfg, run = _copy(two_updates, tmp_path)
    lines = (run / "metrics.jsonl").read_text().splitlines()
    lines.insert(1, '{"update": 1.5, "env/ret')
    (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"metrics.jsonl line 2 is not JSON.*repair or delete"):
        train(cfg.replace(updates=3), resume=run)
    # a torn last line (a crash mid-write) is still fine
    (run / "metrics.jsonl").write_text("\n".join([lines[0], lines[2], '{"upd']) + "\n")
    assert [r["update"] for r in read_metrics(run / "metrics.jsonl")] == [1, 2]


def test_a_corrupt_latest_checkpoint_falls_back_to_the_previous_one(two_updates, tmp_path, caplog):
    cfg, run = _copy(two_updates, tmp_path)
    latest = run / "checkpoints" / "update-000002"
    adapter = latest / "adapter_model.safetensors"
    adapter.write_bytes(adapter.read_bytes()[:100])  # damaged
    with caplog.at_level(logging.WARNING, logger="clarify_agents.ppo.checkpoint"):
        assert find_checkpoint(run).name == "update-000001"
    assert "update-000002 is unreadable" in caplog.text and "falling back" in caplog.text
    with one_thread():
        resumed = train(cfg, resume=run)
    assert [r["update"] for r in resumed.history] == [2]  # update 2 was redone
    assert [r["update"] for r in read_metrics(run / "metrics.jsonl")] == [1, 2]
    # a damaged checkpoint named directly is an error with the way out
    adapter = run / "checkpoints" / "update-000001" / "adapter_model.safetensors"
    adapter.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="pass its run folder"):
        find_checkpoint(adapter.parent)


def test_resume_of_a_run_without_checkpoints_says_what_to_do(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text(json.dumps({"update": 1}) + "\n")
    assert main(["train", "--resume", str(run)]) == 2
    err = capsys.readouterr().err
    assert "has no checkpoint yet" in err and "without --resume" in err
    assert "pass the --output-dir" not in err  # the folder the user already passed
    assert main(["train", "--resume", str(tmp_path / "nope")]) == 2
    assert "no such folder" in capsys.readouterr().err


def test_refusal_to_overwrite_is_one_line_with_exit_status_2(two_updates, capsys):
    _, run = two_updates
    argv = ["train", "--preset", "tiny", "--output-dir", str(run), "--no-tensorboard"]
    assert main(argv) == 2
    assert f"pass --resume {run}" in capsys.readouterr().err


def test_adapter_config_lists_target_modules_sorted(two_updates, tmp_path):
    _, run = two_updates
    config = json.loads((run / "checkpoints" / "update-000002" / "adapter_config.json").read_text())
    assert config["target_modules"] == sorted(config["target_modules"])
    assert len(config["target_modules"]) == 7
    unsorted = tmp_path / "adapter_config.json"
    unsorted.write_text(json.dumps({"target_modules": ["v_proj", "k_proj", "q_proj"], "r": 8}))
    _sort_target_modules(unsorted)
    assert json.loads(unsorted.read_text()) == {
        "r": 8,
        "target_modules": ["k_proj", "q_proj", "v_proj"],
    }
