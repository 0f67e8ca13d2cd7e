"""Agents for the Ray harness tests (``py:ray_agents:...`` specs)."""

from __future__ import annotations

import os
from pathlib import Path

from agents.baselines import GenericAgent


class DiesOnce(GenericAgent):
    """The generic agent, whose process exits in the middle of its ``after``-th episode (one
    question asked) the first time any process runs it: ``marker`` records that it did, and the
    pid that died."""

    name = "dies-once"

    def __init__(self, marker: str, after: int = 3) -> None:
        super().__init__()
        self.marker, self.after, self.episodes = Path(marker), after, 0

    def reset(self, *, seed=None, task=None) -> None:
        super().reset(seed=seed, task=task)
        self.episodes += 1

    def act(self, observation: str) -> str:
        if self.episodes >= self.after and self._asked == 1 and not self.marker.exists():
            self.marker.write_text(str(os.getpid()))
            os._exit(1)  # a worker lost mid-episode: no exception, no reply
        return super().act(observation)
