from __future__ import annotations

import json

import gymnasium as gym
import pytest

pytest.importorskip("transformers")
import torch
from clarify_agents.hf import HFAgent, resolve_dtype
from clarify_agents.registry import make_agent


@pytest.fixture(scope="module")
def model_dir():
    from clarify_agents.models import tiny_checkpoint

    return tiny_checkpoint()


@pytest.fixture(scope="module")
def agent(model_dir):
    return make_agent(f"hf:{model_dir}", max_new_tokens=12)


@pytest.fixture(scope="module")
def observations():
    env = gym.make("ProactiveGather-v0", split="test")
    out = []
    for i, task in enumerate(env.unwrapped.tasks[:3]):
        obs, _ = env.reset(seed=0, options={"task_id": task.id})
        for _ in range(i):  # different lengths: left padding matters
            obs, *_ = env.step("What sections must the output contain?")
        out.append(obs)
    return out


def test_registry_builds_hfagent_from_a_folder(agent, model_dir):
    assert isinstance(agent, HFAgent) and agent.batched
    assert agent.tokenizer.padding_side == "left"
    assert agent.describe()["model"] == str(model_dir)


def test_prompt_is_the_chat_template_of_the_observation(agent, observations):
    prompt = agent.prompts(observations[1:2])[0]
    assert prompt.startswith("<|im_start|>system\n") and prompt.endswith("<|im_start|>assistant\n")
    assert prompt.count("<|im_start|>assistant\n") == 2  # one past question + the generation slot


def test_batched_greedy_equals_one_at_a_time(agent, observations):
    batched = agent.act_batch(observations)
    single = [agent.act(o) for o in observations]
    assert batched == single
    assert all(isinstance(a, str) and 0 < len(a) <= 500 for a in batched)


def test_sampling_is_seeded_per_episode_and_leaves_global_rng_alone(model_dir, observations):
    sampler = make_agent(f"hf:{model_dir}", max_new_tokens=6, do_sample=True, temperature=1.5)
    before = torch.random.get_rng_state()
    first = sampler.generate(observations, seeds=[1, 2, 3])
    assert torch.equal(before, torch.random.get_rng_state())
    assert sampler.generate(observations, seeds=[1, 2, 3]) == first
    # a reply does not depend on which other episodes share the batch
    assert sampler.generate(observations[1:2], seeds=[2]) == first[1:2]
    others = sampler.generate(observations[:1] * 3, seeds=[4, 5, 6])
    assert any(o != first[0] for o in others)
    sampler.reset(seed=1)
    assert sampler.generate(observations[:1]) == first[:1]


def test_stop_at_question_ends_the_reply_at_the_question_mark(agent):
    from clarify_agents.hf import _QuestionDone

    ids = agent.tokenizer("Which tone? And more", add_special_tokens=False)["input_ids"]
    prompt = [0, 0]
    rows = torch.tensor([prompt + ids[:1] + [0] * (len(ids) - 1), prompt + ids])
    done = _QuestionDone(agent.tokenizer, 2)(rows, None)
    assert done.tolist() == [False, True]
    think = agent.tokenizer("<think>why?", add_special_tokens=False)["input_ids"]
    assert _QuestionDone(agent.tokenizer, 0)(torch.tensor([think]), None).tolist() == [False]


def test_lora_adapter_folder_loads_and_changes_the_model(model_dir, tmp_path, observations):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(model_dir)
    lora = get_peft_model(
        base,
        LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False),
    )
    adapter = tmp_path / "adapter"
    lora.save_pretrained(adapter)
    (adapter / "value_head.safetensors").write_bytes(b"not an adapter file")  # must be ignored

    # float32 (``hf:`` defaults to "auto", bf16 on some CPUs): the check is exact to 1e-4
    tuned = make_agent(f"hf:{model_dir}@{adapter}", max_new_tokens=8, dtype="float32")
    assert tuned.describe()["adapter"] == str(adapter)
    plain = make_agent(f"hf:{model_dir}", max_new_tokens=8, dtype="float32")
    batch = tuned.tokenizer(tuned.prompts(observations[:1]), return_tensors="pt")
    with torch.no_grad():
        expected = lora(**batch).logits
        got = tuned.model(**batch).logits
        untuned = plain.model(**batch).logits
    assert torch.allclose(got, expected, atol=1e-4)
    assert not torch.allclose(got, untuned, atol=1e-3)
    with pytest.raises(FileNotFoundError, match=r"adapter_config\.json"):
        make_agent(f"hf:{model_dir}@{tmp_path}")


