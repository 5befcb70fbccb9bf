"""Headless Chromium (Debian's, at /usr/bin/chromium or $OPENFLOAT_CHROMIUM) driven by
Playwright for the web interface's tests, and where their screenshots are kept."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Browser, Page, sync_playwright

from localmode.demo import ROOT

CHROMIUM = Path(os.environ.get("OPENFLOAT_CHROMIUM", "/usr/bin/chromium"))
# Kept after the run (make clean removes them): what each step looked like.
SCREENSHOTS = ROOT / "build" / "test-artifacts" / "web"
LAPTOP = {"width": 1366, "height": 900}
PHONE = {"width": 390, "height": 844}
# Without the background-networking flags Chromium keeps trying hosts this closed network
# refuses; the page needs nothing but the OpCenter on loopback.
_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
          "--disable-background-networking", "--disable-component-update", "--disable-sync",
          "--disable-dev-shm-usage"]


@contextmanager
def chromium() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        raise RuntimeError(f"no Chromium at {CHROMIUM}: make test installs Debian's chromium "
                           "package (or set OPENFLOAT_CHROMIUM)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                             args=_FLAGS)
        try:
            yield browser
        finally:
            browser.close()


class Watched:
    """A page whose script errors are collected: a test ends by asserting there were none."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.errors: list[str] = []
        page.on("pageerror", lambda error: self.errors.append(f"page error: {error}"))
        page.on("console", lambda message: self.errors.append(f"console: {message.text}")
                if message.type == "error" else None)

    def shot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{re.sub(r'[^a-z0-9-]+', '-', name.lower())}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def fits_its_width(self) -> bool:
        """Nothing sticks out sideways (a table may scroll inside its own box)."""
        return bool(self.page.evaluate(
            "document.documentElement.scrollWidth <= window.innerWidth + 1"))
