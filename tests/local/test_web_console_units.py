"""The web console's pieces without a browser: the stdout tap, the log ring, the routes."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import threading

import pytest
from aiohttp.test_utils import TestClient, TestServer

from local.functions.log_tap import StdoutTap
from local.gateway.web import build_app
from local.monitoring.webconsole.log_ring import LogQuery, LogRing
from local.monitoring.webconsole.routes import STATIC_FILES, console_routes


def line(level="INFO", operation="joinSession", session=None, correlation="c0ffee", **more):
    record = {"timestamp": "2026-01-01T00:00:00.000Z", "level": level, "message": "m"}
    record.update(operation=operation, correlationId=correlation, **more)
    if session:
        record["sessionId"] = session
    return json.dumps(record)


# --- stdout tap ----------------------------------------------------------------------------------


def test_tap_writes_through_and_publishes_complete_lines_only():
    target = io.StringIO()
    tap = StdoutTap(target)
    seen: list[str] = []
    tap.subscribe(seen.append)
    tap.write('{"a": 1}\n{"b"')
    assert seen == ['{"a": 1}']
    tap.write(": 2}\n\n")
    assert seen == ['{"a": 1}', '{"b": 2}']
    assert target.getvalue() == '{"a": 1}\n{"b": 2}\n\n'


def test_tap_keeps_each_threads_partial_line_apart():
    tap = StdoutTap(io.StringIO())
    seen: list[str] = []
    tap.subscribe(seen.append)
    tap.write("main-")

    def other() -> None:
        tap.write("other-half")
        tap.write("-done\n")

    worker = threading.Thread(target=other)
    worker.start()
    worker.join()
    tap.write("rest\n")
    assert seen == ["other-half-done", "main-rest"]


def test_a_failing_subscriber_never_breaks_logging_nor_the_others(capsys):
    tap = StdoutTap(io.StringIO())
    seen: list[str] = []

    def broken(_: str) -> None:
        raise RuntimeError("consumer bug")

    tap.subscribe(broken)
    tap.subscribe(seen.append)
    assert tap.write("one\ntwo\n") == len("one\ntwo\n")
    assert seen == ["one", "two"]
    assert capsys.readouterr().err.count("consumer bug") == 1  # reported once, not per line


# --- log ring ------------------------------------------------------------------------------------


def test_ring_keeps_json_objects_only_drops_the_emf_block_and_is_bounded():
    ring = LogRing(capacity=3)
    ring.add_line("not json")
    ring.add_line("[1, 2]")
    for n in range(5):
        ring.add_line(line(n=n, _aws={"CloudWatchMetrics": []}))
    page = ring.query(LogQuery())
    assert [r["seq"] for r in page["records"]] == [3, 4, 5]
    assert all("_aws" not in r for r in page["records"])
    assert page["cursor"] == 5


def test_ring_filters_by_minimum_level_operation_and_session_and_pages_with_since():
    ring = LogRing()
    ring.add_line(line("DEBUG", session="calm-otter-101"))
    ring.add_line(line("INFO", "createSession", session="calm-otter-101"))
    ring.add_line(line("WARN", "joinSession", correlation="calm-otter-101"))
    ring.add_line(line("ERROR", "joinSession", session="bold-fox-202"))
    ring.add_line(line("INFO", "heartbeat", correlation="abc"))

    def seqs(**query):
        return [r["seq"] for r in ring.query(LogQuery(**query))["records"]]

    assert seqs(level="WARN") == [3, 4]
    assert seqs(operation="joinSession") == [1, 3, 4]
    assert seqs(session="calm-otter-101") == [1, 2, 3]
    assert seqs(session="calm-otter-101", level="INFO") == [2, 3]
    assert seqs(since=3) == [4, 5]
    assert seqs(limit=2) == [4, 5]  # the newest, oldest first
    assert ring.query(LogQuery())["operations"] == ["createSession", "heartbeat", "joinSession"]


@pytest.mark.parametrize("query", [{"level": "LOUD"}, {"limit": 0}, {"limit": 501}, {"since": -1}])
def test_ring_refuses_a_bad_query(query):
    with pytest.raises(ValueError):
        LogQuery(**query)


# --- routes --------------------------------------------------------------------------------------


@dataclasses.dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


def call(path: str, method: str = "GET", headers=None, query=None, metrics=None) -> Reply:
    """One request through the gateway's HTTP app (middlewares included) with the console."""
    ring = LogRing()
    ring.add_line(line("ERROR", "createSession", session="calm-otter-101"))
    app = build_app(lambda request: f"no route for {request.method} {request.path}")
    app.add_routes(
        console_routes(ring, lambda: {"stack": "dev", "websocketUrl": "ws://x/dev"}, metrics)
    )
    params = [(name, value) for name, values in (query or {}).items() for value in values]

    async def send() -> Reply:
        async with TestClient(TestServer(app)) as client:
            response = await client.request(
                method,
                path,
                params=params,
                headers={"Host": "127.0.0.1:8080", **(headers or {})},
            )
            return Reply(response.status, dict(response.headers), await response.read())

    return asyncio.run(send())


