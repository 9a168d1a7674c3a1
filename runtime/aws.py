"""boto3 clients, created once per process and shared by every invocation.

botocore's ``standard`` retry mode retries throttling and transient errors with backoff;
short timeouts bound each attempt, and ``runtime.budget`` refuses an attempt the
invocation's remaining time cannot hold, so a failing or hanging dependency becomes
SERVICE_UNAVAILABLE within the function's timeout rather than a Lambda timeout.
boto3 clients are thread-safe; the fan-out shares one across its worker threads.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from runtime import budget
from runtime.config import config

# total_max_attempts counts the first attempt; botocore reads "max_attempts" in a client
# Config as *retries* (4 attempts, up to 7 s of throttling backoff per call: two such calls
# in a row would outlast a 10 s function). 3 attempts: ≤ 3 s of backoff per call.
RETRIES = {"mode": "standard", "total_max_attempts": 3}
CONNECT_TIMEOUT_S = 1
READ_TIMEOUT_S = 2
CLIENT_CONFIG = Config(
    retries=RETRIES,
    connect_timeout=CONNECT_TIMEOUT_S,
    read_timeout=READ_TIMEOUT_S,
    max_pool_connections=50,
)


# Told of every client created from now on (before its first call): the local stack and the
# runtime tests attach the IAM check (``runtime.iam.calls.Enforcer.attach``). None on AWS.
_client_hooks: list[Callable[[Any], object]] = []


def add_client_hook(hook: Callable[[Any], object]) -> None:
    """Run ``hook(client)`` on every client created after this call (``reset_clients`` to
    apply it to all)."""
    if hook not in _client_hooks:
        _client_hooks.append(hook)


def remove_client_hook(hook: Callable[[Any], object]) -> None:
    if hook in _client_hooks:
        _client_hooks.remove(hook)


def _within_budget(client: Any) -> Any:
    check = functools.partial(budget.check_attempt, CONNECT_TIMEOUT_S + READ_TIMEOUT_S)
    client.meta.events.register("before-send", check)
    for hook in list(_client_hooks):
        hook(client)
    return client


@functools.cache
def dynamodb() -> Any:
    return _within_budget(boto3.client("dynamodb", config=CLIENT_CONFIG))


@functools.cache
def cloudwatch() -> Any:
    return _within_budget(boto3.client("cloudwatch", config=CLIENT_CONFIG))


@functools.cache
def connections() -> Any:
    """The @connections API of this stage's WebSocket API."""
    return _within_budget(
        boto3.client(
            "apigatewaymanagementapi",
            endpoint_url=config().connections_endpoint or None,
            config=CLIENT_CONFIG,
        )
    )


@functools.cache
def ssm() -> Any:
    """Parameter Store: the stack's HMAC key, read once per process."""
    return _within_budget(boto3.client("ssm", config=CLIENT_CONFIG))


def reset_clients() -> None:
    """Forget the cached clients, and the key read through them (tests that move endpoints
    or inject faults)."""
    from runtime import hash_key  # it reads the key through ssm(); imported late, no cycle

    for factory in (dynamodb, cloudwatch, connections, ssm, hash_key.ip_hash_key):
        factory.cache_clear()


def error_code(error: BaseException) -> str | None:
    """The AWS error code of a ``ClientError`` (e.g. ``ConditionalCheckFailedException``)."""
    if not isinstance(error, ClientError):
        return None
    code = error.response.get("Error", {}).get("Code")
    return str(code) if code is not None else None


def error_message(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Message", ""))


def http_status(error: BaseException) -> int:
    """The HTTP status of a ``ClientError``'s response (0 when there is none)."""
    if not isinstance(error, ClientError):
        return 0
    return int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
