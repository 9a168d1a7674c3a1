"""``$default``: every message whose action has no route gets a structured error reply.

Unparseable frames never reach the body (the frame replies INVALID_MESSAGE); a known action
arriving here means its route is not deployed, which the client is told plainly.
"""

from __future__ import annotations

from typing import Any, NoReturn

from runtime.errors import ErrorCode, ServiceError
from runtime.invocation import Invocation, message_route
from runtime.protocol import require_action
from runtime.routes import ACTIONS


@message_route()
def handler(inv: Invocation, message: dict[str, Any]) -> NoReturn:
    action = require_action(message)  # INVALID_ACTION for a missing or unknown action
    raise ServiceError(
        ErrorCode.INVALID_ACTION,
        f"The action '{action}' is not available on this endpoint right now; "
        "retry later, and report it if it persists.",
        action=action,
        supportedActions=list(ACTIONS),
    )
