"""The verl adapter on CPU: the AgentLoop against a scripted server manager (no GPU, no verl
trainer): tokens, masks and per-question rewards on each question's last token, through verl
0.9.1's own v1 (default) and legacy worker code, and its GAE; the dataset command; the example
command against verl's Hydra config; the configs in the built wheel."""

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


def test_dataset_cli_writes_train_and_test_for_every_task_source(tmp_path, dolomites_files):
    """A DOLOMITES dev file has no test split: the command used to write train.parquet only,
    while the verl and SkyRL commands read test.parquet too."""
    pd = pytest.importorskip("pandas")
    from clarify_agents.integrations.dataset import main

    for name in ("dev", "tasks", "zip"):
        out = tmp_path / name
        argv = ["--engine", "verl", "--out", str(out), "--tasks", str(dolomites_files[name])]
        assert main(argv) == 0
        train, test = (pd.read_parquet(out / f"{s}.parquet") for s in ("train", "test"))
        assert len(train) >= 1 and len(test) >= 1
        assert not set(train["extra_info"].map(lambda i: i["task_id"])) & set(
            test["extra_info"].map(lambda i: i["task_id"])
        )
    zipped = pd.read_parquet(tmp_path / "zip" / "test.parquet")  # its own test split
    assert {i["split"] for i in zipped["extra_info"]} == {"test"}
    assert main(["--engine", "verl", "--out", str(tmp_path / "x"), "--tasks", "nope.jsonl"]) == 2


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
    env = gym.make(clarify_gym.DEFAULT_ENV_ID)
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


def gae_return(scores, mask) -> float:
    """What verl's GAE (gamma = lam = 1, zero values) credits the first response token with:
    the rewards on policy tokens; a reward on a user token (mask 0) is dropped."""
    import torch
    from verl.trainer.ppo.core_algos import compute_gae_advantage_return

    scores, mask = torch.tensor([scores], dtype=torch.float32), torch.tensor([mask])
    _, returns = compute_gae_advantage_return(scores, torch.zeros_like(scores), mask, 1.0, 1.0)
    return float(returns[0, 0])


@needs_verl
def test_a_user_answer_overflowing_the_response_ends_the_episode(tokenizer, tmp_path):
    """When a user's answer overflows response_length the loop used to generate on, and the
    last reward landed on a user token, which GAE drops (9-10 of 12 episodes lost about a third
    of their return at length 60). Now the episode ends there (STOP) and every question's
    reward stays on its own last token, a policy token inside the response."""
    import pandas as pd

    rows = episode_rows(clarify_gym.load_tasks("sample", split="test"), [0])
    path = write_parquet([verl_row(r) for r in rows], tmp_path / "t.parquet")
    for row in pd.read_parquet(path).to_dict("records"):
        server = ScriptedServer(tokenizer, REPLIES)
        out = run(tokenizer, server, row, response_length=60)
        ends, mask = out.extra_fields["turn_ends"], out.response_mask
        assert all(e < len(out.response_ids) and mask[e] == 1 for e in ends)
        scores = out.as_dict()["rm_scores"].tolist()
        asked = [*REPLIES[: len(server.sent)], "STOP"][: len(REPLIES)]
        rewards, _, _ = gym_rewards(row["extra_info"], asked)
        assert gae_return(scores, mask) == pytest.approx(sum(rewards))  # nothing dropped


def v1_worker(tokenizer):
    """verl's v1 AgentLoopWorkerTQ (the default trainer's), built without Ray or TransferQueue
    servers: what it would put in TransferQueue is captured."""
    import sys
    import types

    import verl.trainer.ppo

    name = "verl.trainer.ppo.v1"  # its __init__ imports the whole v1 trainer (vLLM, aiohttp ...)
    if name not in sys.modules:
        package = types.ModuleType(name)
        package.__path__ = [str(Path(verl.trainer.ppo.__file__).parent / "v1")]
        sys.modules[name] = package
    from verl.trainer.ppo.v1 import agent_loop_tq

    worker = object.__new__(agent_loop_tq.AgentLoopWorkerTQ.__ray_metadata__.modified_class)
    worker.tokenizer, worker.processor, worker.mm_processor_kwargs = tokenizer, None, {}
    worker.reward_loop_worker_handles, worker.distillation_enabled = None, False
    return worker, agent_loop_tq


