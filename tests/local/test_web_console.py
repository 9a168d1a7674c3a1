"""The web console in a real browser: headless Chromium against a running local stack.

The try-it panel creates a session as a speaker and joins it as a listener over the real
WebSocket protocol; the sessions list, the charts, the log panel and the page's own API must
show them. Then a fire drill runs against the stack and the page must show its alarm turn red
(ALARM) and then green (OK) again.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from local.drills.runner import DRILLS, find_alarm
from local.process import StackProcess, project_root
from tests.local.browser import browser
from tests.local.local_support import launch, wait_for

pytestmark = pytest.mark.slow
LOAD_TIMEOUT_S = 30
DRILL = "server-errors"
DRILL_TIMEOUT_S = 240
# The state badge colours of console.css (--alarm, --ok), as the browser computes them.
RED, GREEN = "rgba(209, 50, 18, 1)", "rgba(29, 129, 2, 1)"
# The page refreshes every 2 s: after the drill has seen OK, the page may still show ALARM.
PAGE_LAG_S = 15


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[StackProcess]:
    # Alarm periods ×60 faster, so the drill fires and clears its alarm in about a minute.
    yield from launch(tmp_path, "console", "--alarm-time-scale", "60")


def console_url(stack: StackProcess) -> str:
    return f"http://127.0.0.1:{stack.port}/_local/console"


def get_json(stack: StackProcess, path: str) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{stack.port}{path}", timeout=10) as response:
        return json.loads(response.read())


def test_console_shows_a_try_it_session_its_charts_and_a_drills_alarm_firing_and_clearing(stack):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import Select, WebDriverWait

    with browser() as driver:
        wait = WebDriverWait(driver, LOAD_TIMEOUT_S)
        driver.get(console_url(stack))
        loaded = wait.until(
            lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-loaded")
        )
        assert int(loaded) > 0
        assert driver.find_element(By.ID, "stack").text == "stack dev · alarm time ×60"

        Select(driver.find_element(By.ID, "try-source")).select_by_visible_text("de")
        driver.find_element(By.ID, "try-create").click()
        session_id = wait.until(
            lambda d: d.find_element(By.ID, "try-session-id").get_attribute("value")
        )
        assert session_id.count("-") == 2, session_id

        Select(driver.find_element(By.ID, "try-target")).select_by_visible_text("fr")
        driver.find_element(By.ID, "try-join").click()
        row = (By.CSS_SELECTOR, f'#sessions tr[data-session-id="{session_id}"][data-listeners="1"]')
        wait.until(ec.presence_of_element_located(row))
        cells = driver.find_element(*row).find_elements(By.TAG_NAME, "td")
        assert cells[1].text.startswith("de")
        assert cells[3].text == "fr 1"

        # The try-it panel saw the protocol's replies on its own sockets.
        messages = driver.find_element(By.ID, "try-messages").text
        assert f"sessionCreated {session_id}" in messages
        assert f"sessionJoined {session_id}" in messages

        # The log panel, filtered by this session, shows the two operations.
        driver.find_element(By.ID, "log-session").send_keys(session_id)
        driver.execute_script(
            "document.getElementById('log-session').dispatchEvent(new Event('change'))"
        )
        wait.until(lambda d: "joinSession" in d.find_element(By.ID, "logs").text)
        operations = {
            cell.text
            for cell in driver.find_elements(By.CSS_SELECTOR, "#logs tbody td:nth-child(4)")
        }
        assert {"createSession", "joinSession"} <= operations

        # Unfollowed, the log panel holds still (the scheduled functions log every second at
        # time ×60); followed again, it moves on.
        driver.find_element(By.ID, "log-session").clear()
        driver.execute_script(
            "document.getElementById('log-session').dispatchEvent(new Event('change'))"
        )
        wait.until(lambda d: "sweeper" in d.find_element(By.ID, "logs").text)
        driver.find_element(By.ID, "log-follow").click()
        time.sleep(1)  # a refresh already under way when unfollowed may still land
        first_row = "#logs tbody tr:first-child td:first-child"
        held = driver.find_element(By.CSS_SELECTOR, first_row).text
        time.sleep(3)
        assert driver.find_element(By.CSS_SELECTOR, first_row).text == held
        driver.find_element(By.ID, "log-follow").click()
        wait.until(lambda d: d.find_element(By.CSS_SELECTOR, first_row).text != held)

        # The same state through the API the page uses.
        (session,) = [
            s
            for s in get_json(stack, "/_local/sessions")["sessions"]
            if s["sessionId"] == session_id
        ]
        assert session["sourceLanguage"] == "de"
        assert session["listenersByLanguage"] == {"fr": 1}
        assert session["listenerCount"] == 1 and session["ageSeconds"] >= 0

        # The dashboard's charts draw that join from the metrics (refreshed every 5 s).
        join_chart = '.chart[data-title="ListenerJoinLatency (ms)"] .legend'
        legend = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, join_chart).text)
        assert "p95" in legend

        # Every alarm of the stack has a tile, in the evaluator's order.
        names = [a["name"] for a in get_json(stack, "/_local/alarms")]
        tiles = driver.find_elements(By.CSS_SELECTOR, "#alarms .alarm")
        assert [t.get_attribute("data-name") for t in tiles] == names

        seen = watch_drill(driver, stack, DRILL)
        states = [state for state, _ in seen]
        assert "ALARM" in states and "OK" in states[states.index("ALARM") :], seen
        colours = dict(seen)
        assert colours["ALARM"] == RED and colours["OK"] == GREEN

    # The browser is gone, and with it the speaker: the session ends and leaves the list.
    assert wait_for(lambda: not get_json(stack, "/_local/sessions")["sessions"])


def watch_drill(driver, stack: StackProcess, name: str) -> list[tuple[str, str]]:
    """Run the drill against the stack; the drill's alarm tile's states (and badge colours)
    as the page showed them, in order, each once per change, until ALARM then OK."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.by import By

    target = find_alarm(get_json(stack, "/_local/alarms"), DRILLS[name])["name"]
    tile = f'#alarms .alarm[data-name="{target}"]'
    assert wait_for(
        lambda: driver.find_element(By.CSS_SELECTOR, tile).get_attribute("data-state") == "OK",
        timeout=LOAD_TIMEOUT_S,
    ), "the drill's alarm never showed OK before the drill"
    # A file, not a pipe: the drill never blocks writing to it.
    with tempfile.TemporaryFile("w+") as log:
        drill = subprocess.Popen(
            [sys.executable, "-m", "local", "drill", name, "--port", str(stack.port)],
            cwd=project_root(),
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        seen: list[tuple[str, str]] = []
        deadline = time.monotonic() + DRILL_TIMEOUT_S

        def cleared() -> bool:
            states = [state for state, _ in seen]
            return "ALARM" in states and "OK" in states[states.index("ALARM") :]

        try:
            while time.monotonic() < deadline and not cleared():
                if drill.poll() is not None:  # the drill is over: the page has PAGE_LAG_S more
                    deadline = min(deadline, time.monotonic() + PAGE_LAG_S)
                try:  # the tile is redrawn every refresh: read it whole, retry if it just went
                    element = driver.find_element(By.CSS_SELECTOR, tile)
                    state = element.get_attribute("data-state")
                    badge = element.find_element(By.CSS_SELECTOR, ".state")
                    colour = badge.value_of_css_property("background-color")
                except WebDriverException:
                    state = None
                if state is not None and (not seen or seen[-1][0] != state):
                    seen.append((state, colour))
                time.sleep(0.2)
            drill.wait(timeout=DRILL_TIMEOUT_S)
        finally:
            if drill.poll() is None:
                drill.kill()
                drill.wait()
            log.seek(0)
            output = log.read()
    assert drill.returncode == 0, output
    return seen
