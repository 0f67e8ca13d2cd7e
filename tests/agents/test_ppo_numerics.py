"""PPO numerics: bf16 detection, the first ratio is 1 in bf16 too, actor and critic clipped apart."""

from __future__ import annotations

import logging

import pytest
import torch
from clarify_agents import models
from clarify_agents.ppo.config import LoraSettings, ModelSettings
from clarify_agents.ppo.model import build_policy_value_model
from clarify_agents.ppo.trainer import clip_gradients, train
from ppo_helpers import one_thread, tiny_config


def test_bf16_is_detected_from_the_cpu_flags_and_falls_back_to_fp32(monkeypatch, caplog):
    monkeypatch.setattr(models, "_cpu_flags", lambda: {"fpu", "avx2", "amx_bf16"})
    assert models.bf16_unsupported_reason("cpu") is None
    assert models.resolve_train_dtype("auto", "cpu") == torch.bfloat16
    monkeypatch.setattr(models, "_cpu_flags", lambda: {"fpu", "avx2"})
    with caplog.at_level(logging.WARNING, logger="clarify_agents.models"):
        assert models.resolve_train_dtype("auto", "cpu") == torch.float32
    assert "float32, because this CPU has neither AMX-BF16 nor AVX512-BF16" in caplog.text
    assert models.resolve_train_dtype("bfloat16", "cpu") == torch.bfloat16  # explicit: as asked
    model, _, _ = build_policy_value_model(
        ModelSettings("tiny", None, "auto", False), LoraSettings(lora_r=4)
    )
    assert model.causal_lm.dtype == torch.float32


def test_the_real_cpu_flags_are_read():
    flags = models._cpu_flags()
    assert flags and "fpu" in flags  # every x86 and most ARM /proc/cpuinfo list it


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_first_update_ratio_is_one_and_kl_zero(tmp_path, dtype):
    cfg = tiny_config(tmp_path, updates=1, dtype=dtype)
    with one_thread():
        (row,) = train(cfg).history
    # the old log-probs were scored in the first pass's shapes: identical, even in bf16
    assert row["losses/first_log_ratio_max"] == 0.0
    assert row["objective/kl"] == 0.0 and row["objective/kl_penalty"] == 0.0
    # the sampler (KV cache, one token at a time) and the scorer differ only by this gap
    assert 0 <= row["rollout/logprob_gap"] < (1e-3 if dtype == "float32" else 0.5)


def _with_grads(actor_scale: float, critic_scale: float):
    torch.manual_seed(0)
    model, _, _ = build_policy_value_model(
        ModelSettings("tiny", None, "float32", False), LoraSettings(lora_r=4)
    )
    for params, scale in (
        (model.actor_parameters(), actor_scale),
        (model.critic_parameters(), critic_scale),
    ):
        for p in params:
            p.grad = torch.full_like(p, scale)
    return model


def test_actor_and_critic_gradients_are_clipped_independently():
    from accelerate import Accelerator

    acc = Accelerator(cpu=True)
    small = _with_grads(1e-4, 1e-4)
    huge = _with_grads(1e-4, 1e6)  # a huge critic gradient
    before = [p.grad.clone() for p in huge.actor_parameters()]
    actor_norm, critic_norm = clip_gradients(acc, huge, 1.0, 1.0)
    assert critic_norm > 1e6 and actor_norm < 1.0
    for p, g in zip(huge.actor_parameters(), before, strict=True):
        assert torch.equal(p.grad, g)  # the actor's step is what it would have been
    assert clip_gradients(acc, small, 1.0, 1.0)[0] == pytest.approx(actor_norm)
    critic = torch.cat([p.grad.flatten() for p in huge.critic_parameters()])
    assert float(critic.norm()) == pytest.approx(1.0, rel=1e-4)
    # clipping both together (the old behaviour) would have shrunk the actor's gradient
    joint = _with_grads(1e-4, 1e6)
    torch.nn.utils.clip_grad_norm_([*joint.actor_parameters(), *joint.critic_parameters()], 1.0)
    assert not torch.equal(joint.actor_parameters()[0].grad, before[0])


def test_a_huge_value_loss_leaves_the_policy_update_unchanged(tmp_path):
    with one_thread():
        a = train(tiny_config(tmp_path / "a", updates=1, vf_coef=0.5))
        b = train(tiny_config(tmp_path / "b", updates=1, vf_coef=1e6))
    assert b.history[0]["losses/grad_norm_critic"] > 100 * a.history[0]["losses/grad_norm_critic"]
    lora_b = dict(b.model.named_parameters())
    lora = [(n, p) for n, p in a.model.named_parameters() if "lora_" in n]
    assert lora and all(torch.equal(p, lora_b[n]) for n, p in lora)


