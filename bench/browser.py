"""Headless Debian Chromium through chromium-driver (selenium): the console bench and tests.

Flags: no sandbox (root in containers), no GPU, no QUIC, and nothing that reaches the
network on its own (first-run, background networking, component updates, sync); every
browser gets a fresh profile directory, removed afterwards.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
MISSING = (
    "headless Chromium is not installed "
    "(apt-get install -y chromium chromium-driver; .ci/run does it on CI)"
)


def find_chromium() -> tuple[str, str] | None:
    """Paths of Debian's ``chromium`` and ``chromedriver``, or None when either is missing."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


@contextmanager
def chromium(paths: tuple[str, str], width: int = 1400, height: int = 1000) -> Iterator[Any]:
    """A selenium WebDriver on a fresh headless Chromium profile, quit afterwards."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver_path = paths
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    with tempfile.TemporaryDirectory(prefix="console-chromium-") as profile:
        for flag in CHROMIUM_FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--window-size={width},{height}")
        options.add_argument(f"--user-data-dir={profile}")
        # The page's console messages and failed loads (a 404), for driver.get_log("browser").
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        # An explicit driver path: selenium's driver manager never downloads anything.
        driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
        try:
            yield driver
        finally:
            driver.quit()
