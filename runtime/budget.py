"""The invocation's time budget, checked before every AWS call attempt.

botocore bounds each attempt (``CLIENT_CONFIG``: 1 s to connect, 2 s to read) and retries,
but knows nothing of the function's timeout: against a dependency that hangs, a handler's
calls and their retries, then the final ``PutMetricData``, add up past it, and the client
gets no reply at all (or, on ``$connect``, a 500). So every invocation sets its deadline from
its Lambda context, and an attempt that could not finish with ``RESERVE_S`` left for the
reply is not started: it fails at once with ``OutOfTime``, a ``BotoCoreError`` like a
timeout, which the handlers already turn into SERVICE_UNAVAILABLE.

The deadline is a context variable: it holds for the invocation's own thread (threads a
handler starts, such as the fan-out's, have none and are bounded by botocore alone).
"""

from __future__ import annotations

import contextvars
import time
from typing import Any

from botocore.exceptions import BotoCoreError

# Kept for what follows the last call: the reply, the log line, the metrics call's attempt.
RESERVE_S = 1.0

_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "invocation_deadline", default=None
)


class OutOfTime(BotoCoreError):  # type: ignore[misc]  # botocore ships no types
    fmt = "No time left for another AWS call attempt ({remaining:.1f}s of the budget left)"


def start(context: Any) -> contextvars.Token[float | None]:
    """Set this invocation's deadline from ``context.get_remaining_time_in_millis()``."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    deadline = time.monotonic() + remaining() / 1000 if callable(remaining) else None
    return _deadline.set(deadline)


def end(token: contextvars.Token[float | None]) -> None:
    _deadline.reset(token)


def remaining_s() -> float | None:
    """Seconds left in the current invocation (None outside one, or without a context)."""
    deadline = _deadline.get()
    return None if deadline is None else deadline - time.monotonic()


def check_attempt(attempt_s: float, **_kwargs: Any) -> None:
    """botocore ``before-send`` hook (``attempt_s``: the longest one attempt can take):
    refuse an attempt the budget cannot hold."""
    left = remaining_s()
    if left is not None and left < attempt_s + RESERVE_S:
        raise OutOfTime(remaining=max(0.0, left))
