"""SkyRL's training config with a section for the ProactiveGather env (needs SkyRL's trainer).

SkyRL builds its config from typed dataclasses and rejects any key they do not declare
(``ValueError: Invalid fields {'proactive_gather'} for SkyRLGymConfig``); its documented way to
add settings is to subclass them. :class:`ProactiveGatherTrainConfig` is SkyRL's
``SkyRLTrainConfig`` whose ``environment.skyrl_gym`` also has ``proactive_gather``
(:class:`ProactiveGatherEnvConfig`), and whose ``environment.env_class`` defaults to
``proactive_gather``. SkyRL's generator hands ``environment.skyrl_gym.<env_class>`` to every env
it makes, so these overrides reach :class:`~clarify_agents.integrations.skyrl.ProactiveGatherTextEnv`::

    environment.skyrl_gym.proactive_gather.env_id=ProactiveGather-LLM-v0
    environment.skyrl_gym.proactive_gather.env_kwargs.max_questions=5

:mod:`clarify_agents.integrations.skyrl_main` parses its command line with it.
"""

# No ``from __future__ import annotations`` here: SkyRL builds nested configs from the fields'
# real types (``dataclasses.fields(...).type``), which that import would turn into strings.

from dataclasses import dataclass, field
from typing import Any

from skyrl.train.config import EnvironmentConfig, SkyRLGymConfig, SkyRLTrainConfig
from skyrl.train.config.config import BaseConfig

from clarify_agents.integrations.dataset import ENV_CLASS

__all__ = [
    "ProactiveGatherEnvConfig",
    "ProactiveGatherEnvironmentConfig",
    "ProactiveGatherSkyRLGymConfig",
    "ProactiveGatherTrainConfig",
]


@dataclass
class ProactiveGatherEnvConfig(BaseConfig):
    """``environment.skyrl_gym.proactive_gather``: overrides of the dataset rows' episode settings."""

    env_id: str | None = None
    """Gymnasium env id for every episode (None: the rows' own, see clarify_agents.integrations.dataset)."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """gym.make keyword arguments merged over the rows' (e.g. max_questions)."""


@dataclass
class ProactiveGatherSkyRLGymConfig(SkyRLGymConfig):
    """SkyRL's ``environment.skyrl_gym`` with the ProactiveGather section."""

    proactive_gather: ProactiveGatherEnvConfig = field(default_factory=ProactiveGatherEnvConfig)
    """Settings of the proactive_gather env."""


@dataclass
class ProactiveGatherEnvironmentConfig(EnvironmentConfig):
    """SkyRL's ``environment`` with ``env_class`` defaulting to ``proactive_gather``."""

    env_class: str = ENV_CLASS
    """The skyrl_gym env id of rows without their own env_class."""
    skyrl_gym: ProactiveGatherSkyRLGymConfig = field(default_factory=ProactiveGatherSkyRLGymConfig)
    """Per-env settings."""


@dataclass
class ProactiveGatherTrainConfig(SkyRLTrainConfig):
    """SkyRL's training config, with the ProactiveGather env section (see the module docstring)."""

    environment: ProactiveGatherEnvironmentConfig = field(
        default_factory=ProactiveGatherEnvironmentConfig
    )
    """Environment settings."""
