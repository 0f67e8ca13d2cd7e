"""Adapters to other RL libraries.

* :mod:`clarify_gym.integrations.trl` — TRL reward functions and prompt datasets (GRPO).
* :mod:`clarify_gym.integrations.sb3` — train and evaluate stable-baselines3 agents on
  ``ProactiveGatherBank-v0`` against the random and generic bank policies.

Nothing here is imported by ``import clarify_gym``; each module imports its heavy dependency
(``datasets``, ``stable_baselines3``) inside the functions that need it.
"""
