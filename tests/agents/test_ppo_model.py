"""One backbone for policy, reference and critic: identity at start, outputs only at policy tokens."""

from __future__ import annotations

import pytest
import torch
from clarify_agents.models import tiny_checkpoint
from clarify_agents.ppo.config import LoraSettings, ModelSettings
from clarify_agents.ppo.core import ppo_losses
from clarify_agents.ppo.model import build_policy_value_model
from ppo_helpers import one_thread
from safetensors.torch import load_file


@pytest.fixture(scope="module")
def model_and_batch():
    torch.manual_seed(0)
    model, tokenizer, _ = build_policy_value_model(
        ModelSettings("tiny", None, "float32", False), LoraSettings(lora_r=4)
    )
    ids = torch.randint(3, len(tokenizer), (3, 24), generator=torch.Generator().manual_seed(1))
    attention = torch.ones_like(ids)
    attention[2, 18:] = 0  # a right-padded row
    mask = torch.zeros_like(ids, dtype=torch.bool)
    mask[0, 5:9] = mask[0, 14:20] = mask[1, 10:24] = mask[2, 3:7] = True
    return model, (ids, attention, mask)


def test_tiny_checkpoint_is_the_same_on_every_build(tmp_path, monkeypatch):
    folders = []
    for name in ("a", "b"):
        monkeypatch.setenv("CLARIFY_GYM_CACHE", str(tmp_path / name))
        folders.append(tiny_checkpoint())
    first, second = (load_file(f / "model.safetensors") for f in folders)
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
    vocabularies = [(f / "tokenizer.json").read_text() for f in folders]
    assert vocabularies[0] == vocabularies[1]


def test_reference_equals_policy_exactly_at_start(model_and_batch):
    model, (ids, attention, mask) = model_and_batch
    with torch.no_grad(), one_thread():
        logp, values, _ = model(ids, attention, mask)
        with model.adapter_disabled():
            ref, _, _ = model(ids, attention, mask)
        assert torch.equal(logp, ref)  # LoRA starts as the identity: KL is exactly 0
        assert (values == 0).all()  # zero-initialised value head
        lora_b = next(p for n, p in model.policy.named_parameters() if "lora_B" in n)
        lora_b.add_(0.5)
        try:
            moved, _, _ = model(ids, attention, mask)
            with model.adapter_disabled():
                ref_again, _, _ = model(ids, attention, mask)
        finally:
            lora_b.sub_(0.5)
        assert not torch.equal(moved, ref_again) and torch.equal(ref, ref_again)


def test_outputs_exist_only_at_policy_tokens(model_and_batch):
    model, (ids, attention, mask) = model_and_batch
    with torch.no_grad(), one_thread():
        logp, values, entropy = model(ids, attention, mask)
        full = torch.log_softmax(model.causal_lm(input_ids=ids[:2]).logits, -1)
    assert (logp[~mask] == 0).all() and (values[~mask] == 0).all() and (entropy[~mask] == 0).all()
    assert (logp[mask] < 0).all() and (entropy[mask] > 0).all()
    # position t holds log p(token t | tokens < t)
    expected = full[:, :-1].gather(-1, ids[:2, 1:, None]).squeeze(-1)
    assert torch.allclose(logp[:2, 1:][mask[:2, 1:]], expected[mask[:2, 1:]], atol=1e-5)
    first = mask.clone()
    first[0, 0] = True
    with pytest.raises(ValueError, match="first token"):
        model(ids, attention, first)


def test_only_policy_tokens_carry_loss_through_the_model(model_and_batch):
    model, (ids, attention, mask) = model_and_batch
    gen = torch.Generator().manual_seed(2)
    old_logp, old_v, adv, ret = (torch.randn(ids.shape, generator=gen) for _ in range(4))

    def lora_grads(*tensors):
        model.zero_grad()
        with one_thread():
            logp, values, entropy = model(ids, attention, mask, entropy_grad=True)
            out = ppo_losses(
                logp, *tensors[:1], values, *tensors[1:], entropy, mask,
                clip_ratio=0.2, clip_value=0.2, vf_coef=0.5, ent_coef=0.01,
            )  # fmt: skip
            out.loss.backward()
        return out.loss.item(), [
            p.grad.clone() for p in model.actor_parameters() + model.critic_parameters()
        ]

    loss, grads = lora_grads(old_logp, old_v, adv, ret)
    garbage = [torch.where(mask, t, torch.full_like(t, 1e4)) for t in (old_logp, old_v, adv, ret)]
    loss2, grads2 = lora_grads(*garbage)
    assert loss == pytest.approx(loss2, rel=1e-6)
    assert all(torch.allclose(a, b, atol=1e-7) for a, b in zip(grads, grads2, strict=True))
    assert any(g.abs().sum() > 0 for g in grads)
    model.zero_grad()
