"""Gymnasium registration of every ProactiveGather id (runs on ``import clarify_gym``).

``gym.make("clarify_gym:ProactiveGather-v0")`` imports this package first, so no explicit import
is needed. Any change to reward or dynamics bumps the version suffix.

The ``-v1`` ids (``ProactiveGather-v1``, ``ProactiveGatherPaper-v1``, ``ProactiveGatherBank-v1``,
``ProactiveGatherBankPaper-v1``) use the faithful offline user (``user="faithful"``, see
:mod:`clarify_gym.users.faithful`); the ``-v0`` ids keep the v0 retrieval user.

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

import gymnasium as gym
from gymnasium.envs.registration import register, registry

from clarify_gym.errors import EnvConfigError
from clarify_gym.llm.cache import llm_cache_dir

__all__ = ["DEFAULT_ENV_ID", "DEFAULT_PAPER_ENV_ID", "ENV_IDS", "make_env", "register_envs"]

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
    # v1: the faithful offline user (see the env's Version History)
    "ProactiveGather-v1": (_ENTRY, {"user": "faithful"}, False),
    "ProactiveGatherPaper-v1": (_ENTRY, {"reward": "paper", "user": "faithful"}, False),
    "ProactiveGatherBank-v1": (_BANK_ENTRY, {"user": "faithful"}, False),
    "ProactiveGatherBankPaper-v1": (_BANK_ENTRY, {"reward": "paper", "user": "faithful"}, False),
}
ENV_IDS: tuple[str, ...] = tuple(ENV_SPECS)
#: The id every entry point uses unless told otherwise (new-information reward, default user).
DEFAULT_ENV_ID = "ProactiveGather-v1"
#: The same user with the paper's binary reward.
DEFAULT_PAPER_ENV_ID = "ProactiveGatherPaper-v1"


def register_envs() -> None:
    """Register every id in :data:`ENV_SPECS` that is not registered yet."""
    for env_id, (entry_point, kwargs, nondeterministic) in ENV_SPECS.items():
        if env_id not in registry:
            register(
                id=env_id, entry_point=entry_point, kwargs=kwargs, nondeterministic=nondeterministic
            )


def make_env(env_id: str, **kwargs: Any) -> gym.Env:
    """``gym.make(env_id, **kwargs)`` for command lines: an unknown id or a bad argument raises
    one :class:`~clarify_gym.errors.EnvConfigError` naming it. Its message never holds task
    text (gymnasium's own message for a bad keyword repeats every argument, tasks included).

    >>> make_env("ProactiveGather-v9")
    Traceback (most recent call last):
    ...
    clarify_gym.errors.EnvConfigError: unknown env id 'ProactiveGather-v9'; registered ids: ProactiveGather-v0, ProactiveGatherPaper-v0, ProactiveGather-LLM-v0, ProactiveGatherBank-v0, ProactiveGatherBankPaper-v0, ProactiveGather-v1, ProactiveGatherPaper-v1, ProactiveGatherBank-v1, ProactiveGatherBankPaper-v1
    """
    try:
        spec = gym.spec(env_id)
    except gym.error.Error:
        raise EnvConfigError(
            f"unknown env id {env_id!r}; registered ids: {', '.join(ENV_IDS)}"
        ) from None
    try:
        return gym.make(spec, **kwargs)
    except TypeError as exc:  # a keyword the env does not take
        what = str(exc).split(" was raised from the environment creator")[0]
        raise EnvConfigError(
            f"{env_id}: {what}; see help(clarify_gym.env.ProactiveGatherEnv) for its arguments"
        ) from None
    except ValueError as exc:  # a value the env rejects (its messages name ids, not text)
        raise EnvConfigError(f"{env_id}: {exc}") from None
