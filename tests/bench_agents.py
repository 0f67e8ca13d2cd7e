"""Agents used by the harness tests through ``py:bench_agents:...`` specs."""

from __future__ import annotations

import os
import time
from pathlib import Path

from clarify_agents.base import STOP, Agent
from clarify_agents.baselines import GenericAgent


class SlowGeneric(GenericAgent):
    """The generic agent, pausing before each episode's first question (so a test can kill the
    run mid-way)."""

    name = "slow-generic"

    def act(self, observation: str) -> str:
        if self._asked == 0:
            time.sleep(0.03)
        return super().act(observation)


class FailsOnLaw(Agent):
    """Raises on the law task (an API error, say), asks one question elsewhere."""

    name = "fails-on-law"

    def __init__(self) -> None:
        self._asked = False

    def reset(self, *, seed=None, task=None) -> None:
        self._asked = False

    def act(self, observation: str) -> str:
        if "internal legal memorandum" in observation:
            raise ConnectionError("the endpoint is down")
        if self._asked:
            return STOP
        self._asked = True
        return "What steps should I follow?"


class AlwaysFails(Agent):
    """Every act raises."""

    def act(self, observation: str) -> str:
        raise RuntimeError("broken agent")


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


class FailsOnLawOnce(FailsOnLaw):
    """:class:`FailsOnLaw` the first time this process meets the law task, fine after (an
    endpoint that came back)."""

    name = "fails-on-law-once"
    failed: set[str] = set()  # noqa: RUF012  (process-wide on purpose)

    def act(self, observation: str) -> str:
        if "internal legal memorandum" in observation and "law" not in FailsOnLawOnce.failed:
            FailsOnLawOnce.failed.add("law")
            raise ConnectionError("the endpoint is down")
        if self._asked:
            return STOP
        self._asked = True
        return "What steps should I follow?"
