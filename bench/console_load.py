"""The web console's load time: navigation start to every panel drawn with data.

A local stack runs as a subprocess with a live session (a speaker and three listeners over
real WebSockets, so every panel has rows and the charts have points). Headless Chromium
loads ``/_local/console`` ``loads`` times; the page records ``performance.now()`` (which
counts from the navigation's start) once the alarms, sessions, logs and charts have all been
drawn from their first responses, in ``body[data-loaded]``. The first load has a cold HTTP
cache; the page sends ``Cache-Control: no-store`` so every load fetches everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.browser import MISSING, chromium, find_chromium
from bench.report import Section, fmt_ms, median, percentile

LOAD_TIMEOUT_S = 30.0
LISTENER_LANGUAGES = ("es", "fr", "de")


async def _live_session(url: str, token: str) -> list[Any]:
    from client.connection import connect_service

    speaker = await connect_service(url, token, open_timeout=30)
    await speaker.send('{"action": "createSession", "sourceLanguage": "en"}')
    session_id = json.loads(await asyncio.wait_for(speaker.recv(), 30))["sessionId"]
    sockets = [speaker]
    for lang in LISTENER_LANGUAGES:
        listener = await connect_service(url, open_timeout=30)
        await listener.send(
            json.dumps({"action": "joinSession", "sessionId": session_id, "targetLanguage": lang})
        )
        await asyncio.wait_for(listener.recv(), 30)
        sockets.append(listener)
    return sockets


def measure(loads: int = 10) -> tuple[list[float], float]:
    """Load times (ms) of ``loads`` page loads, and the browser's own start time (s)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from client.local_stack import fetch_token
    from local.process import StackProcess

    paths = find_chromium()
    assert paths is not None, MISSING
    with tempfile.TemporaryDirectory(prefix="bench-console-") as logs:
        stack = StackProcess((), Path(logs), "console").start()
        loop = asyncio.new_event_loop()
        try:
            token = fetch_token("bench", stack.port)
            sockets = loop.run_until_complete(_live_session(stack.url, token))
            url = f"http://127.0.0.1:{stack.port}/_local/console"
            started = time.perf_counter()
            with chromium(paths) as driver:
                browser_s = time.perf_counter() - started
                times = []
                for _ in range(loads):
                    driver.get(url)
                    loaded = WebDriverWait(driver, LOAD_TIMEOUT_S).until(
                        lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-loaded")
                    )
                    times.append(float(loaded))
            for ws in sockets:
                loop.run_until_complete(ws.close())
        finally:
            loop.close()
            with contextlib.suppress(Exception):
                stack.stop()
    return times, browser_s


def console_section(loads: int = 10) -> Section:
    section = Section("Web console (headless Chromium)")
    if find_chromium() is None:
        section.add("(not run)", "—", "", "SKIPPED")
        section.notes.append(MISSING)
        return section
    times, browser_s = measure(loads)
    section.add(
        "console load, navigation → every panel drawn with data: first load",
        fmt_ms(times[0] / 1000),
        "a live session with 3 listeners",
    )
    section.add(
        f"console load, next {len(times) - 1} loads: p50 / p95",
        f"{fmt_ms(median(times[1:]) / 1000)} / {fmt_ms(percentile(times[1:], 95) / 1000)}",
        "no-store: every load fetches the page, its script and style and its JSON",
    )
    section.add("headless Chromium start (not part of the load)", fmt_ms(browser_s), "")
    return section
