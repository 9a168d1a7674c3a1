"""The @connections API: pushing server messages to clients and closing connections.

A connection that is gone (410 GoneException) is normal — the client left — so ``post`` and
``close`` report it as False and it is never retried. Anything else still failing after
botocore's retries raises. ``fan_out`` posts to many connections concurrently on a bounded
thread pool; one gone or failing listener never stops the others.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from runtime import aws
from runtime.hashing import connection_hash
from runtime.observability.logs import log
from runtime.protocol import encode

# Bounded by the client's connection pool (aws.CLIENT_CONFIG: 50) so threads never queue on it.
MAX_WORKERS = 32


@dataclass(frozen=True)
class FanOutResult:
    """Connection IDs by outcome (IDs stay in memory: log only the counts)."""

    delivered: tuple[str, ...] = ()
    gone: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()
    # The error that made a post fail, by connection ID.
    errors: dict[str, BaseException] = field(default_factory=dict, compare=False, repr=False)

    def counts(self) -> dict[str, int]:
        return {
            "delivered": len(self.delivered),
            "gone": len(self.gone),
            "failed": len(self.failed),
        }


def is_gone(error: BaseException) -> bool:
    """True when API Gateway says the connection no longer exists."""
    return aws.error_code(error) == "GoneException" or aws.http_status(error) == 410


def post(connection_id: str, message: Mapping[str, Any]) -> bool:
    """Send one message; False if the connection is gone."""
    return _post_data(connection_id, encode(message).encode())


def close(connection_id: str) -> bool:
    """Close a connection (its ``$disconnect`` follows); False if it was already gone."""
    try:
        aws.connections().delete_connection(ConnectionId=connection_id)
    except ClientError as error:
        if is_gone(error):
            return False
        raise
    return True


def _post_data(connection_id: str, data: bytes) -> bool:
    try:
        aws.connections().post_to_connection(ConnectionId=connection_id, Data=data)
    except ClientError as error:
        if is_gone(error):
            log.bind(details={"connection": connection_hash(connection_id)}).debug(
                "not delivered: the connection is gone"
            )
            return False
        raise
    return True


def fan_out(connection_ids: Iterable[str], message: Mapping[str, Any]) -> FanOutResult:
    """Post ``message`` to every connection concurrently; never raises for one connection."""
    ids = list(dict.fromkeys(connection_ids))
    if not ids:
        return FanOutResult()
    data = encode(message).encode()  # once, not per listener
    delivered: list[str] = []
    gone: list[str] = []
    failed: list[str] = []
    errors: dict[str, BaseException] = {}
    with ThreadPoolExecutor(
        max_workers=min(MAX_WORKERS, len(ids)), thread_name_prefix="fanout"
    ) as pool:
        # One context copy per task: a Context can be entered by one thread at a time, and
        # the copy carries the invocation's log fields into the worker.
        futures = {
            cid: pool.submit(contextvars.copy_context().run, _post_data, cid, data) for cid in ids
        }
        for cid, future in futures.items():
            try:
                (delivered if future.result() else gone).append(cid)
            except Exception as error:
                failed.append(cid)
                errors[cid] = error
    if failed:
        # One line per fan-out, not per listener: a failing endpoint must not flood the logs.
        log.bind(
            errorMessage=describe(errors[failed[0]]),
            details={"delivered": len(delivered), "gone": len(gone), "failed": len(failed)},
        ).warning("some pushes failed after retries")
    return FanOutResult(tuple(delivered), tuple(gone), tuple(failed), errors)


def describe(error: BaseException) -> str:
    """An error without its text: botocore messages can embed the URL, i.e. a connection ID."""
    if isinstance(error, ClientError):
        return f"{aws.error_code(error) or 'ClientError'} (HTTP {aws.http_status(error) or None})"
    return type(error).__name__
