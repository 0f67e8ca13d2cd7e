"""clarify-gym: Gymnasium environments for LLMs that gather information proactively.

>>> import clarify_gym as cg
>>> len(cg.load_tasks("sample")) >= 30
True
"""

from __future__ import annotations

from clarify_gym.errors import (
    ClarifyGymError,
    DatasetUnavailableError,
    EpisodeEndedError,
    LLMError,
    MissingDependencyError,
    TaskFormatError,
)
from clarify_gym.masking import (
    DEFAULT_POLICY,
    ChecklistItem,
    MaskedTask,
    MaskPolicy,
    Sentence,
    mask,
)
from clarify_gym.registration import DEFAULT_ENV_ID, DEFAULT_PAPER_ENV_ID, ENV_IDS, register_envs
from clarify_gym.tasks import Task, load_tasks

register_envs()

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_ENV_ID",
    "DEFAULT_PAPER_ENV_ID",
    "DEFAULT_POLICY",
    "ENV_IDS",
    "ChecklistItem",
    "ClarifyGymError",
    "DatasetUnavailableError",
    "EpisodeEndedError",
    "LLMError",
    "MaskPolicy",
    "MaskedTask",
    "MissingDependencyError",
    "Sentence",
    "Task",
    "TaskFormatError",
    "__version__",
    "load_tasks",
    "mask",
    "register_envs",
]
