"""``clarify_bench.studies.gpu_check``: its CPU dry run (the same code path as on a GPU, on a 2-layer toy with
the real Qwen2.5 vocabulary and tokenizer), its refusal without a GPU, and the random models it
builds (the real Qwen2.5 architectures)."""

from __future__ import annotations

import json

import pytest
import torch
from clarify_agents.models import load_causal_lm, load_tokenizer
from clarify_agents.random_models import random_config
from clarify_bench.studies import gpu_check
from clarify_bench.studies.memory_budget import QWEN25_7B
from ppo_helpers import one_thread, short_tasks


def test_cpu_dry_run_passes_every_check(tmp_path, capsys):
    out = tmp_path / "gpu_check.json"
    with one_thread():
        tasks = str(short_tasks(tmp_path))
        code = gpu_check.main(
            ["--cpu-dry-run", "--tasks", tasks, "--split", "all", "--out", str(out)]
        )
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report == json.loads(out.read_text())
    assert code == 0 and report["passed"], report["checks"]
    assert report["mode"] == "cpu-dry-run" and report["model"] == "random:qwen2.5-toy"
    first, second = report["updates"]
    assert first["objective/kl"] == 0.0 and second["objective/kl"] != 0.0  # reference stays
    assert report["lora_tensors_changed"] == "28/28"
    assert report["decode"]["decode_ms_per_step"] > 0
    assert report["left_padding"]["shortest_row_padding"] > 0
    assert report["memory_gib"]["measured_peak"] == {
        "rollout": None,
        "scoring": None,
        "update": None,
    }
    # docs/memory_budget.md's rollout total (with the float32 copy of the LM head)
    assert report["memory_gib"]["docs_memory_budget_qwen2.5-7b_preset"]["rollout"] == 40.65
    assert "under_8_minutes" not in report["checks"]  # a GPU-only target


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine with no GPU")
def test_without_a_gpu_it_refuses_in_one_line(capsys):
    assert gpu_check.main([]) == 2
    assert "pass --cpu-dry-run" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("spec", "billions"), [("random:qwen2.5-7b", 7.62), ("random:qwen2.5-1.5b", 1.54)]
)
def test_random_models_have_the_published_size(spec, billions):
    model = load_causal_lm(spec, dtype=torch.bfloat16, device="meta")  # shapes only, no memory
    assert round(sum(p.numel() for p in model.parameters()) / 1e9, 2) == billions
    assert model.dtype == torch.bfloat16


def test_the_7b_config_matches_the_memory_budget_dimensions():
    c = random_config("random:qwen2.5-7b")
    dims = (c.hidden_size, c.num_hidden_layers, c.num_attention_heads, c.num_key_value_heads)
    assert dims == (QWEN25_7B.hidden, QWEN25_7B.layers, QWEN25_7B.heads, QWEN25_7B.kv_heads)
    assert (c.intermediate_size, c.vocab_size) == (QWEN25_7B.intermediate, QWEN25_7B.vocab)


def test_random_specs_name_the_fix_for_bad_input():
    with pytest.raises(ValueError, match=r"random:qwen2\.5-7b"):
        random_config("random:qwen2.5-70b")
    with pytest.raises(ValueError, match=r"--tokenizer qwen2\.5-tokenizer"):
        load_tokenizer("random:qwen2.5-7b")
