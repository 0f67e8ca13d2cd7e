"""A prompt longer than a real llama-server's context fails that request and leaves structured
output on for the next one (issue 31). Marked ``llama_server``: skipped unless asked for
(``scripts/test-llama`` runs ``pytest -m llama_server``); minutes of CPU."""

from __future__ import annotations

import pytest
from clarify_bench.studies.llama_context import ContextConfig, measure

pytestmark = [pytest.mark.llama_server, pytest.mark.timeout(3000)]


def test_context_overflow_keeps_the_schema_for_the_restarted_server(tmp_path):
    result = measure(ContextConfig(out=str(tmp_path)))
    small, restarted = result["phases"]["small_context"], result["phases"]["restarted"]
    assert result["overflow_is_an_error"], small  # llama-server's own 400, not retried
    assert (
        result["schema_kept_after_overflow"]
        and small["client_after"]["requests"].get("fallbacks", 0) == 0
    )
    assert result["restarted_parsed_first_try"] and result["fallbacks"] == 0, restarted
