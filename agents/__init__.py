"""Agents for ProactiveGather, behind one interface (:class:`agents.base.Agent`)."""

from agents.base import STOP, Agent

__all__ = ["STOP", "Agent"]
