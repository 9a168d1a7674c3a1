"""API Gateway's throttles: the stage's rate and burst, the account's new connections/s.

API Gateway throttles with a token bucket (one token a request): ``rate`` tokens a second
refill a bucket of ``burst``. The stage's default route settings (``runtime.throttling
.stage_throttling``, the values the Pulumi program gives the stage) bound the messages; the
account's quota of new connections per second (500 by default, per Region) bounds the
handshakes. A throttled handshake is refused with HTTP 429 ``{"message": "Too Many
Requests"}``; a throttled message reaches no integration and is answered with one frame
``{"message": "Too Many Requests", "connectionId": …, "requestId": …}`` — the shape of API
Gateway's other gateway-error frames (``"Forbidden"``, ``"Internal server error"``); AWS's
documentation names the 429 "Too Many Requests" answer but does not print the frame
(https://docs.aws.amazon.com/apigateway/latest/developerguide/websocket-api-protect.html,
quotas: .../apigateway-execution-service-websocket-limits-table.html). Both count as
``ClientError`` in the AWS/ApiGateway metrics.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from aiohttp import web

from local.functions.events import gateway_id

TOO_MANY_REQUESTS = "Too Many Requests"


class TokenBucket:
    """``rate`` tokens a second into a bucket of ``burst`` (full at start)."""

    def __init__(
        self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a token bucket needs rate > 0 and burst >= 1")
        self.rate = rate
        self.burst = float(burst)
        self.clock = clock
        self.tokens = float(burst)
        self.updated = clock()
        self.throttled = 0

    def take(self) -> bool:
        """One token if there is one (True); else the request is throttled (False)."""
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        self.throttled += 1
        return False


class StageThrottles:
    """The stage's message bucket and the account's handshake bucket (None: unthrottled)."""

    def __init__(
        self,
        message_rate: float | None,
        message_burst: float | None,
        new_connections_per_s: float | None,
    ) -> None:
        self.messages = (
            TokenBucket(message_rate, message_burst or message_rate) if message_rate else None
        )
        self.connects = (
            TokenBucket(new_connections_per_s, new_connections_per_s)
            if new_connections_per_s
            else None
        )

    def handshake_refused(self) -> web.Response | None:
        """The 429 for a handshake over the account's rate; None when it may go on."""
        if self.connects is not None and not self.connects.take():
            return too_many_requests()
        return None

    def message_refused(self, connection_id: str) -> str | None:
        """The frame for a message over the stage's rate; None when it may go on."""
        if self.messages is not None and not self.messages.take():
            return throttled_frame(connection_id)
        return None


def too_many_requests() -> web.Response:
    """A handshake over the account's new-connection rate: HTTP 429, as API Gateway answers."""
    response = web.Response(
        status=429, text=json.dumps({"message": TOO_MANY_REQUESTS}), content_type="application/json"
    )
    response.force_close()
    return response


def throttled_frame(connection_id: str) -> str:
    """The frame a throttled message gets instead of its route's answer."""
    return json.dumps(
        {"message": TOO_MANY_REQUESTS, "connectionId": connection_id, "requestId": gateway_id()}
    )
