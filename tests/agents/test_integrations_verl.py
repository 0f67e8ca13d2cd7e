"""The verl adapter on CPU: the AgentLoop against a scripted server manager (no GPU, no verl
trainer): tokens, masks and per-question rewards on each question's last token."""

from __future__ import annotations

import asyncio
import os
import shlex
from importlib.util import find_spec
from pathlib import Path

import gymnasium as gym
import pytest
from clarify_agents.integrations.dataset import episode_rows, verl_row, write_parquet
from clarify_agents.integrations.verl.rewards import place_turn_rewards, turn_token_rewards

import clarify_gym
from clarify_gym.questions import TOP_GENERIC_QUESTIONS

REPLIES = [*TOP_GENERIC_QUESTIONS[:3], "STOP"]


def test_turn_rewards_land_on_turn_ends_and_keep_the_return():
    torch = pytest.importorskip("torch")
    scores = torch.zeros(2, 6)
    scores[0, 3] = 9.0  # what verl wrote: the whole return on the last token
    extra = [{"turn_ends": [1, 3], "turn_rewards": [0.25, 0.5]}, {}]
    out = place_turn_rewards(scores, [4, 6], extra)
    assert out[0].tolist() == [0.0, 0.25, 0.0, 0.5, 0.0, 0.0]
    assert out[1].tolist() == [0.0] * 6  # no turn fields: verl's scores stay
    assert turn_token_rewards(2, [1, 5], [1.0, 2.0]) == [0.0, 3.0]
    with pytest.raises(ValueError):
        turn_token_rewards(4, [1], [1.0, 2.0])


def test_dataset_cli_writes_parquet_rows_for_both_engines(tmp_path, capsys):
    pd = pytest.importorskip("pandas")
    from clarify_agents.integrations.dataset import main

    for engine, key, value in (
        ("verl", "agent_name", "proactive_gather"),
        ("skyrl", "env_class", "proactive_gather"),
    ):
        argv = ["--engine", engine, "--out", str(tmp_path / engine), "--seeds", "2"]
        assert main([*argv, "--env-kwargs", '{"max_questions": 3}']) == 0
        train = pd.read_parquet(tmp_path / engine / "train.parquet")
        test = pd.read_parquet(tmp_path / engine / "test.parquet")
        assert len(train) == 2 * 24 and len(test) == 2 * 12 and set(train[key]) == {value}
        info = test.iloc[-1]["extra_info"]
        assert (
            info["seed"] == 1
            and info["split"] == "test"
            and info["env_kwargs"] == '{"max_questions": 3}'
        )
        assert [m["role"] for m in test.iloc[0]["prompt"]] == ["system", "user"]
        assert "at most 3 questions" in test.iloc[0]["prompt"][1]["content"]
    assert '"rows": 24' in capsys.readouterr().out


# ---- the AgentLoop itself (needs verl) ---------------------------------------------------------

needs_verl = pytest.mark.skipif(
    find_spec("verl") is None, reason="verl is optional (its own venv: see docs/scaling_out.md)"
)


class ScriptedServer:
    """verl's server manager, scripted: the replies of REPLIES, in order, each ended by the
    chat template's end-of-turn token; it records the prompt of every call."""

    def __init__(self, tokenizer, replies):
        from verl.workers.rollout.replica import TokenOutput

        self.tokenizer, self.replies, self.prompts, self.sent = tokenizer, list(replies), [], []
        self.TokenOutput = TokenOutput
        self.end = tokenizer.convert_tokens_to_ids("<|im_end|>")

    async def generate(self, *, request_id, prompt_ids, sampling_params, **kwargs):
        self.prompts.append(list(prompt_ids))
        ids = [*self.tokenizer.encode(self.replies.pop(0), add_special_tokens=False), self.end]
        self.sent.append(ids)
        return self.TokenOutput(token_ids=ids, log_probs=[-0.5] * len(ids))


CONFIGS = (
    Path(__file__).resolve().parents[2] / "agents" / "clarify_agents" / "integrations" / "configs"
)


