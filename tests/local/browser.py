"""Headless Debian Chromium driven by chromium-driver (selenium), for the web console tests.

Missing browser: the test skips with the reason on a developer machine, and fails under CI
(``CI=true``), where ``.ci/run`` installs ``chromium`` and ``chromium-driver``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

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


def find_browser() -> tuple[str, str]:
    """Paths of chromium and chromedriver, or skip (locally) / fail (under CI)."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if browser and driver:
        return browser, driver
    reason = (
        "headless Chromium is not installed (apt-get install -y chromium chromium-driver; "
        ".ci/run does it on CI)"
    )
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI is set but {reason}")
    pytest.skip(reason)


@contextmanager
def chromium(width: int = 1400, height: int = 1000) -> Iterator[object]:
    """A selenium WebDriver on a fresh headless Chromium profile, quit afterwards."""
    browser, driver_path = find_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = browser
    with tempfile.TemporaryDirectory(prefix="console-chromium-") as profile:
        for flag in CHROMIUM_FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--window-size={width},{height}")
        options.add_argument(f"--user-data-dir={profile}")
        driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
        try:
            yield driver
        finally:
            driver.quit()
