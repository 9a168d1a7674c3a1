"""The web console in a real browser: headless Chromium against a running local stack.

The try-it panel creates a session as a speaker and joins it as a listener over the real
WebSocket protocol; the sessions list, the charts, the log panel and the page's own API must
show them. Then a fire drill runs against the stack and the page must show its alarm turn red
(ALARM) and then green (OK) again. All along, the page must hold up: widgets in the
dashboard's order, every alarmed metric with its threshold, gaps drawn as gaps, legends that
say what they show, labels that overlap nothing, a red tile never beside a widget of its
metric saying "no data", each tile linking its runbook, errors shown with code and message,
refused listeners shown as refused, and nothing missing (no 404) in the browser's log.
"""

from __future__ import annotations

import itertools
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
from runtime import dashboard
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

        check_the_page_holds_up(driver, stack)
        # From here on, the page records every moment a red tile sits beside a widget of its
        # metric that says "no data" (a MutationObserver: every redraw is seen).
        driver.execute_script(WATCH_NO_DATA_BESIDE_RED)

        seen = watch_drill(
            driver, stack, DRILL, during=lambda: check_the_page_holds_up(driver, stack)
        )
        states = [state for state, _ in seen]
        assert "ALARM" in states and "OK" in states[states.index("ALARM") :], seen
        colours = dict(seen)
        assert colours["ALARM"] == RED and colours["OK"] == GREEN
        reds = driver.execute_script("return window.__redSeen")
        assert reds, "the page never showed a red tile to check its widgets against"
        assert driver.execute_script("return window.__noDataBesideRed") == []
        check_the_page_holds_up(driver, stack)
        assert_no_failed_loads(driver)

    # The browser is gone, and with it the speaker: the session ends and leaves the list.
    assert wait_for(lambda: not get_json(stack, "/_local/sessions")["sessions"])


def test_try_it_shows_each_error_with_its_message_and_a_refused_listener_as_refused(stack):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    with browser() as driver:
        wait = WebDriverWait(driver, LOAD_TIMEOUT_S)
        driver.get(console_url(stack))
        wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-loaded"))
        driver.find_element(By.ID, "try-session-id").send_keys("quiet-otter-999")
        driver.find_element(By.ID, "try-join").click()
        refused = '#try-sockets li[data-role="listener"][data-refused]:not([data-refused=""])'
        item = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, refused))
        assert item.get_attribute("data-refused") == "SESSION_NOT_FOUND"
        assert item.get_attribute("data-open") == "false"
        assert "refused: SESSION_NOT_FOUND" in item.text and "open" not in item.text
        # The socket is closed, not kept as if it had joined.
        wait.until(lambda d: d.execute_script("return state.sockets[0].ws.readyState") == 3)
        messages = driver.find_element(By.ID, "try-messages").text
        line = next(m for m in messages.splitlines() if "error SESSION_NOT_FOUND" in m)
        code_and_message = line.split("error SESSION_NOT_FOUND", 1)[1]
        assert code_and_message.startswith(": ") and len(code_and_message) > 10, line
        assert_no_failed_loads(driver)


def assert_no_failed_loads(driver) -> None:
    """Nothing the page asked for was missing: no 404 (a favicon…), no script error."""
    entries = driver.get_log("browser")
    bad = [e for e in entries if e["level"] == "SEVERE"]
    assert not bad, bad


# Installed in the page: records every moment (DOM mutation) when an alarm tile is red and a
# widget drawing its metric says "no data".
WATCH_NO_DATA_BESIDE_RED = """
window.__noDataBesideRed = [];
window.__redSeen = 0;
const check = () => {
  for (const tile of document.querySelectorAll('#alarms .alarm[data-state="ALARM"]')) {
    window.__redSeen += 1;
    const metric = tile.dataset.metric;
    for (const chart of document.querySelectorAll('#charts .chart')) {
      const drawn = (chart.dataset.metrics || '').split(' ');
      if (drawn.includes(metric) && chart.classList.contains('nodata')) {
        window.__noDataBesideRed.push(`${tile.dataset.name} red beside "${chart.dataset.title}"`);
      }
    }
  }
};
new MutationObserver(check).observe(document.body, {subtree: true, childList: true,
                                                    attributes: true});
"""

