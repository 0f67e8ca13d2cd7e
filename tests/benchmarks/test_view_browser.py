"""The view page in a real browser (headless Chromium): it loads with no console error, a click
on a grid cell opens the episode, the pair view shows two episodes side by side, and the
comparison of two runs lists every task. Skipped, saying why, where Chromium is absent."""

from __future__ import annotations

import shutil

import pytest
from clarify_bench.harness.view import write_view
from clarify_bench.studies.view_browser import browser_missing, click_through, open_browser

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(browser_missing() is not None, reason=str(browser_missing())),
]


def test_page_loads_without_console_errors_and_clicks_through(baseline_run, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(baseline_run, other)
    page = write_view([baseline_run, other], tmp_path / "view.html")
    with open_browser() as driver:
        seen = click_through(driver, page)
    assert seen["errors"] == []
    assert seen["grid_cells"] == 96  # 48 episodes in each of two runs
    assert seen["episode_title"].endswith("oracle on cg-medicine-03 (seed 0)")
    assert seen["turns"] == 5 and seen["hidden_header"].startswith("Hidden sentences: ")
    assert seen["checklist_marks"] > 0 and seen["pair_columns"] == 2 and not seen["stray_null"]
    assert seen["compare_rows"] == 12 and "over 12 paired tasks" in seen["compare_summary"]
