"""The one shape of an error answer on every local-only HTTP route: JSON ``{"message": …}``."""

from __future__ import annotations

from aiohttp import web


def json_error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"message": message}, status=status, headers=headers)
