"""Helpers for the refresh, sweeper and fault-injection tests.

- ``refresh`` sends ``refreshConnection`` through the real handler.
- ``Faults`` injects AWS errors into the runtime's own boto3 clients with a botocore
  ``before-send`` hook: the error is returned in place of the HTTP response, *inside*
  botocore's retry loop, so retries, backoff and error parsing are the real ones and the
  number of attempts can be counted.
- ``consistency_problems`` reads the tables (with a separate client, untouched by faults)
  and lists every broken invariant: counts, the active counter, roles without a count.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse

from runtime import aws as runtime_aws
from runtime import refresh_tokens, store
from runtime.config import config
from runtime.handlers import refresh_connection
from tests.runtime.helpers_entry import Issuer, join, listener, new_session, speaker
from tests.support.lambda_events import LambdaContext, message_event, reply
from tests.support.runtime_env import create_tables

_ips = itertools.count(1)


def next_ip() -> str:
    """A fresh client IP, so the per-IP limits of $connect and joinSession stay out of the way."""
    n = next(_ips)
    return f"198.18.{n // 250 % 250}.{n % 250 + 1}"  # RFC 2544 benchmarking range


def new_listener() -> str:
    """A connection opened without a token through the real $connect."""
    return listener(ip=next_ip())


def new_speaker(issuer: Issuer, user: str) -> str:
    """A connection opened with ``user``'s token through the real $connect."""
    return speaker(issuer, user, ip=next_ip())


def start_session(issuer: Issuer, user: str) -> tuple[str, str]:
    """(speaker connection ID, session ID) through the real $connect and createSession."""
    return new_session(issuer, user, ip=next_ip())


def join_listeners(session_id: str, n: int, language: str = "es") -> list[str]:
    """``n`` new connections that joined ``session_id`` through the real joinSession."""
    cids = []
    for _ in range(n):
        ip = next_ip()
        cid = listener(ip=ip)
        joined = join(cid, session_id, language, ip=ip)
        assert joined["type"] == "sessionJoined", joined
        cids.append(cid)
    return cids


def refresh(
    connection_id: str,
    session_id: str,
    role: str,
    target_language: str | None = None,
    *,
    connected_at: int = 0,
    replacing: str | None = None,
    token: Any = None,
) -> dict[str, Any]:
    """Send refreshConnection on ``connection_id``; the reply the client sees. ``replacing``:
    the connection it replaces, whose ``refreshToken`` it sends (``token``: send this)."""
    body: dict[str, Any] = {"action": "refreshConnection", "sessionId": session_id, "role": role}
    if target_language is not None:
        body["targetLanguage"] = target_language
    if replacing is not None:
        token = refresh_tokens.issue(session_id, role, replacing)
    if token is not None:
        body["refreshToken"] = token
    event = message_event(connection_id, body, connected_at=connected_at)
    return reply(refresh_connection.handler(event, LambdaContext()))


# --- faults --------------------------------------------------------------------------------------


