"""HTTP routes of the web console: the page, its static files and its JSON API.

``GET /_local/console``            the page (static HTML, no build step)
``GET /_local/console/{file}``     its script and style sheet (an allow-list, nothing else)
``GET /_local/console/config``     what the page needs to start: stack, URLs, languages
``GET /_local/sessions``           live sessions, listeners by target language, age
``GET /_local/logs``               recent function log lines (since, level, operation, session)
``GET /_local/metrics``            the dashboard's metric widgets with their data points

Like ``/_local/token`` these serve this machine only. Embedded-AWS reads run off the event
loop; a failing read answers 503 with the reason (the page shows it), never a hang.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from importlib import resources
from typing import Any

from local import console
from local.http import HttpRequest, HttpResponse, Route
from local.webconsole.log_ring import LogQuery, LogRing
from local.webconsole.sessions import live_sessions
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
}
_PAGE = "console.html"
_NO_STORE = {"Cache-Control": "no-store"}


def static_file(name: str) -> bytes:
    """One of the console's files, from the package (works from a zip or a wheel too)."""
    return resources.files("local.webconsole").joinpath("static", name).read_bytes()


def console_routes(
    ring: LogRing,
    info: Callable[[], Mapping[str, Any]],
    metrics: Callable[[int], Mapping[str, Any]] | None = None,
) -> list[Route]:
    """The console's routes; ``metrics(minutes)`` returns the dashboard widgets' data."""

    async def route(request: HttpRequest) -> HttpResponse | None:
        path = request.path
        known = path in (CONSOLE_PATH, SESSIONS_PATH, LOGS_PATH, METRICS_PATH) or (
            path.startswith(CONSOLE_PATH + "/")
        )
        if not known:
            return None
        if request.method != "GET":
            return HttpResponse.json(405, {"message": "use GET"}, {"Allow": "GET"})
        if "origin" in request.headers and not _same_origin(request):
            return HttpResponse.json(403, {"message": "local tools only (no cross-site requests)"})
        if path == CONSOLE_PATH:
            return _file(_PAGE, "text/html; charset=utf-8")
        if path == CONFIG_PATH:
            return HttpResponse.json(200, _page_config(info()), _NO_STORE)
        if path.startswith(CONSOLE_PATH + "/"):
            name = path[len(CONSOLE_PATH) + 1 :]
            if name in STATIC_FILES:
                return _file(name, STATIC_FILES[name])
            return HttpResponse.json(404, {"message": f"no console file {name!r}"})
        if path == LOGS_PATH:
            return _logs(ring, request)
        if path == SESSIONS_PATH:
            return await _off_loop(lambda: {"sessions": live_sessions()}, "sessions")
        if metrics is None:
            return HttpResponse.json(503, {"message": "metrics are not available yet"})
        try:
            minutes = int(_param(request, "minutes") or 15)
        except ValueError:
            minutes = 0
        if not 1 <= minutes <= 180:
            return HttpResponse.json(400, {"message": "'minutes' must be an integer 1-180"})
        return await _off_loop(lambda: metrics(minutes), "metrics")

    return [route]


def _same_origin(request: HttpRequest) -> bool:
    """A page of this very server (its own fetches), never another site's."""
    host = request.headers.get("host", "")
    return request.headers.get("origin", "") in (f"http://{host}",)


def _param(request: HttpRequest, name: str) -> str | None:
    values = request.query.get(name)
    value = values[-1].strip() if values else ""
    return value or None


def _file(name: str, content_type: str) -> HttpResponse:
    return HttpResponse(200, static_file(name), {"Content-Type": content_type, **_NO_STORE})


def _page_config(info: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "stack": info.get("stack"),
        "websocketUrl": info.get("websocketUrl"),
        "tokenPath": "/_local/token",
        "alarmsPath": ALARMS_PATH,
        "sessionsPath": SESSIONS_PATH,
        "logsPath": LOGS_PATH,
        "metricsPath": METRICS_PATH,
        "sourceLanguages": sorted(SOURCE_LANGUAGES),
        "targetLanguages": sorted(TARGET_LANGUAGES),
    }


def _logs(ring: LogRing, request: HttpRequest) -> HttpResponse:
    try:
        query = LogQuery(
            since=int(_param(request, "since") or 0),
            level=(_param(request, "level") or "").upper() or None,
            operation=_param(request, "operation"),
            session=_param(request, "session"),
            limit=int(_param(request, "limit") or 200),
        )
    except ValueError as error:
        return HttpResponse.json(400, {"message": f"bad log query: {error}"})
    return HttpResponse.json(200, ring.query(query), _NO_STORE)


async def _off_loop(read: Callable[[], Any], what: str) -> HttpResponse:
    loop = asyncio.get_running_loop()
    try:
        doc = await loop.run_in_executor(None, read)
    except Exception as error:  # embedded AWS down or slow: say so, keep serving
        console.say(f"! console {what} read failed: {error!r}")
        return HttpResponse.json(503, {"message": f"could not read {what}: {error}"}, _NO_STORE)
    return HttpResponse.json(200, doc, _NO_STORE)
