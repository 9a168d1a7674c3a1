"""HTTP routes of the web console: the page, its static files and its JSON API.

``GET /_local/console``            the page (static HTML, no build step)
``GET /_local/console/{file}``     its script and style sheet (an allow-list, nothing else)
``GET /_local/console/config``     what the page needs to start: stack, URLs, languages
``GET /_local/sessions``           live sessions, listeners by target language, age
``GET /_local/logs``               recent function log lines (since, level, operation, session)
``GET /_local/metrics``            the dashboard's metric widgets with their data points
``GET /_local/runbooks``           docs/runbooks.md as a page (the alarm tiles link its sections)

Like ``/_local/token`` these serve this machine only: every path under ``/_local/`` passes
``local.gateway.loopback`` first (loopback Host; an Origin only if it is this very server). Only GET
is routed (aiohttp answers 405 to anything else). Embedded-AWS reads run off the event loop;
a failing read answers 503 with the reason (the page shows it), never a hang.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from importlib import resources
from typing import Any

from aiohttp import web

from local.common import console
from local.common.http import json_error
from local.drills.faults import stack_call
from local.monitoring.webconsole.log_ring import LogQuery, LogRing
from local.monitoring.webconsole.runbooks import RUNBOOKS_PATH, runbooks_page
from local.monitoring.webconsole.sessions import live_sessions
from runtime.languages import SOURCE_LANGUAGES, TARGET_LANGUAGES

CONSOLE_PATH = "/_local/console"
CONFIG_PATH = "/_local/console/config"
SESSIONS_PATH = "/_local/sessions"
LOGS_PATH = "/_local/logs"
METRICS_PATH = "/_local/metrics"
ALARMS_PATH = "/_local/alarms"
STATIC_FILES = {
    "console.js": "text/javascript; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
_PAGE = "console.html"
_NO_STORE = {"Cache-Control": "no-store"}


def static_file(name: str) -> bytes:
    """One of the console's files, from the package (works from a zip or a wheel too)."""
    return resources.files("local.monitoring.webconsole").joinpath("static", name).read_bytes()


def console_routes(
    ring: LogRing,
    info: Callable[[], Mapping[str, Any]],
    metrics: Callable[[int], Mapping[str, Any]] | None = None,
) -> list[web.RouteDef]:
    """The console's routes; ``metrics(minutes)`` returns the dashboard widgets' data."""

    async def page(_request: web.Request) -> web.Response:
        return _file(_PAGE, "text/html; charset=utf-8")

    async def page_config(_request: web.Request) -> web.Response:
        return web.json_response(_page_config(info()), headers=_NO_STORE)

    async def page_file(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name in STATIC_FILES:
            return _file(name, STATIC_FILES[name])
        return json_error(404, f"no console file {name!r}")

    async def runbooks(_request: web.Request) -> web.Response:
        page = runbooks_page()
        if page is None:
            return json_error(404, "this checkout has no docs/runbooks.md")
        return web.Response(text=page, content_type="text/html", headers=_NO_STORE)

    async def logs(request: web.Request) -> web.Response:
        return _logs(ring, request)

    async def sessions(_request: web.Request) -> web.Response:
        return await _off_loop(_sessions, "sessions")

    async def widgets(request: web.Request) -> web.Response:
        if metrics is None:
            return json_error(503, "metrics are not available yet")
        try:
            minutes = int(_param(request, "minutes") or 15)
        except ValueError:
            minutes = 0
        if not 1 <= minutes <= 180:
            return json_error(400, "'minutes' must be an integer 1-180")
        return await _off_loop(lambda: metrics(minutes), "metrics")

    return [
        web.get(CONSOLE_PATH, page, allow_head=False),
        web.get(CONFIG_PATH, page_config, allow_head=False),
        web.get(CONSOLE_PATH + "/{name}", page_file, allow_head=False),
        web.get(SESSIONS_PATH, sessions, allow_head=False),
        web.get(LOGS_PATH, logs, allow_head=False),
        web.get(METRICS_PATH, widgets, allow_head=False),
        web.get(RUNBOOKS_PATH, runbooks, allow_head=False),
    ]


def _sessions() -> dict[str, Any]:
    # The stack's own read: a drill's DynamoDB fault must not blank the sessions panel.
    with stack_call():
        return {"sessions": live_sessions()}


def _param(request: web.Request, name: str) -> str | None:
    values = request.query.getall(name, None)
    value = values[-1].strip() if values else ""
    return value or None


def _file(name: str, content_type: str) -> web.Response:
    return web.Response(body=static_file(name), headers={"Content-Type": content_type, **_NO_STORE})


def _page_config(info: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "stack": info.get("stack"),
        "websocketUrl": info.get("websocketUrl"),
        "alarmTimeScale": info.get("alarmTimeScale", 1),
        "tokenPath": "/_local/token",
        "alarmsPath": ALARMS_PATH,
        "sessionsPath": SESSIONS_PATH,
        "logsPath": LOGS_PATH,
        "metricsPath": METRICS_PATH,
        "runbooksPath": RUNBOOKS_PATH,
        "sourceLanguages": sorted(SOURCE_LANGUAGES),
        "targetLanguages": sorted(TARGET_LANGUAGES),
    }


def _logs(ring: LogRing, request: web.Request) -> web.Response:
    try:
        query = LogQuery(
            since=int(_param(request, "since") or 0),
            level=(_param(request, "level") or "").upper() or None,
            operation=_param(request, "operation"),
            session=_param(request, "session"),
            limit=int(_param(request, "limit") or 200),
        )
    except ValueError as error:
        return json_error(400, f"bad log query: {error}")
    return web.json_response(ring.query(query), headers=_NO_STORE)


async def _off_loop(read: Callable[[], Any], what: str) -> web.Response:
    loop = asyncio.get_running_loop()
    try:
        doc = await loop.run_in_executor(None, read)
    except Exception as error:  # embedded AWS down or slow: say so, keep serving
        console.say(f"! console {what} read failed: {error!r}")
        return json_error(503, f"could not read {what}: {error}", _NO_STORE)
    return web.json_response(doc, headers=_NO_STORE)
