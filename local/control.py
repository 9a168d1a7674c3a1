"""Local-only HTTP routes beside @connections: the JWKS, token minting and stack info.

The gateway listens on 127.0.0.1 only, so these are reachable from this machine only.
Requests carrying an ``Origin`` header (a browser page) are refused, so a web page cannot
mint tokens from a developer's running stack.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from local.http import HttpRequest, HttpResponse, Route
from local.tokens import DEFAULT_TTL_S, INFO_PATH, JWKS_PATH, MAX_TTL_S, TOKEN_PATH, TokenIssuer


def control_routes(issuer: TokenIssuer, info: Callable[[], Mapping[str, Any]]) -> list[Route]:
    """Routes for ``/.well-known/jwks.json``, ``/_local/token`` and ``/_local/info``."""

    async def route(request: HttpRequest) -> HttpResponse | None:
        if request.path not in (JWKS_PATH, TOKEN_PATH, INFO_PATH):
            return None
        if request.method != "GET":
            return HttpResponse.json(405, {"message": "use GET"})
        if request.path == JWKS_PATH:
            return HttpResponse.json(200, issuer.jwks())
        if "origin" in request.headers:
            return HttpResponse.json(403, {"message": "local tools only (no browser requests)"})
        if request.path == INFO_PATH:
            return HttpResponse.json(200, dict(info()))
        return _mint(issuer, request)

    return [route]


def _mint(issuer: TokenIssuer, request: HttpRequest) -> HttpResponse:
    user = (request.query.get("user") or [""])[-1].strip()
    if not user or len(user) > 128:
        return HttpResponse.json(400, {"message": "query parameter 'user' (1-128 chars) required"})
    try:
        ttl = int((request.query.get("ttl") or [str(DEFAULT_TTL_S)])[-1])
    except ValueError:
        return HttpResponse.json(400, {"message": "query parameter 'ttl' must be an integer"})
    if not -MAX_TTL_S <= ttl <= MAX_TTL_S:
        return HttpResponse.json(400, {"message": f"'ttl' must be within ±{MAX_TTL_S} seconds"})
    return HttpResponse.json(200, {"token": issuer.mint(user, ttl), "user": user, "ttl": ttl})
