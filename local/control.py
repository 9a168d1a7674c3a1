"""Local-only HTTP routes beside @connections: the JWKS, token minting and stack info.

The gateway listens on 127.0.0.1 only, and every path under ``/_local/`` is guarded by
``local.loopback`` (loopback Host, no request from another site), so neither a web page nor
a DNS-rebinding name can mint tokens from a developer's running stack. The JWKS is public
key material, served to anyone (as Cognito does).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

from local.tokens import DEFAULT_TTL_S, INFO_PATH, JWKS_PATH, MAX_TTL_S, TOKEN_PATH, TokenIssuer
from local.web import json_error


def control_routes(
    issuer: TokenIssuer, info: Callable[[], Mapping[str, Any]]
) -> list[web.RouteDef]:
    """Routes for ``/.well-known/jwks.json``, ``/_local/token`` and ``/_local/info``."""

    async def jwks(_request: web.Request) -> web.Response:
        return web.json_response(issuer.jwks())

    async def stack_info(_request: web.Request) -> web.Response:
        return web.json_response(dict(info()))

    async def token(request: web.Request) -> web.Response:
        return _mint(issuer, request)

    return [
        web.get(JWKS_PATH, jwks, allow_head=False),
        web.get(INFO_PATH, stack_info, allow_head=False),
        web.get(TOKEN_PATH, token, allow_head=False),
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