def test_lm_head_runs_in_float32_on_a_bf16_model_and_its_copy_is_kept():
    from clarify_agents.ppo.model import _sharded

    model, _, _ = build_policy_value_model(
        ModelSettings("tiny", None, "bfloat16", False), LoraSettings(lora_r=4)
    )
    head = model.causal_lm.get_output_embeddings().weight
    assert head.dtype == torch.bfloat16
    hidden = torch.randn(3, head.shape[1])
    logits = model.head_logits(hidden)
    assert logits.dtype == torch.float32
    assert torch.equal(logits, hidden @ head.float().T)  # not bf16 logits
    assert not torch.equal(logits, (hidden.bfloat16() @ head.T).float())
    copy = model._head_fp32
    model.head_logits(hidden)
    assert model._head_fp32 is copy  # converted once
    fake = torch.nn.Parameter(torch.zeros(0))
    fake.ds_id = 7  # a ZeRO-3 placeholder outside its module's forward
    assert _sharded(fake, 64) and not _sharded(head, head.shape[1])


def test_the_update_does_not_depend_on_the_micro_batch_split(tmp_path):
    """The trainer's wiring of the minibatch token mean (accelerate divides each micro-batch's
    loss by the accumulation steps; the normaliser must undo exactly that)."""
    results = {}
    with one_thread():
        for micro in (1, 2, 4):
            cfg = tiny_config(
                tmp_path / str(micro), updates=1, minibatch_size=4, micro_batch_size=micro,
                ppo_epochs=1, episodes_per_batch=8,
            )  # fmt: skip
            results[micro] = train(cfg)
    # gradients are not kept after the step, and Adam's first step (g / |g|) amplifies float
    # noise on near-zero gradients, so the check is on what the minibatch's gradient makes
    keys = ("losses/grad_norm_actor", "losses/grad_norm_critic", "losses/policy", "losses/value")
    for micro in (1, 2):
        for key in keys:
            got, want = results[micro].history[0][key], results[4].history[0][key]
            assert got == pytest.approx(want, rel=1e-5, abs=1e-9), (micro, key)


def _saved_bytes(model, ids, attn, mask) -> tuple[int, torch.Tensor]:
    """Bytes of the distinct backbone activations autograd keeps for the backward pass of one
    forward (not weights, and not the float32 LM head's vocabulary-wide tensors)."""
    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
    vocab = model.causal_lm.config.vocab_size
    seen: dict[int, int] = {}

    def pack(t):
        if t.untyped_storage().data_ptr() not in weights and vocab not in t.shape:
            seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        logprobs, _, _ = model(ids, attn, mask)
    return sum(seen.values()), logprobs


def test_a_bf16_base_runs_lora_in_bf16_and_saves_no_float32_copies_of_its_inputs():
    torch.manual_seed(0)
    model, _, _ = build_policy_value_model(
        ModelSettings("tiny", None, "bfloat16", False), LoraSettings(lora_r=4)
    )
    for p in model.actor_parameters():  # a trained adapter (lora_B starts at 0)
        torch.nn.init.normal_(p, std=0.05)
    assert {p.dtype for p in model.actor_parameters()} == {torch.float32}  # master weights
    model.train()
    ids = torch.randint(0, 100, (2, 24))
    attn, mask = torch.ones_like(ids), torch.zeros_like(ids, dtype=torch.bool)
    mask[:, 12:] = True
    ours, logp = _saved_bytes(model, ids, attn, mask)
    model.lora_in_base_dtype = False  # peft's default: each LoRA input cast to float32
    peft_default, logp_fp32_lora = _saved_bytes(model, ids, attn, mask)
    assert ours < 0.8 * peft_default
    assert (logp - logp_fp32_lora).abs().max() < 0.25  # the same policy, to bf16 rounding
    assert all(layer.cast_input_dtype_enabled for layer in model._tuner_layers)  # restored
    model.lora_in_base_dtype = True
    logp, _, _ = model(ids, attn, mask)
    logp[mask].sum().backward()  # gradients reach the float32 LoRA weights
    grads = [p.grad for p in model.actor_parameters()]
    assert all(g is not None and g.dtype == torch.float32 for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)
