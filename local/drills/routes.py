"""Local-only HTTP routes of the fire drills: the faults injected into the functions' AWS calls.

``GET /_local/faults``            the active faults
``POST /_local/faults``           add a fault (a JSON object, or a list of them): 201
``DELETE /_local/faults``         clear every fault

Like every path under ``/_local/`` they pass ``local.gateway.loopback`` first (loopback Host,
no request from another site). The drill runner (``local.drills.runner``) reaches them, and
the alarms, through HTTP only.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from local.common.http import json_error
from local.drills.faults import FaultError, FaultInjector

FAULTS_PATH = "/_local/faults"
_NO_STORE = {"Cache-Control": "no-store"}


def fault_routes(faults: FaultInjector) -> list[web.RouteDef]:
    async def list_faults(_request: web.Request) -> web.Response:
        return web.json_response(faults.describe(), headers=_NO_STORE)

    async def clear_faults(_request: web.Request) -> web.Response:
        return web.json_response({"cleared": faults.clear()})

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
        web.get(FAULTS_PATH, list_faults, allow_head=False),
        web.post(FAULTS_PATH, add_faults),
        web.delete(FAULTS_PATH, clear_faults),
    ]