class _Raw:
    """The minimal urllib3-like body botocore reads an injected response from."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body


def error_response(code: str, status: int, *, url: str = "https://injected.test/") -> AWSResponse:
    """A DynamoDB (AWS JSON 1.0 protocol) error response."""
    body = json.dumps({"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": code})
    return AWSResponse(
        url,
        status,
        {"x-amzn-ErrorType": code, "Content-Type": "application/x-amz-json-1.0"},
        _Raw(body.encode()),
    )


@dataclass
class _Rule:
    operation: str
    code: str
    status: int
    table: str | None
    times: int | None
    when: Callable[[dict[str, Any]], bool] | None
    injected: int = 0


@dataclass
class Faults:
    """Errors injected into one runtime boto3 client; ``attempts`` counts every HTTP attempt."""

    client: Any
    rules: list[_Rule] = field(default_factory=list)
    attempts: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def fail(
        self,
        operation: str,
        code: str = "ProvisionedThroughputExceededException",
        *,
        status: int = 400,
        table: str | None = None,
        times: int | None = None,
        when: Callable[[dict[str, Any]], bool] | None = None,
    ) -> Faults:
        """Answer ``operation`` (on ``table`` only, if given) with ``code``, ``times`` times
        (None: always), for requests whose JSON body satisfies ``when``."""
        self.rules.append(_Rule(operation, code, status, table, times, when))
        return self

    def injected(self, operation: str) -> int:
        return sum(r.injected for r in self.rules if r.operation == operation)

    def _before_send(self, request: Any, **_: Any) -> AWSResponse | None:
        target = request.headers.get("X-Amz-Target", b"")
        target = target.decode() if isinstance(target, bytes) else target
        operation = target.rsplit(".", 1)[-1] if target else _query_action(request.body)
        try:
            body = json.loads(request.body or b"{}")
        except ValueError:
            body = {}
        with self._lock:
            self.attempts[operation] += 1
            for rule in self.rules:
                if rule.operation != operation:
                    continue
                if rule.table and not _mentions_table(body, rule.table):
                    continue
                if rule.when and not rule.when(body):
                    continue
                if rule.times is not None and rule.injected >= rule.times:
                    continue
                rule.injected += 1
                # Every before-send handler runs; in-process moto's is one of them. Pointing
                # the request nowhere makes moto ignore it, so the injected error is the only
                # answer and nothing is written behind it.
                request.url = _NOWHERE
                return error_response(rule.code, rule.status, url=_NOWHERE)
        return None


_NOWHERE = "https://fault-injected.invalid/"


def _query_action(body: Any) -> str:
    text = body.decode() if isinstance(body, bytes) else str(body or "")
    for part in text.split("&"):
        if part.startswith("Action="):
            return part.split("=", 1)[1]
    return "?"


def _mentions_table(body: dict[str, Any], table: str) -> bool:
    if body.get("TableName") == table:
        return True
    # Transactions and batches name their tables inside.
    return f'"{table}"' in json.dumps(body)


@contextmanager
def faults(client: Any) -> Iterator[Faults]:
    """Inject faults into ``client`` (e.g. ``runtime.aws.dynamodb()``) inside the block."""
    injector = Faults(client)
    unique = f"faults-{id(injector)}"
    # Registered first, so it answers before anything else (moto included) sees the request.
    client.meta.events.register_first("before-send", injector._before_send, unique_id=unique)
    try:
        yield injector
    finally:
        client.meta.events.unregister("before-send", unique_id=unique)


# --- invariants ----------------------------------------------------------------------------------


def _scan(client: Any, table: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
    while True:
        page = client.scan(**kwargs)
        items += [store.from_item(i) or {} for i in page.get("Items", [])]
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def held_roles(records: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The connection records that still hold (part of) a role."""
    return {cid: r for cid, r in records.items() if set(store.ROLE_ATTRIBUTES) & set(r)}


def assert_role_released(connection_id: str) -> None:
    """An open connection whose session ended: its record stays, with its liveness and
    without any role attribute (it may join another session on the same socket)."""
    record = store.get_connection(connection_id)
    assert record is not None, connection_id
    assert not set(store.ROLE_ATTRIBUTES) & set(record), record
    assert {"connectedAt", "lastSeenAt"} <= set(record), record


def snapshot() -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]], int | None]:
    """(sessions by ID, connections by ID, active counter) read straight from the tables."""
    client = boto3.client("dynamodb")
    sessions = {s["sessionId"]: s for s in _scan(client, config().sessions_table)}
    counter = sessions.pop(store.COUNTERS_KEY, {}).get("activeSessions")
    connections = {c["connectionId"]: c for c in _scan(client, config().connections_table)}
    return sessions, connections, counter


