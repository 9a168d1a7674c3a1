"""The WebSocket API's throttling, as plain data: the stage's limits and the account's quotas.

``components.api`` gives the stage these limits; the local gateway enforces the very same
ones (``stage_throttling``), with API Gateway's answers.
"""

from __future__ import annotations

import math

from runtime.settings import StackSettings

# API Gateway's default account-level limits; a stage limit above them has no effect.
ACCOUNT_RATE_LIMIT = 10_000
ACCOUNT_BURST_LIMIT = 5_000
# API Gateway WebSocket APIs: new connections per second per account and Region (a quota).
ACCOUNT_NEW_CONNECTIONS_PER_SECOND = 500
MIN_STAGE_RATE_LIMIT = 50
THROTTLE_HEADROOM = 2


def stage_throttling(settings: StackSettings) -> tuple[float, int]:
    """(rate, burst) for the stage's default route settings.

    Sized from the capacity limits: a full deployment (every session at its listener limit,
    plus speakers) heartbeating at the allowed rate, with headroom. Throttling guards against
    runaway clients; capacity itself is enforced by the functions, atomically in DynamoDB.
    """
    connections = settings.maxActiveSessions * (settings.maxListenersPerSession + 1)
    steady = connections * settings.heartbeatsPerMinute / 60
    rate = min(ACCOUNT_RATE_LIMIT, max(MIN_STAGE_RATE_LIMIT, math.ceil(steady * THROTTLE_HEADROOM)))
    burst = min(ACCOUNT_BURST_LIMIT, 2 * rate)
    return float(rate), burst
