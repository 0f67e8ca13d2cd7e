"""Adapters for cluster RL engines: verl (:mod:`clarify_agents.integrations.verl`, an AgentLoop) and SkyRL
(:mod:`clarify_agents.integrations.skyrl`, a ``BaseTextEnv``). Each engine is an optional dependency,
imported only by its adapter; :mod:`clarify_agents.integrations.dataset` writes the parquet rows both
read. See ``docs/scaling_out.md``."""
