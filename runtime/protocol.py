"""The wire protocol (docs/architecture.md): parsing client frames, building server messages."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from runtime import clock
from runtime.errors import ErrorCode, ServiceError
from runtime.routes import ACTIONS  # the actions clients may send: the route table's

if TYPE_CHECKING:
    from runtime.messages import ErrorReply

# API Gateway rejects WebSocket messages over 128 KB; the service holds itself to the same.
MAX_MESSAGE_BYTES = 128 * 1024
# Client-supplied values echoed back in error details are cut to this length.
_ECHO_CHARS = 64
# No valid message nests deeper than 2; far deeper nesting only makes json (and anything
# that walks the result) recurse until Python's recursion limit, at a depth that depends on
# how deep the caller's stack already is. Refused before parsing, so the answer is the same
# everywhere.
MAX_NESTING_DEPTH = 32
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_BRACKETS = re.compile(r"[\[\]{}]")


def now_ms() -> int:
    return clock.now_ms()


def parse_message(body: Any) -> dict[str, Any]:
    """A client frame as a JSON object, or INVALID_MESSAGE saying why not."""
    if body is None or body == "":
        raise ServiceError(
            ErrorCode.INVALID_MESSAGE,
            "The message is empty; send one JSON object with an 'action'.",
        )
    if not isinstance(body, str):
        raise ServiceError(
            ErrorCode.INVALID_MESSAGE, "The message is not text; send JSON in a text frame."
        )
    size = len(body.encode("utf-8", "surrogatepass"))
    if size > MAX_MESSAGE_BYTES:
        raise ServiceError(
            ErrorCode.INVALID_MESSAGE,
            f"The message is {size} bytes, over the limit of {MAX_MESSAGE_BYTES}; "
            "send a smaller message.",
            maxBytes=MAX_MESSAGE_BYTES,
        )
    if nests_too_deeply(body):
        raise ServiceError(
            ErrorCode.INVALID_MESSAGE,
            f"The message nests arrays or objects deeper than {MAX_NESTING_DEPTH} levels; "
            "send one flat JSON object with an 'action'.",
            maxDepth=MAX_NESTING_DEPTH,
        )
    try:
        message = json.loads(body)
    except (ValueError, RecursionError):
        # ValueError covers malformed JSON and integers too long to convert;
        # RecursionError covers pathological nesting.
        raise ServiceError(
            ErrorCode.INVALID_MESSAGE,
            "The message is not valid JSON; send one JSON object with an 'action'.",
        ) from None
    if not isinstance(message, dict):
        raise ServiceError(
            ErrorCode.INVALID_MESSAGE,
            f"The message is {json_kind(message)}, not a JSON object; "
            "send one JSON object with an 'action'.",
        )
    return message


def json_kind(value: Any) -> str:
    """What a decoded JSON value is, in JSON's words (never a Python type name)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "an empty string" if not value.strip() else "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def nests_too_deeply(text: str) -> bool:
    """Whether arrays and objects in a JSON text nest deeper than ``MAX_NESTING_DEPTH``
    (brackets inside strings don't count), found without recursion; the usual frame has
    fewer brackets than the limit and costs two counts."""
    if text.count("[") + text.count("{") <= MAX_NESTING_DEPTH:
        return False
    depth = 0
    for match in _BRACKETS.finditer(_JSON_STRING.sub("", text)):
        depth += 1 if match.group() in "[{" else -1
        if depth > MAX_NESTING_DEPTH:
            return True
    return False


def echo(value: Any) -> str:
    """A client value made safe to echo back: a short string."""
    text = value if isinstance(value, str) else json.dumps(value, default=str)[:_ECHO_CHARS]
    return text[:_ECHO_CHARS]


def require_action(message: dict[str, Any]) -> str:
    action = message.get("action")
    if action is None:
        raise ServiceError(
            ErrorCode.INVALID_ACTION,
            "The message has no 'action'; set it to one of " + ", ".join(ACTIONS) + ".",
            supportedActions=list(ACTIONS),
        )
    if not isinstance(action, str) or not action:
        raise ServiceError(
            ErrorCode.INVALID_ACTION,
            f"'action' must be a non-empty string, not {json_kind(action)}; "
            "use one of " + ", ".join(ACTIONS) + ".",
            supportedActions=list(ACTIONS),
        )
    if action not in ACTIONS:
        raise ServiceError(
            ErrorCode.INVALID_ACTION,
            f"Unknown action '{echo(action)}'; use one of " + ", ".join(ACTIONS) + ".",
            action=echo(action),
            supportedActions=list(ACTIONS),
        )
    return action


def require_string(message: dict[str, Any], field: str, *, max_length: int = 64) -> str:
    """A required string field, or INVALID_PARAMETERS naming it."""
    value = message.get(field)
    if value is None:
        raise ServiceError(
            ErrorCode.INVALID_PARAMETERS,
            f"'{field}' is required; add it to the message as a string.",
            field=field,
        )
    if not isinstance(value, str) or not value.strip():
        raise ServiceError(
            ErrorCode.INVALID_PARAMETERS,
            f"'{field}' must be a non-empty string, not {json_kind(value)}; send it as text.",
            field=field,
        )
    if len(value) > max_length:
        raise ServiceError(
            ErrorCode.INVALID_PARAMETERS,
            f"'{field}' is longer than {max_length} characters; send at most {max_length}.",
            field=field,
        )
    return value


def optional_choice(
    message: dict[str, Any], field: str, choices: tuple[str, ...], default: str
) -> str:
    value = message.get(field, default)
    if value not in choices:
        raise ServiceError(
            ErrorCode.INVALID_PARAMETERS,
            f"'{field}' must be one of {', '.join(choices)}; leave it out for {default}.",
            field=field,
            allowed=list(choices),
        )
    return str(value)


def server_message(message_type: str, **fields: Any) -> dict[str, Any]:
    """A server → client message: a JSON object whose ``type`` names it, with a timestamp."""
    return {"type": message_type, **fields, "timestamp": fields.get("timestamp", now_ms())}


def error_message(error: ServiceError, request_id: str) -> ErrorReply:
    return {
        "type": "error",
        "code": error.code.value,
        "status": error.status,
        "message": error.message,
        "requestId": request_id,
        "timestamp": now_ms(),
        "details": error.details,
    }


def encode(message: Mapping[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"), default=str)
