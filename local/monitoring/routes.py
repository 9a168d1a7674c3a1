"""Local-only HTTP routes of the monitoring: alarm states and fault injection.

``GET /_local/alarms``            every alarm of the stack: name, state, reason, updatedAt,
                                  its definition, latest datapoints and recent transitions
``GET /_local/alarms/history``    recent transitions of all alarms, oldest first
``GET /_local/faults``            the active faults
``POST /_local/faults``           add a fault (a JSON object, or a list of them): 201
``DELETE /_local/faults``         clear every fault (``?owner=NAME``: only that owner's)
``DELETE /_local/faults/{id}``    remove one fault
``PATCH /_local/faults/{id}``     renew a fault's lease: ``{"durationSeconds": S}`` from now

Like every path under ``/_local/`` they pass ``local.gateway.loopback`` first (loopback Host, no
request from another site).
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from local.common.http import json_error
from local.drills.faults import FaultError, FaultInjector, lease_seconds
from local.monitoring.alarm_evaluator import AlarmEvaluator

ALARMS_PATH = "/_local/alarms"
HISTORY_PATH = "/_local/alarms/history"
FAULTS_PATH = "/_local/faults"
_NO_STORE = {"Cache-Control": "no-store"}


def monitoring_routes(evaluator: AlarmEvaluator, faults: FaultInjector) -> list[web.RouteDef]:
    async def alarms(_request: web.Request) -> web.Response:
        return web.json_response(evaluator.states(), headers=_NO_STORE)

    async def history(_request: web.Request) -> web.Response:
        return web.json_response(evaluator.history(), headers=_NO_STORE)

    async def list_faults(_request: web.Request) -> web.Response:
        return web.json_response(faults.describe(), headers=_NO_STORE)

    async def clear_faults(request: web.Request) -> web.Response:
        owner = request.query.get("owner")
        removed = faults.remove(owner=owner)
        return web.json_response({"cleared": len(removed), "removed": removed})

    async def remove_fault(request: web.Request) -> web.Response:
        fault_id = _fault_id(request)
        removed = faults.remove(fault_id=fault_id) if fault_id is not None else []
        if not removed:
            return json_error(404, f"no fault {request.match_info['id']}")
        return web.json_response({"cleared": 1, "removed": removed})

    async def renew_fault(request: web.Request) -> web.Response:
        fault_id = _fault_id(request)
        try:
            doc: Any = json.loads(await request.read() or b"null")
            if not isinstance(doc, dict):
                raise FaultError('the body must be {"durationSeconds": S}')
            duration = lease_seconds(doc)
        except ValueError as error:  # FaultError is one, and so is bad JSON
            return json_error(400, str(error) if isinstance(error, FaultError) else "bad JSON")
        fault = faults.renew(fault_id, duration) if fault_id is not None else None
        if fault is None:
            return json_error(404, f"no fault {request.match_info['id']} (removed or expired)")
        return web.json_response(fault.describe())

    async def add_faults(request: web.Request) -> web.Response:
        try:
            doc: Any = json.loads(await request.read() or b"null")
        except ValueError:
            return json_error(400, "the body must be JSON: a fault or a list of faults")
        docs = doc if isinstance(doc, list) else [doc]
        try:
            added = [f.describe() for f in faults.add(*docs)]
        except FaultError as error:
            return json_error(400, str(error))
        return web.json_response({"faults": added}, status=201)

    return [
        web.get(ALARMS_PATH, alarms, allow_head=False),
        web.get(HISTORY_PATH, history, allow_head=False),
        web.get(FAULTS_PATH, list_faults, allow_head=False),
        web.post(FAULTS_PATH, add_faults),
        web.delete(FAULTS_PATH, clear_faults),
        web.delete(FAULTS_PATH + "/{id}", remove_fault),
        web.patch(FAULTS_PATH + "/{id}", renew_fault),
    ]


def _fault_id(request: web.Request) -> int | None:
    text = request.match_info["id"]
    return int(text) if text.isdigit() else None
