"""The env side of adapters to other RL libraries (trainers live in :mod:`agents`: :mod:`clarify_agents.sb3`,
:mod:`clarify_agents.trl`).

* :mod:`clarify_gym.integrations.sb3` — evaluate stable-baselines3 models on
  ``ProactiveGatherBank-v0`` task by task, beside reference bank policies (random, generic,
  best fixed sequence).

Nothing here is imported by ``import clarify_gym``; each module imports its heavy dependency
(``datasets``, ``stable_baselines3``) inside the functions that need it.
"""
