"""Headless Chromium for report tests (Debian's chromium + chromium-driver, driven by Selenium).

`.ci/run` installs both packages; tests skip only when the browser binary is missing.
Selenium is given the driver's path, so its driver manager never downloads anything.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")

needs_chromium = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="Debian's chromium and chromium-driver are not installed (.ci/run installs them)",
)

# What every chart of a report must show once the page has loaded: inline SVG charts
# (matplotlib) with drawn paths, and plotly figures with at least one drawn trace.
PLOT_CHECK = """
const charts = Array.from(document.querySelectorAll('figure.chart svg')).map(svg => ({
  kind: 'svg', drawn: svg.querySelectorAll('path, use, rect, image').length,
  width: svg.getBoundingClientRect().width}));
const plotly = Array.from(document.querySelectorAll('.js-plotly-plot')).map(div => ({
  kind: 'plotly',
  drawn: div.querySelectorAll('.main-svg .trace, .main-svg .scatterlayer path, ' +
    '.main-svg .barlayer path, .main-svg image, .main-svg .contourlayer path, ' +
    '.main-svg .parcoords, .main-svg .hm').length +
    div.querySelectorAll('canvas').length,
  width: div.getBoundingClientRect().width}));
return charts.concat(plotly);
"""


@dataclass
class Loaded:
    errors: list[str]
    plots: list[dict[str, Any]]
    title: str
    text: str
    screenshot: Path


@contextmanager
def chromium() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-default-apps",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1280,2000",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def load_report(driver: Any, page: Path, screenshot: Path) -> Loaded:
    """Open ``page`` from a file URL, wait for it to load, and collect console errors, the
    state of every plot, and a full-height screenshot."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(page.resolve().as_uri())
    WebDriverWait(driver, 60).until(
        lambda d: d.execute_script("return document.readyState") == "complete"
    )
    plots = driver.execute_script(PLOT_CHECK)
    errors = [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    height = driver.execute_script("return document.body.scrollHeight")
    driver.set_window_size(1280, min(max(int(height) + 40, 600), 16000))
    driver.save_screenshot(str(screenshot))
    return Loaded(
        errors=errors,
        plots=plots,
        title=driver.title,
        text=driver.execute_script("return document.body.innerText"),
        screenshot=screenshot,
    )
