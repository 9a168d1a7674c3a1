"""The client side of a local stack's local-only endpoints: a token, its info, its connections.

The paths and the default token lifetime are defined here, once: the stack serves them
(``local.control``), the CLI, the drills, tests and bench/ call them.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

DEFAULT_TTL_S = 3600
TOKEN_PATH = "/_local/token"  # noqa: S105 (a URL path, not a secret)
INFO_PATH = "/_local/info"
CONNECTIONS_PATH = "/_local/connections"


class NoLocalStack(RuntimeError):
    """No local stack answers on the given port."""


def fetch_token(user: str, port: int, host: str = "127.0.0.1", ttl_s: int = DEFAULT_TTL_S) -> str:
    """Ask the local stack on ``host:port`` for a speaker token for ``user``."""
    query = urllib.parse.urlencode({"user": user, "ttl": ttl_s})
    doc = _get_json(f"http://{host}:{port}{TOKEN_PATH}?{query}", port)
    token = doc.get("token")
    if not isinstance(token, str):
        raise NoLocalStack(f"port {port} answered without a token: {doc}")
    return token


def fetch_info(port: int, host: str = "127.0.0.1") -> dict[str, Any]:
    """The running local stack's URLs and settings summary."""
    return _get_json(f"http://{host}:{port}{INFO_PATH}", port)


def fetch_connections(port: int, host: str = "127.0.0.1") -> list[dict[str, Any]]:
    """The running local stack's open connections, each with its role and session."""
    doc = _get_json(f"http://{host}:{port}{CONNECTIONS_PATH}", port)
    return list(doc.get("connections") or [])


def _get_json(url: str, port: int) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (http://127.0.0.1)
            doc: dict[str, Any] = json.loads(response.read().decode())
            return doc
    except urllib.error.HTTPError as error:
        body = error.read().decode(errors="replace")[:300]
        if error.code == 404:
            raise NoLocalStack(
                f"something answers on port {port}, but it is not a local stack ({body!r})"
            ) from None
        raise NoLocalStack(
            f"the local stack on port {port} said HTTP {error.code}: {body}"
        ) from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise NoLocalStack(
            f"no local stack is running on port {port} ({reason}); start one with `make dev` "
            f"or `uv run python -m local --port {port}`"
        ) from None
    except ValueError:
        raise NoLocalStack(f"port {port} did not answer with JSON: not a local stack") from None
