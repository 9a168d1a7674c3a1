"""The web console in a real browser: headless Chromium against a running local stack.

The try-it panel creates a session as a speaker and joins it as a listener over the real
WebSocket protocol; the sessions list, the log panel and the page's own API must show them.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from local.process import StackProcess
from tests.local.browser import browser
from tests.local.local_support import launch, wait_for

pytestmark = pytest.mark.slow
LOAD_TIMEOUT_S = 30


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[StackProcess]:
    yield from launch(tmp_path, "console")


def console_url(stack: StackProcess) -> str:
    return f"http://127.0.0.1:{stack.port}/_local/console"


def get_json(stack: StackProcess, path: str) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{stack.port}{path}", timeout=10) as response:
        return json.loads(response.read())


def test_try_it_panel_creates_and_joins_a_session_seen_in_the_sessions_list(stack):
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
        assert "stack dev" in driver.find_element(By.ID, "stack").text

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

        # The same state through the API the page uses.
        (session,) = [
            s
            for s in get_json(stack, "/_local/sessions")["sessions"]
            if s["sessionId"] == session_id
        ]
        assert session["sourceLanguage"] == "de"
        assert session["listenersByLanguage"] == {"fr": 1}
        assert session["listenerCount"] == 1 and session["ageSeconds"] >= 0

    # The browser is gone, and with it the speaker: the session ends and leaves the list.
    assert wait_for(lambda: not get_json(stack, "/_local/sessions")["sessions"])
