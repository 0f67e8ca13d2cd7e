"""The PPO loop on a tiny Qwen2: one update, exact resume, learning on a synthetic reward, the CLI."""

from __future__ import annotations

import json
import math

import pytest
import torch
from clarify_agents.models import load_causal_lm
from clarify_agents.policy_folder import load_policy
from clarify_agents.ppo.checkpoint import CHECKPOINT_META, find_checkpoint
from clarify_agents.ppo.logs import read_metrics
from clarify_agents.ppo.model import build_policy_value_model
from clarify_agents.ppo.trainer import Batch, train
from clarify_bench.cli import main
from peft import PeftModel
from ppo_helpers import one_thread, tiny_config

TIMING = ("charts/tokens_per_s", "charts/rollout_s", "charts/update_s", "charts/iteration_s")


@pytest.fixture(scope="module")
def one_update(tmp_path_factory):
    folder = tmp_path_factory.mktemp("one_update")
    cfg = tiny_config(folder, updates=1)
    with one_thread():
        return cfg, train(cfg)


def test_first_update_has_zero_kl_and_finite_losses(one_update):
    _, result = one_update
    (row,) = result.history
    assert row["objective/kl"] == 0.0  # LoRA starts as the identity
    for key in (
        "losses/policy",
        "losses/value",
        "losses/approx_kl",
        "losses/grad_norm_actor",
        "losses/grad_norm_critic",
    ):
        assert math.isfinite(row[key])
    assert row["losses/first_log_ratio_max"] == 0.0  # scored in the first pass's shapes
    assert row["losses/value"] > 0 and row["charts/tokens_per_s"] > 0
    assert 0 <= row["env/hidden_coverage"] <= 1 and row["env/questions"] >= 1


def test_update_changes_lora_and_value_head_but_not_the_base(one_update):
    cfg, result = one_update
    torch.manual_seed(cfg.log.seed)  # the trainer's initialisation
    fresh, _, _ = build_policy_value_model(cfg.model, cfg.lora)
    trained = dict(result.model.named_parameters())
    lora = [n for n in trained if "lora_" in n]
    assert lora and any(
        not torch.equal(trained[n], p) for n, p in fresh.named_parameters() if n in lora
    )
    assert not torch.equal(trained["value_head.weight"], fresh.value_head.weight)
    base = [
        (n, p) for n, p in fresh.named_parameters() if "lora_" not in n and "value_head" not in n
    ]
    assert len(base) > 10 and all(torch.equal(trained[n], p) for n, p in base)
    assert all(not p.requires_grad for _, p in base)


def test_checkpoint_loads_with_peft_and_generates(one_update):
    _, result = one_update
    folder = result.checkpoint
    meta = json.loads((folder / CHECKPOINT_META).read_text())
    assert meta["base_model"] == "tiny" and meta["update"] == 1
    base = load_causal_lm(meta["base_model_path"])
    policy = PeftModel.from_pretrained(base, str(folder)).eval()
    tokenizer = result.tokenizer
    ids = torch.tensor([tokenizer("Which sections must the output contain?")["input_ids"]])
    with torch.no_grad(), one_thread():
        expected = result.model.policy(input_ids=ids).logits
        assert torch.allclose(policy(input_ids=ids).logits, expected, atol=1e-5)
        out = policy.generate(input_ids=ids, max_new_tokens=5, do_sample=False)
        loaded, _, _ = load_policy(folder)
        assert torch.equal(loaded.generate(input_ids=ids, max_new_tokens=5, do_sample=False), out)
    assert out.shape[1] == ids.shape[1] + 5


def test_batch_collate_pads_on_the_right():
    from clarify_agents.ppo.rollout import Episode

    short = Episode(0, "a", [5, 6, 7], [False, True, True], [0.0, 0.0, 1.0])
    long = Episode(1, "b", [5, 6, 7, 8], [False, False, True, True], [0.0, 0.0, 0.0, 2.0])
    batch = Batch.collate([short, long], pad_id=0, device=torch.device("cpu"))
    assert batch.input_ids.tolist() == [[5, 6, 7, 0], [5, 6, 7, 8]]
    assert batch.attention_mask.tolist() == [[1, 1, 1, 0], [1, 1, 1, 1]]
    assert batch.policy_mask.tolist() == [[False, True, True, False], [False, False, True, True]]
    assert batch.env_rewards.tolist() == [[0, 0, 1, 0], [0, 0, 0, 2]]


