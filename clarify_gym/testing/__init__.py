"""Test doubles for clarify-gym's network dependencies: a fake OpenAI-compatible server.

:class:`FakeLLMServer` serves real HTTP on 127.0.0.1, answers the user-oracle, writer, judge,
checklist-builder and agent prompts meaningfully (with the offline parts behind them) and
injects faults on demand (see :mod:`clarify_gym.testing.server`). Standard library only.

Run one by hand for a demo (``--latency`` in seconds)::

    python -m clarify_gym.testing --port 8000 --latency 0.2
    CLARIFY_GYM_LLM_BASE_URL=http://127.0.0.1:8000/v1 python -c "import gymnasium as gym, clarify_gym; ..."
"""

from __future__ import annotations

from clarify_gym.testing.responders import Responder, detect_role, parse_numbered_document
from clarify_gym.testing.server import FAULTS, FakeLLMServer, Fault, ServerStats

__all__ = [
    "FAULTS",
    "FakeLLMServer",
    "Fault",
    "Responder",
    "ServerStats",
    "detect_role",
    "parse_numbered_document",
]
