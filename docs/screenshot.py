"""The README's screenshot of a run report: the top of report.html in headless Chromium.

Usage: python docs/screenshot.py RUN_DIR [docs/run-report.png]
(after `nntune train examples/mnist1d.yaml --out RUN_DIR`; needs Debian's chromium and
chromium-driver, and selenium from the dev extra).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.browser import chromium  # noqa: E402


def main() -> None:
    run_dir = Path(sys.argv[1])
    out = Path(sys.argv[2]) if len(sys.argv) > 2 else ROOT / "docs" / "run-report.png"
    page = run_dir / "report.html"
    if not page.exists():
        sys.exit(f"{page} does not exist: run `nntune report {run_dir}` first")
    with chromium() as driver:
        driver.set_window_size(1200, 1900)
        driver.get(page.resolve().as_uri())
        driver.save_screenshot(str(out))
    print(out)


if __name__ == "__main__":
    main()