def consistency_problems() -> list[str]:
    """Every broken invariant of the data, in words (empty when all hold)."""
    sessions, connections, counter = snapshot()
    problems: list[str] = []
    active = {sid: s for sid, s in sessions.items() if s.get("isActive")}
    if (counter or 0) != len(active):
        problems.append(f"active counter {counter} != {len(active)} active sessions")
    listeners: Counter[str] = Counter(
        c["sessionId"] for c in connections.values() if c.get("role") == store.LISTENER
    )
    for sid, count in listeners.items():
        if sid not in active:
            problems.append(f"{count} listener record(s) of {sid}, which is not active")
    for sid, session in active.items():
        if session.get("listenerCount", 0) != listeners.get(sid, 0):
            problems.append(
                f"{sid}: listenerCount {session.get('listenerCount')} != "
                f"{listeners.get(sid, 0)} listener records"
            )
        speaker = connections.get(session.get("speakerConnectionId", ""))
        if not speaker or speaker.get("role") != store.SPEAKER or speaker.get("sessionId") != sid:
            problems.append(f"{sid}: its speaker connection has no speaker record")
    return problems


def assert_consistent() -> None:
    problems = consistency_problems()
    assert not problems, problems


# --- direct writes -------------------------------------------------------------------------------
# Only for states no handler can produce on demand: time passing, a crash between two writes.


def _update(table: str, key: dict[str, str], expression: str, **values: Any) -> None:
    boto3.client("dynamodb").update_item(
        TableName=table,
        Key=store.to_item(key),
        UpdateExpression=expression,
        ExpressionAttributeValues={f":{k}": v for k, v in store.to_item(values).items()},
    )


def speaker_missing_for(session_id: str, seconds: float) -> None:
    """Time passing since a sweep noted the session's speaker record missing."""
    _update(
        config().sessions_table,
        {"sessionId": session_id},
        "SET missingSpeakerSince = :t",
        t=int((time.time() - seconds) * 1000),
    )


def silence(connection_id: str, seconds: float) -> None:
    """Make a connection look silent for ``seconds`` (its last heartbeat that long ago)."""
    last_seen = int((time.time() - seconds) * 1000)
    _update(
        config().connections_table,
        {"connectionId": connection_id},
        "SET lastSeenAt = :t",
        t=last_seen,
    )


def expire(session_id: str, seconds_ago: int = 5) -> None:
    """Make a session's time run out."""
    _update(
        config().sessions_table,
        {"sessionId": session_id},
        "SET expiresAt = :t",
        t=int(time.time()) - seconds_ago,
    )


def set_listener_count(session_id: str, count: int) -> None:
    _update(config().sessions_table, {"sessionId": session_id}, "SET listenerCount = :n", n=count)


def set_active_counter(count: int) -> None:
    _update(
        config().sessions_table,
        {"sessionId": store.COUNTERS_KEY},
        "SET activeSessions = :n",
        n=count,
    )


def delete_record(connection_id: str) -> None:
    """A connection record gone without the rest of its $disconnect (a crash half-way)."""
    boto3.client("dynamodb").delete_item(
        TableName=config().connections_table, Key=store.to_item({"connectionId": connection_id})
    )


# --- a moto to stop ------------------------------------------------------------------------------


@dataclass
class StoppableAws:
    """A ThreadedMotoServer of this test's own, which the test may stop and start again.

    moto keeps its state in the process, so a restart on the same port serves the same
    tables: what the runtime wrote before the outage is exactly what it finds after.
    """

    server: Any
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        self.server.stop()

    def start(self) -> None:
        from moto.server import ThreadedMotoServer

        self.server = ThreadedMotoServer(ip_address=self.host, port=self.port, verbose=False)
        self.server.start()


@pytest.fixture(name="stoppable_aws")
def stoppable_aws_fixture(
    runtime_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[StoppableAws]:
    """The runtime pointed at its own moto server (not the shared one, which others use)."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    handle = StoppableAws(server, host, port)
    monkeypatch.setenv("AWS_ENDPOINT_URL", handle.url)
    config.cache_clear()
    runtime_aws.reset_clients()
    # moto's state is per process: start from nothing, whatever ran before in this worker.
    urllib.request.urlopen(urllib.request.Request(f"{handle.url}/moto-api/reset", method="POST"))
    create_tables()
    try:
        yield handle
    finally:
        handle.stop()
        runtime_aws.reset_clients()