def make_loop(tokenizer, server, response_length=4096):
    """The loop as verl's AgentLoopWorker builds it: hydra-instantiated from our agent-loop YAML."""
    import hydra
    from omegaconf import OmegaConf
    from verl.experimental.agent_loop.agent_loop import DictConfigWrap

    (entry,) = OmegaConf.load(CONFIGS / "verl_agent_loop.yaml")
    assert entry.name == "proactive_gather"
    config = OmegaConf.create(
        {
            "actor_rollout_ref": {
                "rollout": {"prompt_length": 4096, "response_length": response_length}
            }
        }
    )
    return hydra.utils.instantiate(
        config={k: v for k, v in entry.items() if k != "name"},
        trainer_config=DictConfigWrap(config),
        server_manager=server,
        tokenizer=tokenizer,
        processor=None,
        dataset_cls=None,
        data_config=DictConfigWrap(OmegaConf.create({})),
        hf_model_type="qwen2",
        tools=None,
    )


@pytest.fixture(scope="module")
def tokenizer():
    from clarify_agents.models import load_tokenizer

    return load_tokenizer("qwen2.5-tokenizer")


@pytest.fixture(scope="module")
def row(tmp_path_factory):
    rows = episode_rows(clarify_gym.load_tasks("sample", split="test")[:2], [1])
    path = write_parquet([verl_row(r) for r in rows], tmp_path_factory.mktemp("v") / "t.parquet")
    import pandas as pd

    back = pd.read_parquet(path).iloc[0].to_dict()  # as verl's dataset hands it over
    assert back["agent_name"] == "proactive_gather"
    return back


def gym_rewards(extra_info, actions):
    env = gym.make("ProactiveGather-v0")
    env.reset(seed=int(extra_info["seed"]), options={"task_id": extra_info["task_id"]})
    rewards, answers = [], []
    for action in actions:
        _, reward, terminated, truncated, info = env.step(action)
        rewards.append(float(reward))
        answers.append(info["dialogue"][-1]["content"])
        if terminated or truncated:
            return rewards, answers, info


def run(tokenizer, server, row, **kwargs):
    """Build the loop inside the event loop (as verl's worker does) and play the row."""

    async def play():
        loop = make_loop(tokenizer, server, **kwargs)
        return await loop.run(
            {"temperature": 1.0}, raw_prompt=row["prompt"], extra_info=row["extra_info"]
        )

    return asyncio.run(play())


@needs_verl
def test_agent_loop_tokens_masks_and_per_question_rewards(tokenizer, row):
    server = ScriptedServer(tokenizer, REPLIES)
    out = run(tokenizer, server, row)
    rewards, answers, info = gym_rewards(row["extra_info"], REPLIES)

    # the prompt is the chat of the row, and every call saw exactly the tokens so far
    messages = [dict(m) for m in row["prompt"]]
    assert out.prompt_ids == tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=True, return_dict=False
    )
    sequence = out.prompt_ids + out.response_ids
    for prompt in server.prompts:
        assert sequence[: len(prompt)] == prompt
    # the whole sequence is the chat template's rendering of the dialogue (token in, token out)
    chat = list(messages)
    for reply, answer in zip(REPLIES, [*answers[:-1], None], strict=True):
        chat.append({"role": "assistant", "content": reply})
        if answer is not None:
            chat.append({"role": "user", "content": answer})
    rendered = tokenizer.apply_chat_template(chat, tokenize=True, return_dict=False)
    assert sequence == rendered[: len(sequence)] and len(rendered) - len(sequence) == 1  # "\n"

    # mask 1 exactly on the generated tokens; the user's answers are all mask 0
    mask = out.response_mask
    assert len(mask) == len(out.response_ids) == len(out.response_logprobs)
    generated = [t for t, m in zip(out.response_ids, mask, strict=True) if m]
    assert generated == [t for ids in server.sent for t in ids]
    context = tokenizer.decode([t for t, m in zip(out.response_ids, mask, strict=True) if not m])
    for answer in answers[:-1]:
        assert answer in context
    assert all(lp == -0.5 for lp, m in zip(out.response_logprobs, mask, strict=True) if m)

    # each question's reward on its own last token, equal to the Gymnasium env's
    extra = out.extra_fields
    assert extra["turn_rewards"] == rewards and out.reward_score == pytest.approx(sum(rewards))
    end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert [out.response_ids[i] for i in extra["turn_ends"]] == [end] * len(REPLIES)
    assert all(mask[i] == 1 for i in extra["turn_ends"])
    assert sum(mask[: extra["turn_ends"][0] + 1]) == len(server.sent[0])
    assert extra["episode_metrics"]["env/questions"] == 3 == info["env/questions"]
    assert extra["episode_metrics"]["env/new_info"] == info["env/new_info"] > 0