def test_resume_continues_exactly_like_an_uninterrupted_run(tmp_path):
    with one_thread():
        straight = train(tiny_config(tmp_path / "a", updates=3, save_every=1))
        first = tiny_config(tmp_path / "b", updates=2, save_every=1)
        train(first)
        run = tmp_path / "b" / "run"
        # a crash after update 3's metrics line but before its checkpoint, mid-way through
        # writing that checkpoint
        with open(run / "metrics.jsonl", "a") as f:
            f.write(json.dumps({"update": 3, "env/return": 123.0}) + "\n")
        (run / "checkpoints" / ".tmp-update-000003").mkdir()
        assert find_checkpoint(run).name == "update-000002"
        resumed = train(first.replace(updates=3), resume=run)
    assert [r["update"] for r in resumed.history] == [3]
    a, b = straight.history[-1], resumed.history[-1]
    assert a.keys() == b.keys()
    for key in a.keys() - set(TIMING):
        assert a[key] == b[key] or (math.isnan(a[key]) and math.isnan(b[key])), key
    trained_a = dict(straight.model.named_parameters())
    for name, p in resumed.model.named_parameters():
        assert torch.equal(p, trained_a[name]), name
    rows = read_metrics(run / "metrics.jsonl")
    assert [r["update"] for r in rows] == [1, 2, 3] and rows[-1]["env/return"] != 123.0
    assert rows[0]["env/return"] == straight.history[0]["env/return"]


def test_refuses_to_overwrite_a_run_without_resume(one_update):
    cfg, _ = one_update
    with pytest.raises(FileExistsError, match="--resume"):
        train(cfg)


def test_mean_reward_rises_on_a_synthetic_reward(tmp_path):
    """Questions containing "an" earn 1: PPO must raise the share of such questions."""

    def reward_fn(text, env_reward, info):
        return float("an" in text.lower())

    cfg = tiny_config(
        tmp_path, updates=10, max_questions=1, episodes_per_batch=16, minibatch_size=8,
        micro_batch_size=8, ppo_epochs=4, max_new_tokens=8, lr_actor=3e-3,
    )  # fmt: skip
    with one_thread():
        result = train(cfg, reward_fn=reward_fn)
    returns = [row["env/return"] for row in result.history]
    start, end = sum(returns[:3]) / 3, sum(returns[-3:]) / 3
    assert end >= start + 0.25 and end >= 0.5, returns
    assert result.history[-1]["objective/kl"] > 0


def test_cli_trains_two_updates_of_the_tiny_preset_and_resumes(tmp_path, capsys):
    out = tmp_path / "cli"
    with one_thread():
        argv = ["train", "--preset", "tiny", "--output-dir", str(out), "--no-progress"]
        assert main([*argv, "--sample-every", "1"]) == 0
        assert main(["train", "--resume", str(out), "--updates", "3", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "adapter" in printed and "update-000003" in printed
    rows = read_metrics(out / "metrics.jsonl")
    assert [r["update"] for r in rows] == [1, 2, 3]
    glossary = {"env/new_info", "losses/policy", "losses/approx_kl", "charts/tokens_per_s"}
    assert glossary <= rows[0].keys()
    assert (out / "learning_curve.png").stat().st_size > 10_000
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    # sample dialogues every update, in the bench row format, kept exactly once across the resume
    samples = read_metrics(out / "samples.jsonl")
    keys = [(r["update"], r["task_id"], r["seed"]) for r in samples]
    assert sorted({k[0] for k in keys}) == [1, 2, 3] and len(keys) == len(set(keys))
    assert all(r["agent"] == f"update {r['update']}" and "dialogue" in r for r in samples)
    events = list((out / "tensorboard").rglob("events.out.tfevents.*"))
    assert any(b"samples/dialogues" in p.read_bytes() for p in events)  # TensorBoard's text tab
    from clarify_bench.harness.view import load_run

    viewed = load_run(out)
    assert viewed["kind"] == "train" and viewed["agents"] == ["update 1", "update 2", "update 3"]
    saved = json.loads((out / "config.json").read_text())
    assert saved["ppo"]["episodes_per_batch"] == 8 and saved["log"]["updates"] == 3
    checkpoints = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert checkpoints == ["update-000002", "update-000003"]  # keep_checkpoints = 2
    # the trained checkpoint benchmarks as it is: `clarify-gym bench --agents hf:<checkpoint>`
    ckpt = out / "checkpoints" / "update-000003"
    bench = tmp_path / "bench"
    with one_thread():
        argv = ["bench", "--agents", f"hf:{ckpt}", "--split", "test", "--episodes", "2"]
        assert main([*argv, "--out", str(bench), "--no-plots", "--no-progress"]) == 0
    lines = (bench / "results.jsonl").read_text(encoding="utf-8").splitlines()
    results = [json.loads(line) for line in lines]
    assert len(results) == 2 and all(
        r["env/questions"] >= 1 or r["dialogue"] == [] for r in results
    )
    meta = json.loads((bench / "metadata.json").read_text(encoding="utf-8"))
    (described,) = meta["agents"].values()
    assert described["adapter"] == str(ckpt)  # base model + adapter loaded from the checkpoint
