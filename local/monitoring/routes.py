"""Local-only HTTP routes of the monitoring: alarm states and their history.

``GET /_local/alarms``            every alarm of the stack: name, state, reason, updatedAt,
                                  its definition, latest datapoints and recent transitions
``GET /_local/alarms/history``    recent transitions of all alarms, oldest first

Like every path under ``/_local/`` they pass ``local.gateway.loopback`` first (loopback Host, no
request from another site). The fault routes are the drills' (``local.drills.routes``).
"""

from __future__ import annotations

from aiohttp import web

from local.monitoring.alarm_evaluator import AlarmEvaluator

ALARMS_PATH = "/_local/alarms"
HISTORY_PATH = "/_local/alarms/history"
_NO_STORE = {"Cache-Control": "no-store"}


def monitoring_routes(evaluator: AlarmEvaluator) -> list[web.RouteDef]:
    async def alarms(_request: web.Request) -> web.Response:
        return web.json_response(evaluator.states(), headers=_NO_STORE)

    async def history(_request: web.Request) -> web.Response:
        return web.json_response(evaluator.history(), headers=_NO_STORE)

    return [
        web.get(ALARMS_PATH, alarms, allow_head=False),
        web.get(HISTORY_PATH, history, allow_head=False),
    ]
