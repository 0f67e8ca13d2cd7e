"""Agents for ProactiveGather, behind one interface (:class:`clarify_agents.base.Agent`)."""

from clarify_agents.base import STOP, Agent

__all__ = ["STOP", "Agent"]
