"""Token-level multi-turn PPO for LLM questioners (LoRA, one shared backbone, accelerate).

Modules, in reading order: :mod:`~agents.ppo.config` (dataclass settings), :mod:`~agents.ppo.presets`,
:mod:`~agents.ppo.core` (masked statistics, GAE, PPO losses), :mod:`~agents.ppo.model` (policy,
reference and value head on one backbone), :mod:`~agents.ppo.rollout` (multi-turn episodes as
token sequences), :mod:`~agents.ppo.trainer` (the loop), :mod:`~agents.ppo.checkpoint`,
(the checkpoint format), :mod:`~agents.ppo.logs` and :mod:`~agents.ppo.cli`
(``clarify-gym train``); the tiny model is built in :mod:`agents.models`, and
:mod:`benchmarks.memory_budget` computes the GPU memory budget of a preset. Importing this
package is light: torch and transformers load only in the modules that need them.
"""

from agents.ppo.config import TrainConfig
from agents.ppo.presets import PRESETS, preset

__all__ = ["PRESETS", "TrainConfig", "preset"]
