"""``clarify-gym view`` in a real browser: headless Chromium loads the page, clicks through to an
episode, two episodes side by side and a task-by-task comparison, and reports console errors
and how long each page took to render.

    python -m clarify_bench.studies.view_browser RUN_DIR [RUN_DIR2] [--shots docs/]

prints the figures as JSON (write time, file size, render times) and, with ``--shots``, saves
small PNG screenshots there (``view_overview.png``, ``view_episode.png``, ``view_pair.png``).
The browser test (``tests/benchmarks/test_view_browser.py``) drives the same functions.

Needs Debian's ``chromium`` and ``chromium-driver`` (``apt-get install -y chromium
chromium-driver``) and ``selenium`` (``pip install "clarify-gym[dev]"``); the driver is the
system chromedriver, so nothing is downloaded. :func:`browser_missing` says what is absent.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["CHROMIUM_FLAGS", "browser_missing", "click_through", "main", "open_browser"]

#: Flags that keep headless Chromium off the network and quiet on this kind of machine.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--no-first-run",
    "--no-default-browser-check",
    "--window-size=1400,1000",
)


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def browser_missing() -> str | None:
    """Why the browser cannot run here (``None``: it can)."""
    if _chromium() is None or shutil.which("chromedriver") is None:
        return "Chromium is absent: apt-get install -y chromium chromium-driver"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return 'selenium is absent: pip install "clarify-gym[dev]"'
    return None


@contextlib.contextmanager
def open_browser() -> Iterator[Any]:
    """A headless Chromium under the system chromedriver, with a fresh profile folder."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    reason = browser_missing()
    if reason:
        raise RuntimeError(reason)
    with tempfile.TemporaryDirectory(prefix="clarify-view-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = str(_chromium())
        for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        driver = webdriver.Chrome(
            options=options, service=Service(executable_path=str(shutil.which("chromedriver")))
        )
        try:
            yield driver
        finally:
            driver.quit()


def _errors(driver: Any) -> list[str]:
    """Console messages of level SEVERE (errors) since the last call."""
    return [e["message"] for e in driver.get_log("browser") if e.get("level") == "SEVERE"]


def _wait(driver: Any, css: str, timeout: float = 30.0) -> Any:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(
        expected_conditions.presence_of_element_located((By.CSS_SELECTOR, css))
    )


def click_through(driver: Any, page: Path, shots: Path | None = None) -> dict[str, Any]:
    """Load ``page``, open the first oracle (else first) episode from the grid, then the pair
    view and the comparison. Returns what was seen: console errors, render times (ms), titles."""
    from selenium.webdriver.common.by import By

    seen: dict[str, Any] = {"errors": []}
    started = time.perf_counter()
    driver.get(Path(page).resolve().as_uri())
    _wait(driver, "table.grid")
    seen["overview_ms"] = round((time.perf_counter() - started) * 1000)
    seen["load_ms"] = driver.execute_script(  # navigation start to the page drawn
        "const t = performance.timing; return t.loadEventEnd - t.navigationStart;"
    )
    seen["overview_render_ms"] = round(driver.execute_script("return window.viewRenderMs;"))
    seen["errors"] += _errors(driver)
    if shots:  # the summary and the grid
        driver.execute_script("document.querySelector('details').open = false;")
        driver.save_screenshot(str(shots / "view_overview.png"))
        driver.execute_script("document.querySelector('details').open = true;")
    cells = driver.find_elements(By.CSS_SELECTOR, "table.grid .seeds a")
    seen["grid_cells"] = len(cells)
    target = next((c for c in cells if "oracle on" in (c.get_attribute("title") or "")), cells[0])
    started = time.perf_counter()
    target.click()
    _wait(driver, ".dialogue")
    seen["episode_ms"] = round((time.perf_counter() - started) * 1000)
    seen["episode_render_ms"] = round(driver.execute_script("return window.viewRenderMs;"))
    seen["episode_title"] = driver.find_element(By.CSS_SELECTOR, "main h2").text
    seen["turns"] = len(driver.find_elements(By.CSS_SELECTOR, ".turn"))
    seen["hidden_header"] = driver.find_element(
        By.XPATH, "//h3[starts-with(., 'Hidden sentences')]"
    ).text
    seen["checklist_marks"] = len(driver.find_elements(By.CSS_SELECTOR, ".met, .unmet"))
    seen["stray_null"] = driver.execute_script(
        "return /(^|\\n)null(\\n|$)/.test(document.body.innerText);"
    )
    seen["errors"] += _errors(driver)
    if shots:
        driver.save_screenshot(str(shots / "view_episode.png"))
    buttons = driver.find_elements(By.ID, "pair-go")
    if buttons:
        from selenium.webdriver.support.ui import Select

        select = Select(driver.find_element(By.ID, "pair-with"))
        labels = [o.text for o in select.options]
        select.select_by_index(next((k for k, t in enumerate(labels) if "generic" in t), 0))
        buttons[0].click()
        _wait(driver, ".cols .dialogue")
        seen["pair_columns"] = len(driver.find_elements(By.CSS_SELECTOR, "main .cols > div"))
        seen["errors"] += _errors(driver)
        if shots:
            driver.save_screenshot(str(shots / "view_pair.png"))
    driver.get(Path(page).resolve().as_uri() + "#")
    _wait(driver, "table.grid")
    compare = driver.find_elements(By.ID, "compare-go")
    if compare:
        compare[0].click()
        _wait(driver, "main ul li")
        seen["compare_rows"] = len(driver.find_elements(By.CSS_SELECTOR, "main table tr")) - 1
        seen["compare_summary"] = driver.find_element(By.CSS_SELECTOR, "main ul li").text
    seen["errors"] += _errors(driver)
    return seen


def _shrink(path: Path) -> None:
    """Save a screenshot as a smaller palette PNG (Pillow comes with matplotlib)."""
    from PIL import Image

    with Image.open(path) as image:
        small = image.convert("RGB").quantize(colors=256)
        small.save(path, optimize=True)


def main(argv: list[str] | None = None) -> int:
    """Write the page of the given runs, click through it, print the figures as JSON."""
    from clarify_bench.harness.view import write_view

    parser = argparse.ArgumentParser(prog="python -m clarify_bench.studies.view_browser")
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    parser.add_argument("--out", default=None, help="page to write (default: a temporary file)")
    parser.add_argument("--shots", default=None, help="folder for the PNG screenshots")
    args = parser.parse_args(argv)
    reason = browser_missing()
    if reason:
        print(f"view_browser: error: {reason}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(args.out or Path(tmp) / "view.html")
        started = time.perf_counter()
        write_view([Path(d) for d in args.run_dirs], page)
        figures: dict[str, Any] = {
            "write_s": round(time.perf_counter() - started, 3),
            "bytes": page.stat().st_size,
        }
        shots = Path(args.shots) if args.shots else None
        if shots:
            shots.mkdir(parents=True, exist_ok=True)
        with open_browser() as driver:
            figures.update(click_through(driver, page, shots))
        if shots:
            for name in ("view_overview.png", "view_episode.png", "view_pair.png"):
                if (shots / name).exists():
                    _shrink(shots / name)
    print(json.dumps(figures, indent=2))
    return 1 if figures["errors"] else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
