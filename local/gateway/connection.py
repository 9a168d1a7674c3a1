"""One WebSocket connection as API Gateway sees it: its options, state and route selection.

The close codes, the 128 KB message limit and ``$request.body.action`` route selection are
API Gateway's; ``LocalConnection`` is the gateway-side record @connections addresses.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from local.functions.events import Peer, now_ms
from runtime.throttling import ACCOUNT_NEW_CONNECTIONS_PER_SECOND

DEFAULT_ROUTE = "$default"
CONNECT_ROUTE = "$connect"
DISCONNECT_ROUTE = "$disconnect"
MAX_MESSAGE_BYTES = 128 * 1024
GOING_AWAY = 1001
# API Gateway WebSocket APIs refuse binary frames: the client is disconnected with 1003.
UNSUPPORTED_DATA = 1003
NORMAL = 1000
ABNORMAL = 1006
MESSAGE_TOO_BIG = 1009
CLOSE_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class GatewayOptions:
    stage: str
    region: str = "us-east-1"
    host: str = "127.0.0.1"
    port: int = 8080
    idle_timeout_s: float = 600.0
    max_connection_s: float = 7200.0
    # How much faster connections age in the functions' events (``ApiInfo.age_scale``).
    age_scale: float = 1.0
    max_message_bytes: int = MAX_MESSAGE_BYTES
    # How long an HTTP connection may take to send a request head (from opening, or from
    # its previous response): the slowloris guard, and the idle keep-alive limit.
    head_timeout_s: float = 10.0
    # Bound on the whole opening handshake, $connect included (API Gateway allows 29 s).
    open_timeout_s: float = 30.0
    # Frames of one connection being handled at once; more wait (backpressure).
    in_flight_per_connection: int = 16
    ping_interval_s: float | None = 20.0
    announce: bool = True  # one stderr line per connect / disconnect
    # The stage's throttling (messages a second, bucket size; None: none) and the account's
    # new connections a second (API Gateway's default quota), see ``local.gateway.throttle``.
    message_rate: float | None = None
    message_burst: int | None = None
    new_connections_per_s: float | None = ACCOUNT_NEW_CONNECTIONS_PER_SECOND


class LocalConnection:
    """Gateway-side state of one WebSocket connection."""

    def __init__(self, ws: web.WebSocketResponse, peer: Peer, label: str, in_flight: int) -> None:
        self.ws = ws
        self.peer = peer
        self.label = label
        self.started = time.monotonic()
        self.last_active = self.started
        self.last_active_ms = peer.connected_at
        self.connect_ok = False  # $connect returned 200
        self.open = False  # handshake answered 101 and frames flow
        self.lost = False  # the connection is over (closed or dropped)
        self.disconnected = False  # $disconnect dispatched
        self.server_close: tuple[int, str] | None = None
        # How the connection ended when the server did not close it: the client's close
        # frame, or a protocol error we closed for (1009 message too big).
        self.ended_by: tuple[int, str] | None = None
        self.close_status: tuple[int, str] = (ABNORMAL, "Connection lost")
        self.closing: asyncio.Task[Any] | None = None
        self.slots = asyncio.Semaphore(in_flight)

    def timed_out(self, now: float, idle_s: float, longest_s: float) -> str | None:
        """Why API Gateway would close this connection at ``now`` (None: it would not)."""
        if not self.connected:
            return None
        if now - self.started >= longest_s:
            return "Maximum connection duration"
        if now - self.last_active >= idle_s:
            return "Idle timeout"
        return None

    @property
    def connection_id(self) -> str:
        return self.peer.connection_id

    @property
    def connected(self) -> bool:
        """True while @connections may address it: open and not closing."""
        return self.open and not self.lost and self.server_close is None and not self.ws.closed

    def touch(self) -> None:
        self.last_active = time.monotonic()
        self.last_active_ms = now_ms()


def select_route(body: str, route_keys: Iterable[str]) -> str:
    """API Gateway's ``$request.body.action`` selection, falling back to ``$default``.

    A body whose action cannot be read — not JSON, or nested too deeply to parse — goes to
    ``$default``, as on AWS, whose handler answers it.
    """
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        return DEFAULT_ROUTE
    action = doc.get("action") if isinstance(doc, dict) else None
    if isinstance(action, str) and not action.startswith("$") and action in set(route_keys):
        return action
    return DEFAULT_ROUTE


def random_label() -> Callable[[str], str]:
    key = secrets.token_bytes(32)

    def label(connection_id: str) -> str:
        return hmac.new(key, connection_id.encode(), hashlib.sha256).hexdigest()[:16]

    return label
