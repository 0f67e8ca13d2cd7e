"""Token-level multi-turn PPO for LLM questioners (LoRA, one shared backbone, accelerate).

Modules, in reading order: :mod:`~clarify_agents.ppo.config` (dataclass settings), :mod:`~clarify_agents.ppo.presets`,
:mod:`~clarify_agents.ppo.core` (masked statistics, GAE, PPO losses), :mod:`~clarify_agents.ppo.model` (policy,
reference and value head on one backbone), :mod:`~clarify_agents.ppo.rollout` (multi-turn episodes as
token sequences), :mod:`~clarify_agents.ppo.trainer` (the loop), :mod:`~clarify_agents.ppo.checkpoint`,
(the checkpoint format), :mod:`~clarify_agents.ppo.logs` and :mod:`~clarify_agents.ppo.cli`
(``clarify-gym train``); the tiny model is built in :mod:`clarify_agents.models`, and
:mod:`clarify_bench.studies.memory_budget` computes the GPU memory budget of a preset. Importing this
package is light: torch and transformers load only in the modules that need them.
"""

from clarify_agents.ppo.config import TrainConfig
from clarify_agents.ppo.presets import PRESETS, preset

__all__ = ["PRESETS", "TrainConfig", "preset"]
