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

import time
from collections.abc import Callable

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
