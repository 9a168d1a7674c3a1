"""The frame every handler runs in: log context, metrics buffer, error replies, latency.

Handlers raise ``ServiceError`` for anything a client did wrong or a limit said no; this
module turns it into the structured reply, a log line and the ConnectionErrors metric.
A dependency still failing after botocore's retries becomes SERVICE_UNAVAILABLE and anything
unexpected INTERNAL_ERROR, both logged with their stack trace (and counted in ServerErrors, the
metric that pages). Nothing escapes as an unhandled exception, and metrics are published once,
at the end: as EMF log lines (``metricsTransport: emf``, no API call) or with one PutMetricData
(``api``).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from runtime import aws, budget, routes
from runtime.config import config
from runtime.errors import ErrorCode, ServiceError
from runtime.hashing import connection_hash, ip_hash
from runtime.iam.calls import RUNNING
from runtime.metric_names import (
    CONNECTION_ERRORS,
    DEPENDENCY_FAILURES,
    RATE_LIMIT_EXCEEDED,
    SERVER_ERRORS,
    MetricSpec,
)
from runtime.observability import logs
from runtime.observability.logs import log
from runtime.observability.metrics import MetricsBuffer
from runtime.protocol import encode, error_message, parse_message

# Error codes AWS returns when a dependency is overloaded or down (after botocore's retries).
UNAVAILABLE_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "ResourceNotFoundException",
        "TransactionInProgressException",
    }
)

# Error replies the service caused, as opposed to those a client can cause alone.
SERVER_ERROR_CODES = frozenset({ErrorCode.INTERNAL_ERROR, ErrorCode.SERVICE_UNAVAILABLE})
EMF = "emf"

# Functions this process has already served: on Lambda a process serves one function, so
# this is the usual cold-start flag; the local stack serves them all from one process and
# still reports each function's first invocation as its cold start.
_warm_functions: set[str] = set()


@dataclass
class Invocation:
    """What a handler knows about the request it serves."""

    event: dict[str, Any]
    context: Any
    operation: str
    metrics: MetricsBuffer
    request_id: str
    connection_id: str = ""
    started: float = field(default_factory=time.perf_counter)
    # Why the invocation could not start (the stack key unreadable): answered, never raised.
    setup_error: Exception | None = None

    @property
    def request_context(self) -> dict[str, Any]:
        return self.event.get("requestContext") or {}

    @property
    def source_ip(self) -> str | None:
        """The client IP. Never log or store it: use ``ip_hash``."""
        return (self.request_context.get("identity") or {}).get("sourceIp")

    @functools.cached_property
    def ip_hash(self) -> str:
        return ip_hash(self.source_ip)

    @functools.cached_property
    def connection_hash(self) -> str:
        return connection_hash(self.connection_id)

    @property
    def connected_at_ms(self) -> int | None:
        value = self.request_context.get("connectedAt")
        return int(value) if isinstance(value, int | float) else None

    def elapsed_ms(self) -> float:
        return round((time.perf_counter() - self.started) * 1000, 3)

    def identify(self, *, session_id: str | None = None, user_id: str | None = None) -> None:
        """Name the session (it becomes the correlation ID) and the user in every later line."""
        if session_id:
            logs.set_invocation_fields(sessionId=session_id, correlationId=session_id)
        if user_id:
            logs.set_invocation_fields(userContext={"userId": user_id, "ipHash": self.ip_hash})

    def count_dependency_failure(self, dependency: str, error: BaseException) -> None:
        """A degradation the request survives: a WARN line and the DependencyFailures metric."""
        log.bind(errorMessage=_describe(error)).warning(f"{dependency} failed; continuing degraded")
        self.metrics.add(DEPENDENCY_FAILURES, 1, Operation=dependency)


def _describe(error: BaseException) -> str:
    if isinstance(error, ClientError):
        return f"{aws.error_code(error) or 'ClientError'}: {aws.error_message(error)}"
    return f"{type(error).__name__}: {error}"


def is_unavailable(error: BaseException) -> bool:
    """True for AWS failures that mean 'try again later' rather than a bug."""
    if isinstance(error, BotoCoreError):
        return True
    if isinstance(error, ClientError):
        return aws.error_code(error) in UNAVAILABLE_CODES or aws.http_status(error) >= 500
    return False


def _context_name(context: Any) -> str:
    return getattr(context, "function_name", None) or "unknown"


def _begin(
    event: dict[str, Any], context: Any, operation: str, *, budgeted: bool = True
) -> tuple[Invocation, Any]:
    """Start an invocation; ``budgeted``: AWS call attempts must fit its remaining time
    (request paths; scheduled jobs watch their own time and step aside instead)."""
    # First: every AWS call from here on (the key read included) is this function's, checked
    # against its IAM policy where IAM is emulated (runtime.iam; the local stack, the tests).
    running_token = RUNNING.set(routes.BY_OPERATION[operation])
    cfg = config()
    logs.configure(cfg.logLevel)
    request_id = getattr(context, "aws_request_id", None) or (
        event.get("requestContext") or {}
    ).get("requestId", "unknown")
    inv = Invocation(
        event=event,
        context=context,
        operation=operation,
        metrics=MetricsBuffer(cfg.metricsNamespace, cfg.stage),
        request_id=str(request_id),
        connection_id=str((event.get("requestContext") or {}).get("connectionId") or ""),
    )
    # Started first: on a cold start the first hash reads the key, an AWS call like any other.
    budget_token = budget.start(context if budgeted else None)
    correlation = inv.request_id
    if inv.connection_id:
        try:
            correlation = inv.connection_hash  # the first hash reads the key (cold start)
        except Exception as error:  # SSM unreachable or denied: the reply says so
            inv.setup_error = error
    token = logs.start_invocation(
        {
            "function": _context_name(context),
            "operation": operation,
            "requestId": inv.request_id,
            "correlationId": correlation,
            "coldStart": _context_name(context) not in _warm_functions,
        },
        redact=(inv.connection_id, inv.source_ip or ""),
    )
    _warm_functions.add(_context_name(context))
    return inv, (token, budget_token, running_token)


def _finish(inv: Invocation, tokens: tuple[Any, Any, Any]) -> None:
    log_token, budget_token, running_token = tokens
    try:
        publish_metrics(inv.metrics)
    finally:
        budget.end(budget_token)
        logs.end_invocation(log_token)
        RUNNING.reset(running_token)


def publish_metrics(metrics: MetricsBuffer) -> None:
    """Everything buffered, once: EMF log line(s), or one PutMetricData call.

    A failure is logged, never raised: the request itself has been served.
    """
    if not len(metrics):
        return
    try:
        if config().metricsTransport == EMF:
            for document in metrics.emf_documents():
                logs.write_metrics(document)
            return
        aws.cloudwatch().put_metric_data(
            Namespace=metrics.namespace, MetricData=metrics.metric_data()
        )
    except Exception as error:
        log.bind(errorMessage=_describe(error), errorCode="METRICS_PUBLISH_FAILED").warning(
            "could not publish metrics; the request itself succeeded"
        )
    finally:
        metrics.clear()


def _to_service_error(error: Exception) -> ServiceError:
    if isinstance(error, ServiceError):
        return error
    if is_unavailable(error):
        return ServiceError(
            ErrorCode.SERVICE_UNAVAILABLE,
            "The service is temporarily unavailable; please retry shortly.",
            retryable=True,
        )
    return ServiceError(
        ErrorCode.INTERNAL_ERROR,
        "An unexpected error occurred; retry once, then report the 'requestId'.",
    )


def record_error(inv: Invocation, error: ServiceError, cause: BaseException | None = None) -> None:
    """Log an error reply (with the stack trace for 5xx) and count it."""
    bound = log.bind(
        errorCode=error.code.value,
        errorMessage=error.message if cause is None else _describe(cause),
        durationMs=inv.elapsed_ms(),
        status=error.status,
    )
    if error.status >= 500:
        bound.opt(exception=cause or error).error(f"{inv.operation} failed: {error.code.value}")
        if cause is not None and is_unavailable(cause):
            inv.metrics.add(DEPENDENCY_FAILURES, 1, Operation=inv.operation)
    else:
        bound.warning(f"{inv.operation} rejected: {error.code.value}")
    inv.metrics.add(CONNECTION_ERRORS, 1, ErrorCode=error.code.value)
    if error.code in SERVER_ERROR_CODES:
        inv.metrics.add(SERVER_ERRORS, 1, ErrorCode=error.code.value)
    if error.code is ErrorCode.RATE_LIMIT_EXCEEDED:
        inv.metrics.add(RATE_LIMIT_EXCEEDED, 1, Operation=inv.operation)


def _error_response(inv: Invocation, error: Exception) -> dict[str, Any]:
    """The structured error reply for a failed request, logged and counted."""
    service_error = _to_service_error(error)
    record_error(inv, service_error, None if error is service_error else error)
    return {
        "statusCode": service_error.status,
        "body": encode(error_message(service_error, inv.request_id)),
    }


def _record_success(inv: Invocation, latency: MetricSpec | None) -> None:
    """A request served: its latency metric (if the route has one) and the INFO line."""
    if latency is not None:
        inv.metrics.add(latency, inv.elapsed_ms())
    log.bind(durationMs=inv.elapsed_ms(), status=200).info(f"{inv.operation} succeeded")


def _serve(
    event: dict[str, Any],
    context: Any,
    operation: str,
    latency: MetricSpec | None,
    respond: Callable[[Invocation], dict[str, Any]],
) -> dict[str, Any]:
    """One request in the frame: ``respond``'s response, or the structured error response."""
    inv, token = _begin(event, context, operation)
    try:
        try:
            if inv.setup_error is not None:
                raise inv.setup_error
            response = respond(inv)
        except Exception as error:
            return _error_response(inv, error)
        _record_success(inv, latency)
        return response
    finally:
        _finish(inv, token)


