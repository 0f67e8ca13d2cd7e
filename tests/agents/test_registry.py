from __future__ import annotations

import pytest
from clarify_agents.base import Agent
from clarify_agents.baselines import GenericAgent, OracleAgent, PassiveAgent, RandomAgent
from clarify_agents.registry import AGENTS, AgentEntry, UnknownAgentError, make_agent, parse_spec
from helpers import short_id


@pytest.mark.parametrize(
    ("spec", "cls"),
    [
        ("passive", PassiveAgent),
        ("generic", GenericAgent),
        ("random", RandomAgent),
        ("oracle", OracleAgent),
        (" oracle ", OracleAgent),
        ("py:clarify_agents.baselines:PassiveAgent", PassiveAgent),
    ],
    ids=short_id,
)
def test_specs_build_their_agent(spec, cls):
    assert type(make_agent(spec)) is cls


def test_kwargs_reach_the_constructor():
    agent = make_agent("generic", questions=["Who reads it?"], max_questions=1)
    assert agent.act("obs") == "Who reads it?" and agent.act("obs") == "STOP"


def test_hf_specs_parse_model_and_adapter_without_loading():
    _, options = parse_spec("hf:Qwen/Qwen2.5-7B-Instruct@runs/ppo/adapter")
    assert options == {
        "model": "Qwen/Qwen2.5-7B-Instruct",
        "adapter": "runs/ppo/adapter",
        "dtype": "auto",
    }
    _, options = parse_spec("hf:smollm2-135m")
    assert options == {"model": "smollm2-135m", "dtype": "auto"}
    _, options = parse_spec("smollm2")
    assert options["model"] == "smollm2-135m" and options["dtype"] == "auto"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("gpt-9", "unknown agent 'gpt-9'"),
        ("hf", "takes an argument: write hf:<model>"),
        ("hf:", "takes an argument"),
        ("oracle:x", "agent 'oracle' takes no argument"),
        ("py:no_such_module:Agent", "cannot import module 'no_such_module'"),
        ("py:clarify_agents.baselines:Nope", "has no attribute 'Nope'"),
    ],
    ids=short_id,
)
def test_bad_specs_say_what_is_valid(spec, message):
    with pytest.raises(UnknownAgentError, match=message) as err:
        make_agent(spec)
    if "Valid agents" in str(err.value):
        for valid in (
            "passive",
            "generic",
            "random",
            "oracle",
            "smollm2",
            "hf:<model>[@<adapter>]",
        ):
            assert valid in str(err.value)


def test_a_new_backend_is_one_entry(monkeypatch):
    # how chat:<model> is wired: one AgentEntry naming the class and the keyword of the argument
    monkeypatch.setitem(
        AGENTS, "named", AgentEntry("clarify_agents.baselines:GenericAgent", arg="max_questions")
    )
    agent = make_agent("named:1")
    assert isinstance(agent, GenericAgent) and agent.max_questions == "1"
    with pytest.raises(UnknownAgentError, match=r"not a clarify_agents\.base\.Agent"):
        make_agent("py:builtins:dict")
    assert issubclass(type(make_agent("passive")), Agent)
