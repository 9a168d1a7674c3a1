"""``$connect``: rate-limit handshakes per client IP (a token bucket), verify a speaker token,
record the connection.

It never posts to the connection: API Gateway answers 410 Gone until ``$connect`` returns.
A ServiceError rejects the handshake with its status (429, 401, 503).

``runtime.auth`` (PyJWT and cryptography, a third of this module's import time) is imported
only when a token arrives: listeners, who never send one, do not pay for it in a cold start.
"""

from __future__ import annotations

from runtime import rate_limits, store
from runtime.config import config
from runtime.invocation import Invocation, connection_event
from runtime.observability import logs
from runtime.protocol import now_ms


def _token(inv: Invocation) -> str | None:
    """The ``token`` query parameter; an empty one counts as absent (a listener's URL template)."""
    params = inv.event.get("queryStringParameters") or {}
    token = params.get("token") if isinstance(params, dict) else None
    return token or None


@connection_event()
def handler(inv: Invocation) -> None:
    cfg = config()
    logs.set_invocation_fields(userContext={"ipHash": inv.ip_hash})
    # A token bucket per address: a venue's audience (one NAT address) connects at once,
    # a loop from one address is slowed to connectionAttemptsPerMinute after the burst.
    rate_limits.take_token(
        inv,
        inv.operation,
        "ip",
        inv.source_ip or "unknown",
        per_minute=cfg.connectionAttemptsPerMinute,
        burst=cfg.connectionBurstPerAddress,
    )
    token = _token(inv)
    user_id = None
    if token is not None:
        from runtime import auth  # speakers only: keeps PyJWT off a listener's cold start

        user_id = auth.verify_token(token, inv)
    inv.identify(user_id=user_id)
    store.put_connection(
        inv.connection_id,
        connected_at_ms=inv.connected_at_ms or now_ms(),
        ip_hash=inv.ip_hash,
        user_id=user_id,
    )