def message_route(
    *, latency: MetricSpec | None = None
) -> Callable[
    [Callable[[Invocation, dict[str, Any]], Mapping[str, Any]]], Callable[..., dict[str, Any]]
]:
    """Wrap ``fn(invocation, message) -> reply`` as a Lambda handler for a two-way route.

    The client always gets exactly one reply: ``fn``'s message, or a structured error.
    The operation is the route table's entry for ``fn``'s module.
    """

    def decorate(
        fn: Callable[[Invocation, dict[str, Any]], Mapping[str, Any]],
    ) -> Callable[..., dict[str, Any]]:
        operation = routes.for_module(fn.__module__).operation

        @functools.wraps(fn)
        def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
            def reply(inv: Invocation) -> dict[str, Any]:
                return {
                    "statusCode": 200,
                    "body": encode(fn(inv, parse_message(event.get("body")))),
                }

            return _serve(event, context, operation, latency, reply)

        return handler

    return decorate


def connection_event(
    *, latency: MetricSpec | None = None
) -> Callable[[Callable[[Invocation], None]], Callable[..., dict[str, Any]]]:
    """Wrap ``fn(invocation)`` as the ``$connect`` or ``$disconnect`` handler.

    A ServiceError from ``$connect`` rejects the handshake with its status; the body carries
    the structured error for clients that can read it. The operation is the route table's.
    """

    def decorate(fn: Callable[[Invocation], None]) -> Callable[..., dict[str, Any]]:
        operation = routes.for_module(fn.__module__).operation

        @functools.wraps(fn)
        def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
            def accept(inv: Invocation) -> dict[str, Any]:
                fn(inv)
                return {"statusCode": 200}

            return _serve(event, context, operation, latency, accept)

        return handler

    return decorate


def scheduled_job() -> Callable[
    [Callable[[Invocation], dict[str, Any]]], Callable[..., dict[str, Any]]
]:
    """Wrap ``fn(invocation) -> summary`` as a scheduled function.

    A failure is logged with its stack trace and re-raised, so Lambda counts it in the
    function's Errors metric and the error alarm can fire. The operation is the route table's.
    """

    def decorate(fn: Callable[[Invocation], dict[str, Any]]) -> Callable[..., dict[str, Any]]:
        operation = routes.for_module(fn.__module__).operation

        @functools.wraps(fn)
        def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
            inv, token = _begin(event or {}, context, operation, budgeted=False)
            try:
                try:
                    summary = fn(inv)
                except Exception as error:
                    log.bind(durationMs=inv.elapsed_ms(), errorMessage=_describe(error)).opt(
                        exception=error
                    ).error(f"{operation} failed")
                    raise
                log.bind(durationMs=inv.elapsed_ms(), details=summary).info(f"{operation} finished")
                return summary
            finally:
                _finish(inv, token)

        return handler

    return decorate
