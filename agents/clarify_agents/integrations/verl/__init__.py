"""verl adapter: ProactiveGather episodes as a verl AgentLoop (verl 0.9.1).

* :mod:`.agent_loop` (needs verl): ``ProactiveGatherAgentLoop``, registered as
  ``proactive_gather`` (the rows' ``agent_name``), plays one episode through verl's server
  manager, token in, token out; ``ProactiveGatherAgentLoopManager`` (set
  ``actor_rollout_ref.rollout.agent.agent_loop_manager_class``) puts each question's reward on
  that question's last token instead of the whole return on the last token.
* :mod:`.rewards` (no verl): the token bookkeeping those two share, tested on its own.

Example configs are in ``agents/clarify_agents/integrations/configs/``; see ``docs/scaling_out.md``.
"""
