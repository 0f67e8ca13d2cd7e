"""Gymnasium registration of every ProactiveGather id (runs on ``import clarify_gym``).

``gym.make("clarify_gym:ProactiveGather-v0")`` imports this package first, so no explicit import
is needed. Any change to reward or dynamics bumps the version suffix.

``ProactiveGather-LLM-v0`` is the paper's pipeline: the LLM user oracle, the LLM writer and the
LLM checklist judge over any OpenAI-compatible endpoint (configured by environment variables,
see :mod:`clarify_gym.llm`); rewards as in ``ProactiveGather-v0``. Its ``nondeterministic``
flag is decided once, when ``clarify_gym`` is imported, because a registered spec is static:
``False`` when the reply cache is on (the default; ``CLARIFY_GYM_LLM_CACHE`` unset or a folder),
since every reply is then replayed from disk and the same seed and actions give the same
episode; ``True`` when ``CLARIFY_GYM_LLM_CACHE=off`` at import time, since the model may then
answer the same question differently.
"""

from __future__ import annotations

from typing import Any

from gymnasium.envs.registration import register, registry

from clarify_gym.llm.cache import llm_cache_dir

__all__ = ["ENV_IDS", "register_envs"]

_ENTRY = "clarify_gym.env:ProactiveGatherEnv"
#: Discrete bank actions and Box features (stable-baselines3 and other classic RL libraries).
_BANK_ENTRY = "clarify_gym.wrappers:make_bank_env"

#: id -> (entry point, kwargs, nondeterministic)
ENV_SPECS: dict[str, tuple[str, dict[str, Any], bool]] = {
    "ProactiveGather-v0": (_ENTRY, {}, False),
    "ProactiveGatherPaper-v0": (_ENTRY, {"reward": "paper"}, False),
    "ProactiveGather-LLM-v0": (
        _ENTRY,
        {"user": "llm", "writer": "llm", "judge": "llm"},
        llm_cache_dir() is None,
    ),
    "ProactiveGatherBank-v0": (_BANK_ENTRY, {}, False),
    "ProactiveGatherBankPaper-v0": (_BANK_ENTRY, {"reward": "paper"}, False),
}
ENV_IDS: tuple[str, ...] = tuple(ENV_SPECS)


def register_envs() -> None:
    """Register every id in :data:`ENV_SPECS` that is not registered yet."""
    for env_id, (entry_point, kwargs, nondeterministic) in ENV_SPECS.items():
        if env_id not in registry:
            register(
                id=env_id, entry_point=entry_point, kwargs=kwargs, nondeterministic=nondeterministic
            )
