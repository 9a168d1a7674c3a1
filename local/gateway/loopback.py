"""The one guard of the local-only endpoints (every path under ``/_local/``) and of the
@connections API (``/{stage}/@connections/{id}``).

The gateway listens on 127.0.0.1, but a web page can still reach it through the developer's
browser: directly (a cross-site request) or by DNS rebinding (a name the attacker controls,
say ``evil.example``, re-pointed at 127.0.0.1, so the browser sends ``Host: evil.example:PORT``
and treats the answer as same-origin). ``loopback_middleware`` refuses, with 403, any request
to a local-only path whose

* ``Host`` is not a loopback name or address (``localhost``, ``127.0.0.0/8``, ``[::1]``);
* ``Origin``, if present, is not that same loopback origin (a page served by this stack);
* ``Sec-Fetch-Site`` says another site sent it (``cross-site`` or ``same-site``).

New local-only routes (``/_local/console``, ``/_local/alarms``, …) are guarded by being
under ``LOCAL_PREFIX``; nothing else to remember.

The @connections API gets the same guard: on AWS it needs a SigV4 signature, here it has
none, so a rebinding page could otherwise post to or delete any connection whose ID it
learnt. boto3's ``apigatewaymanagementapi`` client and the AWS CLI, pointed at
``http://127.0.0.1:PORT/{stage}``, send ``Host: 127.0.0.1:PORT`` and no Origin: they pass.
The refusal carries ``x-amzn-errortype: ForbiddenException`` so SDKs read it as AWS's 403.
"""

from __future__ import annotations

import ipaddress
import urllib.parse
from collections.abc import Awaitable, Callable

from aiohttp import web

from local.common import console

LOCAL_PREFIX = "/_local/"
CONNECTIONS_SEGMENT = "@connections"
_FOREIGN_FETCH_SITES = frozenset({"cross-site", "same-site"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def host_of(authority: str) -> str:
    """``localhost:8080`` → ``localhost``; ``[::1]:8080`` → ``::1``; lower-cased."""
    authority = authority.strip().lower()
    if authority.startswith("["):
        end = authority.find("]")
        return authority[1:end] if end > 0 else ""
    if authority.count(":") == 1:
        authority = authority.split(":", 1)[0]
    return authority


def is_loopback_host(host: str) -> bool:
    """True for ``localhost`` and for loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def refusal(request: web.BaseRequest) -> str | None:
    """Why a request to a local-only path must be refused (None: it may pass)."""
    request_headers = request.headers
    host = request_headers.get("Host", "")
    if not is_loopback_host(host_of(host)):
        return "Host is not a loopback name or address"
    origin = request_headers.get("Origin")
    if origin is not None:
        split = urllib.parse.urlsplit(origin)
        same = split.scheme == "http" and split.netloc.lower() == host.strip().lower()
        if not same:
            return "Origin is not this local stack"
    if request_headers.get("Sec-Fetch-Site", "").strip().lower() in _FOREIGN_FETCH_SITES:
        return "the request came from another site"
    return None


def is_guarded(path: str) -> bool:
    """True for the paths only this machine may call: ``/_local/…`` and @connections."""
    return path.startswith(LOCAL_PREFIX) or CONNECTIONS_SEGMENT in path.split("/")


@web.middleware
async def loopback_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse foreign requests to guarded paths before any handler sees them."""
    if is_guarded(request.path):
        why = refusal(request)
        if why is not None:
            # The path may hold a connection ID, which is never printed.
            where = request.path if request.path.startswith(LOCAL_PREFIX) else CONNECTIONS_SEGMENT
            console.say(f"! refused {request.method} {where}: {why}")
            return web.json_response(
                {"message": f"local tools only: {why}"},
                status=403,
                headers={"x-amzn-errortype": "ForbiddenException"},
            )
    return await handler(request)