def test_reply_prefix_ends_the_prompt_starts_the_reply_and_comes_from_a_ppo_adapter(
    model_dir, tmp_path, observations
):
    plain = make_agent(f"hf:{model_dir}", max_new_tokens=6)
    prefixed = make_agent(f"hf:{model_dir}", max_new_tokens=6, reply_prefix="Question: What")
    assert prefixed.prompts(observations[:1])[0] == plain.prompts(observations[:1])[0] + (
        "Question: What"
    )
    assert all(r.startswith("Question: What") for r in prefixed.generate(observations))
    assert prefixed.describe()["reply_prefix"] == "Question: What"
    assert "reply_prefix" not in plain.describe()
    from clarify_agents.policy_folder import policy_folder

    assert policy_folder(tmp_path) is None  # no clarify_gym_ppo.json: no trained prefix
    config = {"rollout": {"reply_prefix": "To write this well, I need to know: what"}}
    (tmp_path / "clarify_gym_ppo.json").write_text(json.dumps({"config": config}))
    folder = policy_folder(str(tmp_path))
    assert folder is not None
    assert folder.reply_prefix == "To write this well, I need to know: what"


def test_resolve_dtype_and_bad_arguments(model_dir):
    assert resolve_dtype("bfloat16") is torch.bfloat16
    assert resolve_dtype("auto") in (torch.bfloat16, torch.float32)
    with pytest.raises(ValueError, match="dtype"):
        resolve_dtype("int3")
    with pytest.raises(ValueError, match="max_new_tokens"):
        HFAgent(str(model_dir), max_new_tokens=0)


def test_ppo_checkpoint_names_its_base_model(tmp_path):
    from clarify_agents.policy_folder import policy_folder

    assert policy_folder(tmp_path) is None  # not a checkpoint
    meta = {"base_model": "Qwen/Qwen2.5-7B-Instruct", "base_model_path": str(tmp_path / "gone")}
    (tmp_path / "clarify_gym_ppo.json").write_text(json.dumps(meta))
    folder = policy_folder(tmp_path)
    # trained elsewhere: the local path is missing here, so the hub id is used
    assert folder is not None and folder.base_model == "Qwen/Qwen2.5-7B-Instruct"
    assert folder.tokenizer == "Qwen/Qwen2.5-7B-Instruct"  # no tokenizer files in the folder
    (tmp_path / "gone").mkdir()
    assert policy_folder(tmp_path).base_model == str(tmp_path / "gone")
    (tmp_path / "tokenizer.json").write_text("{}")
    assert policy_folder(tmp_path).tokenizer == str(tmp_path)


def test_no_repeat_processor_bans_earlier_questions_and_the_reply_so_far():
    from clarify_agents.hf import _NoRepeat

    # two left-padded rows, prompt width 3: row 0 wrote 7 after its prompt's last token 5
    rows = torch.tensor([[0, 4, 5, 7], [4, 4, 6, 8]])
    earlier = [[[5, 1, 2]], []]  # row 0 once asked "5 1 2"; row 1 asked nothing yet
    scores = _NoRepeat(2, earlier, 3, end_ids=[2])(rows, torch.zeros(2, 10))
    banned = [torch.isinf(s).nonzero().flatten().tolist() for s in scores]
    assert banned == [[], []]  # 7 ends the context: nothing recorded follows a 7
    rows = torch.tensor([[0, 4, 5, 5], [4, 4, 6, 8]])  # row 0 wrote 5 after 5
    scores = _NoRepeat(2, earlier, 3, end_ids=[2])(rows, torch.zeros(2, 10))
    banned = [torch.isinf(s).nonzero().flatten().tolist() for s in scores]
    assert banned == [[1, 5], []]  # "5 1" was asked, "5 5" was just written


def test_no_repeat_ngram_one_writes_no_token_of_earlier_questions(model_dir, observations):
    plain = make_agent(f"hf:{model_dir}", max_new_tokens=10, stop_at_question=False)
    ruled = make_agent(f"hf:{model_dir}", max_new_tokens=10, stop_at_question=False,
                       no_repeat_ngram=1)  # fmt: skip
    assert ruled.describe()["no_repeat_ngram"] == 1 and "no_repeat_ngram" not in plain.describe()
    outputs = []
    generate = ruled.model.generate

    def spy(**kwargs):
        out = generate(**kwargs)
        outputs.append((kwargs["input_ids"].shape[1], out))
        return out

    ruled.model.generate = spy
    try:
        ruled.generate(observations)
    finally:
        ruled.model.generate = generate
    width, out = outputs[0]
    question = set(ruled.tokenizer("What sections must the output contain?",
                                   add_special_tokens=False)["input_ids"])  # fmt: skip
    ends = set(ruled._end_ids) | {ruled.tokenizer.pad_token_id}
    for i, row in enumerate(out[:, width:].tolist()):
        new = [t for t in row if t not in ends]
        assert len(new) == len(set(new))  # n = 1: no token twice in a reply
        if i > 0:  # observations 1 and 2 asked the question before
            assert not question & set(new)
    with pytest.raises(ValueError, match="no_repeat_ngram"):
        HFAgent(str(model_dir), no_repeat_ngram=-1)