@needs_verl
def test_worker_puts_each_reward_on_its_token_in_verls_batch(tokenizer, row):
    """verl's own padding and batching (AgentLoopWorker), then our per-question placement."""
    from types import SimpleNamespace

    from clarify_agents.integrations.verl.agent_loop import ProactiveGatherAgentLoopWorker

    out = run(tokenizer, ScriptedServer(tokenizer, REPLIES), row)
    worker = object.__new__(ProactiveGatherAgentLoopWorker)
    worker.rollout_config = SimpleNamespace(prompt_length=2048, response_length=1024)
    worker.tokenizer, worker.processor, worker.mm_processor_kwargs = tokenizer, None, {}
    worker.reward_loop_worker_handles, worker.distillation_enabled = None, False
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = "<|endoftext|>"
    padded = asyncio.run(worker._agent_loop_postprocess(out, False, raw_prompt=row["prompt"]))
    batch = worker._postprocess([padded]).batch
    scores = batch["rm_scores"][0]
    ends = out.extra_fields["turn_ends"]
    assert scores.nonzero().flatten().tolist() == [
        i for i, r in zip(ends, out.extra_fields["turn_rewards"], strict=True) if r
    ]
    assert scores[ends].tolist() == pytest.approx(out.extra_fields["turn_rewards"])
    assert float(scores.sum()) == pytest.approx(out.reward_score)
    assert batch["response_mask"][0, ends].tolist() == [1] * len(ends)

    from verl.experimental.agent_loop.agent_loop import AgentLoopWorker

    plain = AgentLoopWorker._postprocess(worker, [padded]).batch["rm_scores"][0]
    assert plain.nonzero().flatten().tolist() == [len(out.response_ids) - 1]  # verl alone


@needs_verl
def test_agent_loop_stops_when_the_response_is_full(tokenizer, row):
    server = ScriptedServer(tokenizer, REPLIES)
    out = run(tokenizer, server, row, response_length=40)
    assert len(server.sent) < len(REPLIES)  # ended for room, not by STOP
    rewards, _, _ = gym_rewards(row["extra_info"], [*REPLIES[: len(server.sent)], "STOP"])
    assert sum(out.extra_fields["turn_rewards"]) == pytest.approx(sum(rewards))
    assert len(out.response_ids) <= 40


@needs_verl
def test_example_ppo_command_composes_with_verls_own_config():
    """Every override of the 8-GPU example is a key of verl 0.9.1's PPO config (Hydra would
    refuse an unknown one), and the rollout part converts to verl's dataclass."""
    import verl
    from hydra import compose, initialize_config_dir
    from verl.utils.config import omega_conf_to_dataclass

    text = (CONFIGS / "verl_qwen2.5_7b_ppo_8gpu.sh").read_text()
    command = text[text.index("python3 -m verl.trainer.main_ppo") :].replace('"$@"', "")
    command = command.replace("$data", "/data").replace("$here", str(CONFIGS))
    overrides = shlex.split(command.replace("\\\n", " "))[3:]
    assert len(overrides) > 40
    folder = os.path.join(os.path.dirname(verl.__file__), "trainer", "config")
    with initialize_config_dir(config_dir=folder, version_base=None):
        cfg = compose(config_name="ppo_trainer", overrides=overrides)
        with pytest.raises(Exception, match=r"agent_loop_manager\b"):
            compose(
                config_name="ppo_trainer",
                overrides=["actor_rollout_ref.rollout.agent.agent_loop_manager=x"],
            )
    rollout = omega_conf_to_dataclass(cfg.actor_rollout_ref.rollout)
    assert rollout.agent.agent_loop_manager_class.endswith("ProactiveGatherAgentLoopManager")
    assert Path(rollout.agent.agent_loop_config_path) == CONFIGS / "verl_agent_loop.yaml"
    assert cfg.algorithm.adv_estimator == "gae" and cfg.data.train_batch_size == 256
    assert cfg.actor_rollout_ref.actor.ppo_mini_batch_size == 16 and cfg.trainer.total_epochs == 3
