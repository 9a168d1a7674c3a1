"""One JSON object per line on stdout, via loguru configured once per process.

Per-invocation fields (function, operation, requestId, correlationId, coldStart, …) live in
a ContextVar that a loguru patcher merges into every record, so any module can just log, and
concurrent invocations on threads (the local stack) never mix their fields. Worker threads
of one invocation run in a copy of its context (``contextvars.copy_context``) and share them.
"""

from __future__ import annotations

import contextvars
import ipaddress
import json
import re
import sys
import threading
import traceback
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from loguru import logger

_LEVELS = {"WARNING": "WARN", "CRITICAL": "ERROR", "SUCCESS": "INFO", "TRACE": "DEBUG"}
_TO_LOGURU = {"WARN": "WARNING"}
_configured = False
_lock = threading.Lock()

# Fields a log line may carry; anything else passed to ``bind`` is dropped, so nothing
# unreviewed (a raw IP, a token) can leak into CloudWatch by accident.
FIELDS = (
    "function",
    "operation",
    "requestId",
    "correlationId",
    "coldStart",
    "durationMs",
    "errorCode",
    "errorMessage",
    "stackTrace",
    "sessionId",
    "userContext",
    "route",
    "status",
    "details",
)


_fields: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "invocation_log_fields", default=None
)


_REDACT = "_redact"
REDACTED = "[redacted]"
# A record carrying an EMF document (bound under this key) is written whatever the log level:
# it is the invocation's metrics, not a diagnostic, and dropping it would lose them.
_EMF = "_emf"
METRICS_MESSAGE = "metrics"
_threshold = 0


def start_invocation(
    fields: dict[str, Any], *, redact: tuple[str, ...] = ()
) -> contextvars.Token[dict[str, Any] | None]:
    """Begin an invocation's log context; pass the token to ``end_invocation``.

    ``redact`` lists values (the raw connection ID, the client IP) that must never reach a
    log line: a safety net for text we do not write ourselves, such as a botocore error
    message or stack trace quoting an @connections URL.
    """
    variants = {v for raw in redact if raw and len(raw) >= 4 for v in (raw, quote(raw, safe=""))}
    return _fields.set({**fields, _REDACT: tuple(sorted(variants, key=len, reverse=True))})


def end_invocation(token: contextvars.Token[dict[str, Any] | None]) -> None:
    _fields.reset(token)


def bind(**fields: Any) -> None:
    """Add fields (e.g. sessionId, userContext) to every later line of this invocation."""
    current = _fields.get()
    if current is not None:
        current.update({k: v for k, v in fields.items() if v is not None})


def _patch(record: Any) -> None:
    context = _fields.get()
    if context:
        record["extra"] = {**context, **record["extra"]}


def _json_line(record: Any) -> str:
    when: datetime = record["time"].astimezone(UTC)
    level = _LEVELS.get(record["level"].name, record["level"].name)
    line: dict[str, Any] = {
        "timestamp": when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z",
        "level": level,
        "message": record["message"],
    }
    extra = record["extra"]
    for field in FIELDS:
        if field in extra and extra[field] is not None:
            line[field] = extra[field]
    document = extra.get(_EMF)
    if document:
        # EMF's target members are top-level members of the same JSON object as its _aws block.
        line.update({k: v for k, v in document.items() if k not in line})
    exc = record["exception"]
    if exc is not None and exc.type is not None:
        line["stackTrace"] = "".join(traceback.format_exception(exc.type, exc.value, exc.traceback))
        line.setdefault("errorMessage", f"{exc.type.__name__}: {exc.value}")
    text = json.dumps(line, default=str, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate (from a client's string) cannot be written as UTF-8; escaped JSON
        # keeps the line one valid object instead of losing it.
        text = json.dumps(line, default=str, ensure_ascii=True)
    return redact(text, extra.get(_REDACT, ())) + "\n"


# Candidates only; each IPv6 candidate is confirmed by ``ipaddress`` (so "12:30:05" stays).
_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.])")
_IPV6 = re.compile(r"(?<![\w:.])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?![\w:.])")
# An @connections URL names a connection; percent-encoded or not, the ID goes.
_CONNECTION_PATH = re.compile(r"(@connections/)[^/?#\s\"']+")


def _redact_ipv6(match: re.Match[str]) -> str:
    try:
        ipaddress.IPv6Address(match.group())
    except ValueError:
        return match.group()
    return REDACTED


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """The one redaction every log line passes through, inside an invocation or not: the
    invocation's own raw values (its connection ID, its client's IP), then any IP address
    and any connection ID in an @connections path — such as an endpoint URL quoted by a
    botocore error in a scheduled job, which has no client IP of its own to redact."""
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    text = _CONNECTION_PATH.sub(rf"\1{REDACTED}", text)
    text = _IPV4.sub(REDACTED, text)
    return _IPV6.sub(_redact_ipv6, text)


def _sink(message: Any) -> None:
    # sys.stdout is looked up per call so test capture and the local stack's redirection work.
    sys.stdout.write(_json_line(message.record))
    sys.stdout.flush()


def _passes(record: Any) -> bool:
    return record["level"].no >= _threshold or _EMF in record["extra"]


def configure(level: str = "INFO") -> None:
    """Install the JSON sink once per process (later calls only change nothing)."""
    global _configured, _threshold
    with _lock:
        if _configured:
            return
        logger.remove()
        logger.configure(patcher=_patch)
        _threshold = logger.level(_TO_LOGURU.get(level, level)).no
        logger.add(_sink, level=0, filter=_passes, format="{message}", catch=True)
        _configured = True


def write_metrics(document: dict[str, Any]) -> None:
    """One JSON line carrying an EMF document (``_aws`` block and its members), at any level."""
    logger.bind(**{_EMF: document}).info(METRICS_MESSAGE)


def reconfigure(level: str) -> None:
    """Replace the sink's level (tests and the local stack's --set logLevel)."""
    global _configured
    with _lock:
        _configured = False
    configure(level)


log = logger
