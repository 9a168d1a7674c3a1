"""``make screenshot``: docs/console.png, taken from the product as it is, during a fire drill.

A local stack starts at alarm time ×30 (a 5-minute period lasts 10 s, so the alarm stays red
long enough to be photographed); headless Chromium opens its console; the try-it panel
creates a session and joins it as three listeners (real WebSocket connections from the page);
then ``python -m local drill server-errors`` runs against the stack and, once the page shows
the drill's alarm in ALARM (its widgets redrawn with it), the whole page is saved as a PNG.
The drill is then let finish (it must pass) and the stack is stopped.

    python -m bench.screenshot [--out docs/console.png] [--drill server-errors]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.browser import MISSING, chromium, find_chromium

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "console.png"
WIDTH = 1400
LOAD_TIMEOUT_S = 30.0
ALARM_TIMEOUT_S = 120.0
DRILL_TIMEOUT_S = 240.0
LISTENER_LANGUAGES = ("es", "fr", "de")
TIME_SCALE = "30"
# After the tile turns red (its widgets are redrawn in the same frame): the alarm stays red
# until the next 10 s period is evaluated.
SETTLE_S = 0.5
ATTEMPTS = 3


def say(text: str) -> None:
    print(f"screenshot: {text}", file=sys.stderr, flush=True)


def _wait(driver: Any, predicate: Any, timeout_s: float, what: str) -> Any:
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout_s, poll_frequency=0.2).until(predicate)
    except TimeoutException:
        raise SystemExit(f"screenshot: timed out waiting for {what}") from None


def live_session(driver: Any) -> str:
    """A session created and joined from the page's try-it panel; its ID."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    driver.find_element(By.ID, "try-create").click()
    session_id = _wait(
        driver,
        lambda d: d.find_element(By.ID, "try-session-id").get_attribute("value"),
        LOAD_TIMEOUT_S,
        "the try-it session",
    )
    joined = f"listener ← sessionJoined {session_id}"
    for lang in LISTENER_LANGUAGES:
        Select(driver.find_element(By.ID, "try-target")).select_by_visible_text(lang)
        count = driver.find_element(By.ID, "try-messages").text.count(joined)  # before the click
        driver.find_element(By.ID, "try-join").click()
        _wait(
            driver,
            lambda d, before=count: (
                d.find_element(By.ID, "try-messages").text.count(joined) > before
            ),
            LOAD_TIMEOUT_S,
            f"the {lang} listener",
        )
    row = f'#sessions tr[data-session-id="{session_id}"][data-listeners="3"]'
    _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, row), LOAD_TIMEOUT_S, "its row")
    return str(session_id)


def take(out: Path, drill: str) -> Path:
    from selenium.webdriver.common.by import By

    from local.drills.runner import DRILLS, find_alarm
    from local.process import StackProcess

    paths = find_chromium()
    if paths is None:
        raise SystemExit(f"screenshot: {MISSING}")
    with tempfile.TemporaryDirectory(prefix="screenshot-") as logs:
        stack = StackProcess(("--alarm-time-scale", TIME_SCALE), Path(logs), "screenshot").start()
        try:
            url = f"http://127.0.0.1:{stack.port}/_local/console"
            with chromium(paths, WIDTH, 1000) as driver:
                driver.get(url)
                _wait(
                    driver,
                    lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-loaded"),
                    LOAD_TIMEOUT_S,
                    "the console",
                )
                session_id = live_session(driver)
                say(f"live session {session_id} with {len(LISTENER_LANGUAGES)} listeners")
                alarms = driver.execute_script(
                    "return fetch('/_local/alarms').then((r) => r.json())"
                )
                target = find_alarm(alarms, DRILLS[drill])["name"]
                tile = f'#alarms .alarm[data-name="{target}"]'
                for attempt in range(1, ATTEMPTS + 1):
                    if drill_and_shoot(driver, stack.port, drill, tile, out):
                        say(f"saved {out} with {target} in ALARM")
                        break
                    say(f"{target} left ALARM before the picture (attempt {attempt}); again")
                else:
                    raise SystemExit(f"screenshot: {target} never held ALARM for the picture")
        finally:
            stack.stop()
    return out


def drill_and_shoot(driver: Any, port: int, drill: str, tile: str, out: Path) -> bool:
    """Run the drill; photograph the page once its alarm's tile is red. True when the tile was
    still red after the picture (the drill must pass either way)."""

    def tile_state(d: Any) -> str:
        # Read in the page in one go: the tiles are redrawn every refresh.
        script = "const t = document.querySelector(arguments[0]); return t && t.dataset.state;"
        return str(d.execute_script(script, tile))

    _wait(driver, lambda d: tile_state(d) == "OK", ALARM_TIMEOUT_S, "the alarm to be OK first")
    with tempfile.TemporaryFile("w+") as drill_log:
        running = subprocess.Popen(
            [sys.executable, "-m", "local", "drill", drill, "--port", str(port)],
            cwd=ROOT,
            stdout=drill_log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            say(f"drill {drill} running; waiting for its alarm to fire")
            _wait(driver, lambda d: tile_state(d) == "ALARM", ALARM_TIMEOUT_S, "the alarm")
            # The tile and its widgets are drawn in the same frame: no need to wait long.
            time.sleep(SETTLE_S)
            taken = out.with_name(f".taking-{out.name}")
            shot(driver, taken)
            held = tile_state(driver) == "ALARM"
            if held:
                taken.replace(out)  # only a picture with the alarm red replaces the old one
            else:
                taken.unlink()
            running.wait(timeout=DRILL_TIMEOUT_S)
        finally:
            if running.poll() is None:
                running.kill()
                running.wait()
            drill_log.seek(0)
            output = drill_log.read()
    if running.returncode != 0:
        raise SystemExit(f"screenshot: the drill failed:\n{output}")
    return held


def shot(driver: Any, out: Path) -> None:
    """The whole page (the window resized to it), as PNG."""
    height = int(driver.execute_script("return document.documentElement.scrollHeight"))
    driver.set_window_size(WIDTH, height + 20)
    time.sleep(0.5)  # the resize relays the charts out
    height = int(driver.execute_script("return document.documentElement.scrollHeight"))
    driver.set_window_size(WIDTH, height + 20)
    driver.execute_script("window.scrollTo(0, 0)")
    out.parent.mkdir(parents=True, exist_ok=True)
    if not driver.save_screenshot(str(out)):
        raise SystemExit(f"screenshot: could not write {out}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.screenshot", description=__doc__)
    parser.add_argument("--out", type=Path, default=OUT, help="the PNG to write")
    parser.add_argument("--drill", default="server-errors", help="the fire drill to run")
    args = parser.parse_args(argv)
    take(args.out, args.drill)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
