"""Local-only HTTP routes beside @connections: the JWKS, token minting, stack info and the
open connections (with role and session, for trying @connections by hand).

The gateway listens on 127.0.0.1 only, and every path under ``/_local/`` is guarded by
``local.gateway.loopback`` (loopback Host, no request from another site), so neither a web page nor
a DNS-rebinding name can mint tokens from a developer's running stack. The JWKS is public
key material, served to anyone (as Cognito does).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from client.local_stack import CONNECTIONS_PATH, DEFAULT_TTL_S, INFO_PATH, TOKEN_PATH
from local.common.http import json_error
from local.tokens import JWKS_PATH, MAX_TTL_S, TokenIssuer


def control_routes(
    issuer: TokenIssuer,
    info: Callable[[], Mapping[str, Any]],
    connections: Callable[[], Awaitable[list[dict[str, Any]]]] | None = None,
) -> list[web.RouteDef]:
    """Routes for the JWKS, ``/_local/token``, ``/_local/info`` and ``/_local/connections``."""

    async def jwks(_request: web.Request) -> web.Response:
        return web.json_response(issuer.jwks())

    async def stack_info(_request: web.Request) -> web.Response:
        return web.json_response(dict(info()))

    async def token(request: web.Request) -> web.Response:
        return _mint(issuer, request)

    async def open_connections(_request: web.Request) -> web.Response:
        if connections is None:
            return json_error(503, "the gateway is not serving yet")
        return web.json_response({"connections": await connections()})

    return [
        web.get(JWKS_PATH, jwks, allow_head=False),
        web.get(INFO_PATH, stack_info, allow_head=False),
        web.get(TOKEN_PATH, token, allow_head=False),
        web.get(CONNECTIONS_PATH, open_connections, allow_head=False),
    ]


def _mint(issuer: TokenIssuer, request: web.Request) -> web.Response:
    user = (request.query.getall("user", None) or [""])[-1].strip()
    if not user or len(user) > 128:
        return json_error(400, "query parameter 'user' (1-128 chars) required")
    try:
        ttl = int((request.query.getall("ttl", None) or [str(DEFAULT_TTL_S)])[-1])
    except ValueError:
        return json_error(400, "query parameter 'ttl' must be an integer")
    if not -MAX_TTL_S <= ttl <= MAX_TTL_S:
        return json_error(400, f"'ttl' must be within ±{MAX_TTL_S} seconds")
    return web.json_response({"token": issuer.mint(user, ttl), "user": user, "ttl": ttl})