@needs_verl
def test_v1_trainer_stores_each_reward_on_its_token(tokenizer, row, monkeypatch):
    """verl 0.9.1's default trainer (trainer.use_v1=true) stores AgentLoopOutput.as_dict()'s
    rm_scores in TransferQueue and trains on them: each question's reward sits on its own last
    token there (verl alone: the whole return on the last token)."""
    from verl.experimental.agent_loop.agent_loop import AgentLoopOutput

    worker, agent_loop_tq = v1_worker(tokenizer)
    stored = []

    async def put(keys, fields, tags, partition_id):
        stored.append(fields)

    monkeypatch.setattr(agent_loop_tq.tq, "async_kv_batch_put", put)
    out = run(tokenizer, ScriptedServer(tokenizer, REPLIES), row)
    kwargs = {"uid": "u0", "session_id": 0, "global_steps": 1, "raw_prompt": row["prompt"]}
    asyncio.run(worker._agent_loop_postprocess(out, False, **kwargs))
    (fields,) = stored
    scores = fields["rm_scores"][0]
    ends, rewards = out.extra_fields["turn_ends"], out.extra_fields["turn_rewards"]
    assert scores.nonzero().flatten().tolist() == [
        e for e, r in zip(ends, rewards, strict=True) if r
    ]
    assert scores[ends].tolist() == pytest.approx(rewards)
    assert gae_return(scores.tolist(), out.response_mask) == pytest.approx(sum(rewards))
    plain = AgentLoopOutput(**{k: getattr(out, k) for k in AgentLoopOutput.model_fields})
    assert plain.as_dict()["rm_scores"].nonzero().flatten().tolist() == [len(out.response_ids) - 1]


@needs_verl
def test_manager_class_selects_the_manager_of_the_trainer_in_use(tokenizer, monkeypatch):
    """The example command sets ProactiveGatherAgentLoopManager; under verl 0.9.1's default
    trainer (use_v1=true) it used to fail (AttributeError on a TensorDict). Its create() now
    builds verl's own v1 manager there, and its legacy manager for use_v1=false."""
    from clarify_agents.integrations.verl.agent_loop import ProactiveGatherAgentLoopManager
    from omegaconf import OmegaConf
    from verl.experimental.agent_loop.agent_loop import AgentLoopManager

    _, agent_loop_tq = v1_worker(tokenizer)

    async def no_workers(self):
        self.agent_loop_workers = []

    monkeypatch.setattr(AgentLoopManager, "_init_agent_loop_workers", no_workers)
    for use_v1, expected in ((True, agent_loop_tq.AgentLoopManagerTQ), (False, None)):
        config = OmegaConf.create(
            {"trainer": {"use_v1": use_v1}, "actor_rollout_ref": {"rollout": {}, "model": {}}}
        )
        manager = ProactiveGatherAgentLoopManager.create(config=config, llm_client=None)
        assert type(manager) is (expected or ProactiveGatherAgentLoopManager)


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
    assert cfg.trainer.use_v1 is True  # verl 0.9.1's default trainer: the manager handles both
    assert rollout.agent.agent_loop_manager_class.endswith("ProactiveGatherAgentLoopManager")
    assert Path(rollout.agent.agent_loop_config_path) == CONFIGS / "verl_agent_loop.yaml"
    assert cfg.algorithm.adv_estimator == "gae" and cfg.data.train_batch_size == 256
    assert cfg.actor_rollout_ref.actor.ppo_mini_batch_size == 16 and cfg.trainer.total_epochs == 3


@pytest.mark.slow
def test_the_wheel_ships_the_example_configs(tmp_path):
    """``pip install clarify-gym`` gets the verl and SkyRL configs next to the adapters (built
    from a copy of the sources, so no build/ folder lands in the checkout)."""
    import shutil
    import subprocess
    import sys
    import zipfile

    root, src = Path(__file__).resolve().parents[2], tmp_path / "src"
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for part in ("clarify_gym", "agents/clarify_agents", "benchmarks/clarify_bench"):
        shutil.copytree(root / part, src / part, ignore=skip)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(root / name, src / name)
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path / "dist"), str(src)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("clarify_gym-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for config in CONFIGS.iterdir():
        assert f"clarify_agents/integrations/configs/{config.name}" in names