# The page as drawn right now, read in one go (one script run: no redraw in between): every
# chart with its pieces of lines, legend, threshold labels, every label's rectangle and the
# plot area; every alarm tile with its runbook link.
PAGE_SNAPSHOT = """
const box = (n) => { const r = n.getBoundingClientRect();
  return [r.left, r.top, r.right, r.bottom]; };
const charts = [...document.querySelectorAll('#charts .chart')].map((chart) => {
  const legend = chart.querySelector('.legend');
  return {
    title: chart.dataset.title,
    metrics: (chart.dataset.metrics || '').split(' ').filter(Boolean),
    period: Number(chart.dataset.period),
    limits: [...chart.querySelectorAll('.limits .limit')].map((n) => Number(n.dataset.value)),
    pieces: [...chart.querySelectorAll('svg .series, svg .point')].map((n) => ({
      kind: n.getAttribute('class'), series: n.dataset.series,
      times: n.dataset.times.split(',').map(Number)})),
    mode: legend.dataset.mode || '',
    note: (legend.querySelector('.mode') || {}).textContent || '',
    legendText: legend.textContent,
    items: [...legend.querySelectorAll('.item')].map((n) => ({
      label: n.dataset.label, value: n.dataset.value === '' ? null : Number(n.dataset.value)})),
    plot: box(chart.querySelector('svg rect.plot')),
    labels: [...chart.querySelectorAll('h3, .limits .limit, svg text, .legend > span')]
      .filter((n) => n.getBoundingClientRect().width > 0)
      .map((n) => ({text: n.textContent, box: box(n)})),
  };
});
const tiles = Object.fromEntries([...document.querySelectorAll('#alarms .alarm')].map((t) =>
  [t.dataset.name, (t.querySelector('a.runbook') || {}).href || '']));
return {charts, tiles};
"""


def overlap(a: list[float], b: list[float]) -> bool:
    return a[0] < b[2] - 0.5 and b[0] < a[2] - 0.5 and a[1] < b[3] - 0.5 and b[1] < a[3] - 0.5


def check_the_page_holds_up(driver, stack: StackProcess) -> None:
    """The console's invariants, read from the page as drawn right now."""
    alarms = get_json(stack, "/_local/alarms")
    page = driver.execute_script(PAGE_SNAPSHOT)
    charts = page["charts"]
    # Widgets keep the dashboard's order, data or not.
    order = [w.title for w in dashboard.WIDGETS if isinstance(w, dashboard.MetricWidget)]
    assert [c["title"] for c in charts] == order

    for alarm in alarms:
        # Every alarm's metric is drawn with its threshold (each function's Errors included).
        drawing = [c for c in charts if alarm["metricName"] in c["metrics"]]
        assert drawing, f"no widget draws {alarm['metricName']}"
        limits = {value for c in drawing for value in c["limits"]}
        assert float(alarm["threshold"]) in limits, (alarm["name"], limits)
        # Its tile links its runbook section.
        anchor = alarm["runbook"].split("#", 1)[1]
        href = page["tiles"][alarm["name"]]
        assert href == f"http://127.0.0.1:{stack.port}/_local/runbooks#{anchor}", href

    for chart in charts:
        title, period_ms = chart["title"], chart["period"] * 1000
        # Empty periods are gaps: a line joins consecutive periods only, a lone point is a dot,
        # and two pieces of one series are never a period apart (else they would be one line).
        pieces: dict[str, list[list[int]]] = {}
        for piece in chart["pieces"]:
            times = piece["times"]
            assert (piece["kind"] == "point") == (len(times) == 1), (title, piece)
            assert all(b - a == period_ms for a, b in itertools.pairwise(times)), (title, times)
            pieces.setdefault(piece["series"], []).append(times)
        for series, runs in pieces.items():
            runs.sort()
            for before, after in itertools.pairwise(runs):
                assert after[0] - before[-1] > period_ms, (title, series, before, after)
        # Labels never overlap the plot or each other.
        labels = chart["labels"]
        for label in labels:
            assert not overlap(label["box"], chart["plot"]), (title, label)
        for i, a in enumerate(labels):
            for b in labels[i + 1 :]:
                assert not overlap(a["box"], b["box"]), (title, a, b)
        # The legend says what it shows: the window's totals (counts) or one instant.
        if not chart["items"]:
            assert "no data in this window" in chart["legendText"], chart
            continue
        expected_note = "window totals" if chart["mode"] == "totals" else "at "
        assert chart["mode"] in ("totals", "latest"), chart
        assert chart["note"].startswith(expected_note), chart
        values = {item["label"]: item["value"] for item in chart["items"]}
        if chart["mode"] == "totals" and "total" in values:
            parts = [v for label, v in values.items() if label != "total"]
            assert all(values["total"] >= part for part in parts), (title, values)


def watch_drill(
    driver, stack: StackProcess, name: str, during: Any = None
) -> list[tuple[str, str]]:
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
                    if during is not None and state == "ALARM":
                        during()  # the page holds up with the alarm firing too
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
