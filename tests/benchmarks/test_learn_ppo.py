"""The learning benchmark end to end on the tiny model: files, summary, resume, refusal, adapter."""

from __future__ import annotations

import json

import pytest
import torch
from clarify_agents.policy_folder import load_policy
from clarify_bench.studies import learn_ppo
from ppo_helpers import one_thread


def _argv(tmp_path, **overrides):
    flags = {
        "model": "tiny", "updates": 2, "episodes-per-batch": 4, "minibatch-size": 2,
        "micro-batch-size": 2, "ppo-epochs": 1, "max-questions": 2, "max-new-tokens": 8,
        "seeds": "0,1", "rewards": "new-info,paper", "eval-tasks": 3, "save-every": 1,
        "dtype": "float32", "runs-dir": tmp_path / "runs", "results-dir": tmp_path / "results",
    }  # fmt: skip
    flags.update(overrides)
    return [x for k, v in flags.items() for x in (f"--{k}", str(v))] + ["--no-plot"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("learn_ppo")
    with one_thread():
        assert learn_ppo.main(_argv(tmp)) == 0
    return tmp


def test_writes_episodes_summary_metrics_and_adapters(finished, capsys):
    out = finished / "results" / "learn_ppo"
    rows = [json.loads(line) for line in (out / "episodes.jsonl").read_text().splitlines()]
    agents = sorted({r["agent"] for r in rows})
    assert agents == ["frozen:new-info", "frozen:paper", "ppo:new-info:seed0",
                      "ppo:new-info:seed1", "ppo:paper:seed0", "ppo:paper:seed1"]  # fmt: skip
    assert len(rows) == 6 * 3  # 3 test tasks x 1 eval seed each
    report = json.loads((finished / "results" / "learn_ppo.json").read_text())
    for reward in ("new-info", "paper"):
        part = report["rewards"][reward]
        assert part["test_tasks"] == 3 and part["paired_diff_hidden_coverage"]["n"] == 3
        assert set(part["seeds"]) == {"0", "1"} and part["seeds"]["0"]["updates"] == 2
        assert 0 <= part["trained"]["env/hidden_coverage"] <= 1
        for policy in ("frozen", "trained"):  # different messages per episode, of 2 questions
            assert 1 <= part[policy]["distinct_replies"] <= 2
        assert set(part["targets"]) == {"ci_excludes_0", "coverage_ge_0.22", "wall_le_60min"}
        for seed in (0, 1):
            metrics = (out / f"{reward}-seed{seed}" / "metrics.jsonl").read_text().splitlines()
            assert [json.loads(m)["update"] for m in metrics] == [1, 2]
    adapter = out / "paper-seed1" / "adapter"
    assert not list(adapter.glob("trainer_state*"))  # no optimizer state exported
    policy, tokenizer, folder = load_policy(adapter)
    assert folder.meta["update"] == 2
    with torch.no_grad():
        ids = torch.tensor([tokenizer("Which sections?")["input_ids"]])
        assert policy(input_ids=ids).logits.shape[-1] == len(tokenizer)


def test_the_frozen_control_is_the_same_for_every_training_seed(finished):
    out = finished / "results" / "learn_ppo"
    rows = [json.loads(line) for line in (out / "episodes.jsonl").read_text().splitlines()]
    frozen = [r for r in rows if r["agent"] == "frozen:paper"]
    assert len(frozen) == 3 and len({(r["task_id"], r["seed"]) for r in frozen}) == 3


def test_rerun_resumes_without_redoing_and_other_settings_are_refused(finished, capsys):
    episodes = finished / "results" / "learn_ppo" / "episodes.jsonl"
    before = episodes.read_text()
    with one_thread():
        assert learn_ppo.main(_argv(finished)) == 0
    assert episodes.read_text() == before  # everything was done: nothing re-evaluated
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert json.loads(last)["benchmark"] == "learn_ppo"
    # another reward/seed set reuses the folder (its rows are tagged); this one is all done
    assert learn_ppo.main(_argv(finished, rewards="paper", seeds="1")) == 0
    assert episodes.read_text() == before
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert list(report["rewards"]) == ["paper"]
    assert list(report["rewards"]["paper"]["seeds"]) == ["1"]
    assert learn_ppo.main(_argv(finished, updates=3)) == 2
    assert "updates: 2 in the run folder, 3 now" in capsys.readouterr().err
    assert learn_ppo.main(_argv(finished, rewards="binary")) == 2
    assert learn_ppo.main(_argv(finished, temperature=0.5)) == 2  # another sampling temperature
    assert "temperature: 1.0 in the run folder, 0.5 now" in capsys.readouterr().err


def test_the_training_temperature_reaches_the_rollout_settings(tmp_path):
    args = learn_ppo.build_parser().parse_args(_argv(tmp_path, temperature=0.5))
    cfg = learn_ppo.train_config(args, "new-info", 0)
    assert cfg.rollout.temperature == 0.5 and cfg.env.env_id == "ProactiveGather-v1"
    assert learn_ppo.settings_of(args)["temperature"] == 0.5
    args = learn_ppo.build_parser().parse_args(_argv(tmp_path, **{"turn-gamma": 0.0}))
    assert learn_ppo.train_config(args, "new-info", 0).ppo.turn_gamma == 0.0


def test_a_killed_evaluation_redoes_only_the_missing_episodes(finished, tmp_path):
    import shutil

    for sub in ("runs", "results"):
        shutil.copytree(finished / sub, tmp_path / sub)
    episodes = tmp_path / "results" / "learn_ppo" / "episodes.jsonl"
    lines = episodes.read_text().splitlines()
    drop = next(i for i, line in enumerate(lines) if json.loads(line)["agent"] == "ppo:paper:seed1")
    kept = lines[:drop] + lines[drop + 1 :]
    episodes.write_text("\n".join(kept) + "\n" + lines[drop][:25])  # + a torn last line
    with one_thread():
        assert learn_ppo.main(_argv(tmp_path)) == 0
    rows = [json.loads(line) for line in episodes.read_text().splitlines()]
    keys = [(r["agent"], r["task_id"], r["seed"]) for r in rows]
    assert len(keys) == len(set(keys)) == 6 * 3  # the one missing episode, once
    assert rows[-1] == json.loads(lines[drop])  # greedy and deterministic: the same episode


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def _replies(rows):
    return {(r["agent"], r["task_id"], r["seed"]): r["replies"] for r in rows}


def _reeval_argv(tmp_path, src, name, *extra):
    return ["--adapters", str(src), "--dtype", "float32", "--eval-tasks", "3", "--no-plot",
            "--runs-dir", str(tmp_path / "runs"), "--results-dir", str(tmp_path / name), *extra]  # fmt: skip


def test_stored_adapters_replay_their_greedy_episodes_without_training(finished, tmp_path):
    src = finished / "results" / "learn_ppo"
    with one_thread():
        assert learn_ppo.main(_reeval_argv(tmp_path, src, "greedy")) == 0
    assert not (tmp_path / "runs").exists()  # nothing was trained
    rows = _rows(tmp_path / "greedy" / "learn_ppo" / "episodes.jsonl")
    assert _replies(rows) == _replies(_rows(src / "episodes.jsonl"))  # the same policies
    report = json.loads((tmp_path / "greedy" / "learn_ppo.json").read_text())
    assert report["settings"]["adapters"] == str(src) and report["settings"]["updates"] == 2
    assert report["rewards"]["paper"]["seeds"]["1"]["updates"] == 2  # the stored run's metrics


def test_sampled_test_episodes_are_reproducible_per_eval_seed(finished, tmp_path):
    src = finished / "results" / "learn_ppo"
    extra = ("--eval-temperature", "1", "--eval-seeds", "0,1", "--rewards", "new-info",
             "--seeds", "0")  # fmt: skip
    with one_thread():
        assert learn_ppo.main(_reeval_argv(tmp_path, src, "a", *extra)) == 0
        assert learn_ppo.main(_reeval_argv(tmp_path, src, "b", *extra)) == 0
    a = _rows(tmp_path / "a" / "learn_ppo" / "episodes.jsonl")
    b = _rows(tmp_path / "b" / "learn_ppo" / "episodes.jsonl")
    assert len(a) == 2 * 3 * 2  # (trained, frozen) x 3 tasks x 2 eval seeds
    assert _replies(a) == _replies(b)  # seeded by the eval seed: a rerun draws the same tokens
    greedy = _replies(_rows(src / "episodes.jsonl"))
    sampled = _replies(a)
    assert any(sampled[k] != greedy[k] for k in greedy if k in sampled)  # it did sample
    report = json.loads((tmp_path / "a" / "learn_ppo.json").read_text())
    assert report["settings"]["eval_temperature"] == 1.0 and list(report["rewards"]) == ["new-info"]


def test_bad_re_evaluation_flags_get_one_line(finished, tmp_path, capsys):
    src = finished / "results" / "learn_ppo"
    assert learn_ppo.main(_reeval_argv(tmp_path, tmp_path, "x")) == 2
    assert "no settings.json there" in capsys.readouterr().err
    assert learn_ppo.main(_reeval_argv(tmp_path, src, "x", "--seeds", "7")) == 2
    assert "no adapter for new-info-seed7, paper-seed7" in capsys.readouterr().err
    assert learn_ppo.main(_reeval_argv(tmp_path, src, "x", "--eval-temperature", "-1")) == 2
    assert "--eval-temperature must be >= 0" in capsys.readouterr().err
    assert learn_ppo.main(_reeval_argv(tmp_path, src, "x", "--eval-no-repeat-ngram", "-1")) == 2
    assert "--eval-no-repeat-ngram must be >= 0" in capsys.readouterr().err


def test_the_no_repeat_rule_reaches_the_test_episodes_and_is_recorded(
    finished, tmp_path, monkeypatch
):
    # The rule's effect on decoding is tested in tests/agents/test_ppo_rollout.py (a fake model
    # that repeats itself); here: the flag reaches every test episode, frozen and trained alike.
    # (The tiny random model's 8-token greedy replies happen to hold no repeated 2-gram, so
    # comparing replies would not show it.)
    from clarify_agents.ppo import rollout

    seen, play = [], rollout.play_episodes

    def spy(*args, **kwargs):
        episodes = play(*args, **kwargs)
        seen.extend([kwargs.get("no_repeat_ngram", 0)] * len(episodes))
        return episodes

    monkeypatch.setattr(rollout, "play_episodes", spy)
    src = finished / "results" / "learn_ppo"
    extra = ("--eval-no-repeat-ngram", "2", "--rewards", "new-info", "--seeds", "0")
    with one_thread():
        assert learn_ppo.main(_reeval_argv(tmp_path, src, "nr", *extra)) == 0
    rows = _rows(tmp_path / "nr" / "learn_ppo" / "episodes.jsonl")
    assert len(rows) == 2 * 3  # (trained, frozen) x 3 tasks
    assert seen == [2] * len(rows)
    report = json.loads((tmp_path / "nr" / "learn_ppo.json").read_text())
    assert report["settings"]["eval_no_repeat_ngram"] == 2
