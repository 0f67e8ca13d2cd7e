"""Adapters for cluster RL engines: verl (:mod:`agents.integrations.verl`, an AgentLoop) and SkyRL
(:mod:`agents.integrations.skyrl`, a ``BaseTextEnv``). Each engine is an optional dependency,
imported only by its adapter; :mod:`agents.integrations.dataset` writes the parquet rows both
read. See ``docs/scaling_out.md``."""
