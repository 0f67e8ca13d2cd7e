"""Adapters for cluster RL engines: verl (:mod:`clarify_agents.integrations.verl`, an AgentLoop) and SkyRL
(:mod:`clarify_agents.integrations.skyrl`, a ``BaseTextEnv``). Each engine is an optional dependency,
imported only by its adapter; :mod:`clarify_agents.integrations.dataset` writes the parquet rows both
read. The example training commands ship in :data:`CONFIGS` (also in an installed wheel); see
``docs/scaling_out.md``.

>>> sorted(p.name for p in CONFIGS.glob("*_8gpu.sh"))
['verl_qwen2.5_7b_ppo_8gpu.sh']
"""

from pathlib import Path

__all__ = ["CONFIGS"]

#: The folder of the example configs: ``bash "$(python -c 'from clarify_agents.integrations
#: import CONFIGS; print(CONFIGS)')/verl_qwen2.5_7b_ppo_8gpu.sh"``.
CONFIGS = Path(__file__).resolve().parent / "configs"