def test_page_and_its_files_are_served_and_nothing_else_of_the_package():
    page = call("/_local/console")
    assert page.status == 200 and page.headers["Content-Type"].startswith("text/html")
    for name in STATIC_FILES:
        assert name.encode() in page.body  # the page loads each of them
        assert call(f"/_local/console/{name}").status == 200
    assert call("/_local/console/../routes.py").status == 404
    assert call("/_local/console/console.html").status == 404
    elsewhere = call("/somewhere/else")  # other routes' business
    assert elsewhere.status == 404 and b"no route for GET /somewhere/else" in elsewhere.body


def test_config_names_the_websocket_url_and_the_languages():
    doc = json.loads(call("/_local/console/config").body)
    assert doc["websocketUrl"] == "ws://x/dev"
    assert "en" in doc["sourceLanguages"] and "es" in doc["targetLanguages"]


def test_logs_route_reads_the_ring_and_answers_400_on_a_bad_filter():
    doc = json.loads(call("/_local/logs", query={"level": ["error"]}).body)
    assert [r["operation"] for r in doc["records"]] == ["createSession"]
    bad = call("/_local/logs", query={"limit": ["lots"]})
    assert bad.status == 400 and b"bad log query" in bad.body


def test_another_sites_page_is_refused_and_this_servers_own_page_allowed():
    assert call("/_local/sessions", headers={"origin": "http://evil.example"}).status == 403
    assert call("/_local/console", headers={"origin": "http://127.0.0.1:8080"}).status == 200
    # DNS rebinding: a name the attacker controls pointed at 127.0.0.1.
    for path in ("/_local/console", "/_local/console/console.js", "/_local/logs"):
        assert call(path, headers={"Host": "evil.example:8080"}).status == 403


def test_only_get_is_allowed():
    response = call("/_local/logs", method="POST")
    assert response.status == 405


def test_metrics_reads_off_the_loop_and_a_failure_is_a_503_with_the_reason():
    asked: list[int] = []

    def metrics(minutes: int) -> dict:
        asked.append(minutes)
        return {"widgets": []}

    assert call("/_local/metrics", query={"minutes": ["5"]}, metrics=metrics).status == 200
    assert asked == [5]
    assert call("/_local/metrics", query={"minutes": ["0"]}, metrics=metrics).status == 400

    def down(minutes: int) -> dict:
        raise ConnectionError("embedded AWS is down")

    failed = call("/_local/metrics", metrics=down)
    assert failed.status == 503 and b"embedded AWS is down" in failed.body


# --- the browser ---------------------------------------------------------------------------------


def test_without_chromium_the_browser_test_skips_locally_and_fails_under_ci(monkeypatch):
    from tests.local import browser

    monkeypatch.setattr(browser, "find_chromium", lambda: None)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="chromium-driver"):
        browser.require_chromium()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI is set"):
        browser.require_chromium()


def test_the_bench_reports_the_console_section_as_skipped_without_chromium(monkeypatch):
    from bench import console_load

    monkeypatch.setattr(console_load, "find_chromium", lambda: None)
    section = console_load.console_section()
    assert [row.status for row in section.rows] == ["SKIPPED"]
    assert "chromium-driver" in section.notes[0]
