"""The service's operations, each run through its real handler with its AWS calls counted.

Every scenario sets up its state first (not counted), then runs one operation under a
``CallCounter``. ``tests/runtime/test_call_budget.py`` asserts the counts against the
budgets; ``python -m bench.call_counter`` prints them (``environment()`` provides moto, the
tables and a recording @connections endpoint when run outside the tests).
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import boto3
from moto import mock_aws

from bench.call_counter import CallCounter
from bench.connections_server import ConnectionsServer
from local.functions import events
from runtime import aws, hash_key, refresh_tokens, store
from runtime.config import config
from runtime.handlers import (
    connect,
    create_session,
    disconnect,
    heartbeat,
    join_session,
    metrics_reporter,
    refresh_connection,
)
from runtime.hashing import ip_hash
from runtime.tables import TABLES

STAGE = "bench"
HASH_KEY_PARAMETER = hash_key.parameter_name_for(f"session-management-{STAGE}")
SPEAKER_DISCONNECT_SIZES = (0, 10, 500)


def _context() -> Any:
    return SimpleNamespace(function_name=f"{STAGE}-fn", aws_request_id=str(uuid.uuid4()))


_API = events.ApiInfo(
    api_id="bench", stage=STAGE, domain_name="bench.example.test", region="us-east-1"
)


def _peer(connection_id: str, ip: str) -> events.Peer:
    return events.Peer(connection_id, ip, "bench", connected_at=events.now_ms())


class Harness:
    """Drives the handlers like clients do and counts the AWS calls of one operation."""

    def __init__(self) -> None:

        self._ids = itertools.count(1)
        self.last_emf_bytes = 0
        self.last_log_bytes = 0
        self.last_log_lines = 0
        self.last_requests: list[tuple[str, dict[str, Any]]] = []
        self.last_duration_s = 0.0
        self.counter = CallCounter(
            [aws.dynamodb(), aws.cloudwatch(), aws.connections()], default_session=False
        )

    def _new_id(self) -> str:
        return f"Bench{next(self._ids):010d}="

    def _ip(self) -> str:
        n = next(self._ids)
        return f"198.18.{n // 250 % 250}.{n % 250 + 1}"  # own IP: per-IP limits stay out of it

    def measure(self, operation: Callable[[], Any]) -> dict[str, int]:
        """The AWS calls ``operation`` makes, by ``service:API``.

        Also kept, for the cost model: the bytes of the EMF log lines it wrote
        (``last_emf_bytes``), of every line it wrote (``last_log_bytes``, ``last_log_lines``),
        its DynamoDB requests (``last_requests``) and its wall-clock duration
        (``last_duration_s``).
        """
        self.counter.reset()
        out = io.StringIO()
        with contextlib.redirect_stdout(out), self.counter:
            started = time.perf_counter()
            operation()
            self.last_duration_s = time.perf_counter() - started
        lines = out.getvalue().splitlines()
        self.last_emf_bytes = sum(len(line.encode()) + 1 for line in lines if '"_aws"' in line)
        self.last_log_bytes = sum(len(line.encode()) + 1 for line in lines)
        self.last_log_lines = len(lines)
        self.last_requests = self.counter.requests()
        return self.counter.counts()

    def send(self, handler: Any, connection_id: str, body: dict[str, Any], **kw: Any) -> Any:

        peer = _peer(connection_id, self._ip())
        peer.connected_at = kw.get("connected_at") or peer.connected_at
        event = events.message_event(_API, peer, body["action"], json.dumps(body))
        return json.loads(handler(event, _context())["body"])

    def connect_event(self, connection_id: str) -> dict[str, Any]:
        return events.connect_event(_API, _peer(connection_id, self._ip()))

    def disconnect_event(self, connection_id: str) -> dict[str, Any]:
        return events.disconnect_event(
            _API, _peer(connection_id, self._ip()), 1000, "Client closed"
        )

    def listener_connection(self) -> str:

        cid = self._new_id()
        assert connect.handler(self.connect_event(cid), _context())["statusCode"] == 200
        return cid

    def speaker_connection(self) -> str:
        """What ``$connect`` records for a verified speaker (token checks are not AWS calls)."""

        cid = self._new_id()
        store.put_connection(
            cid,
            connected_at_ms=int(time.time() * 1000),
            ip_hash=ip_hash(self._ip()),
            user_id=f"user-{cid}",
        )
        return cid

    def session(self, listeners: int = 0) -> tuple[str, str, list[str]]:
        """(speaker connection, session ID, listener connections)."""

        speaker = self.speaker_connection()
        created = self.send(
            create_session.handler, speaker, {"action": "createSession", "sourceLanguage": "en"}
        )
        assert created["type"] == "sessionCreated", created
        session_id = created["sessionId"]
        return speaker, session_id, [self.joined(session_id) for _ in range(listeners)]

    def listeners(self, session_id: str, count: int) -> list[str]:
        """``count`` listeners written through the data layer as joinSession writes them
        (half the calls of driving $connect + joinSession: large sessions set up faster)."""
        ids = []
        for _ in range(count):
            cid = self._new_id()
            store.put_connection(
                cid, connected_at_ms=int(time.time() * 1000), ip_hash=ip_hash(cid), user_id=None
            )
            store.add_listener(session_id, max_listeners=config().maxListenersPerSession)
            store.claim_role(cid, role=store.LISTENER, session_id=session_id, target_language="es")
            ids.append(cid)
        return ids

    def joined(self, session_id: str) -> str:

        cid = self.listener_connection()
        body = {"action": "joinSession", "sessionId": session_id, "targetLanguage": "es"}
        joined = self.send(join_session.handler, cid, body)
        assert joined["type"] == "sessionJoined", joined
        return cid


# --- scenarios -----------------------------------------------------------------------------------


def connect_listener(h: Harness) -> dict[str, int]:

    cid = h._new_id()
    return h.measure(lambda: connect.handler(h.connect_event(cid), _context()))


def connect_at_a_venue(h: Harness) -> dict[str, int]:
    """A handshake from an address whose bucket is in use (a venue's audience behind one
    NAT): the idle-bucket write fails on its condition and the in-use one takes the token."""

    ip = h._ip()
    first = events.connect_event(_API, _peer(h._new_id(), ip))
    second = events.connect_event(_API, _peer(h._new_id(), ip))
    # The bucket's own refill rate (the standalone run sets the limits out of reach, which
    # would refill a token within a millisecond and leave the bucket idle again).
    with _setting("CONNECTION_ATTEMPTS_PER_MINUTE", "20"):
        assert connect.handler(first, _context())["statusCode"] == 200
        return h.measure(lambda: connect.handler(second, _context()))


@contextmanager
def _setting(name: str, value: str) -> Iterator[None]:
    """One setting of the functions' environment, for one scenario."""
    before = os.environ.get(name)
    os.environ[name] = value
    config.cache_clear()
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before
        config.cache_clear()


def create(h: Harness) -> dict[str, int]:

    speaker = h.speaker_connection()
    body = {"action": "createSession", "sourceLanguage": "en"}
    return h.measure(lambda: h.send(create_session.handler, speaker, body))


def join(h: Harness) -> dict[str, int]:

    _, session_id, _ = h.session()
    cid = h.listener_connection()
    body = {"action": "joinSession", "sessionId": session_id, "targetLanguage": "es"}
    return h.measure(lambda: h.send(join_session.handler, cid, body))


def join_unknown(h: Harness) -> dict[str, int]:
    """A join that finds no session: the failed lookup is counted (one more write)."""

    h.session()
    cid = h.listener_connection()
    body = {"action": "joinSession", "sessionId": "quiet-lake-555", "targetLanguage": "es"}
    return h.measure(lambda: h.send(join_session.handler, cid, body))


def refresh_listener(h: Harness, *, proven: bool = True) -> dict[str, int]:
    """A listener's new connection replacing its old one (with the old one's refreshToken)."""
    _, session_id, (old,) = h.session(listeners=1)
    cid = h.listener_connection()
    body = {
        "action": "refreshConnection",
        "sessionId": session_id,
        "role": "listener",
        "targetLanguage": "es",
    }
    if proven:
        body["refreshToken"] = refresh_tokens.issue(session_id, store.LISTENER, old)
    return h.measure(lambda: h.send(refresh_connection.handler, cid, body))


def refresh_listener_unproven(h: Harness) -> dict[str, int]:
    """The same without a refreshToken: held to the cap like a join, same calls."""
    return refresh_listener(h, proven=False)


def refresh_speaker_unproven(h: Harness) -> dict[str, int]:
    """A speaker refresh without a refreshToken: the session is read to learn its speaker."""
    return refresh_speaker(h, proven=False)


def refresh_speaker(h: Harness, *, proven: bool = True) -> dict[str, int]:
    """The speaker's new connection replacing its old one (with the old one's refreshToken)."""
    speaker, session_id, _ = h.session()
    cid = h._new_id()
    # The new connection carries the same speaker's verified identity.
    store.put_connection(
        cid,
        connected_at_ms=int(time.time() * 1000),
        ip_hash=ip_hash(cid),
        user_id=f"user-{speaker}",
    )
    body = {"action": "refreshConnection", "sessionId": session_id, "role": "speaker"}
    if proven:
        body["refreshToken"] = refresh_tokens.issue(session_id, store.SPEAKER, speaker)
    return h.measure(lambda: h.send(refresh_connection.handler, cid, body))


def heartbeat_once(h: Harness) -> dict[str, int]:

    _, _, (listener,) = h.session(listeners=1)
    return h.measure(lambda: h.send(heartbeat.handler, listener, {"action": "heartbeat"}))


def heartbeat_with_notice(h: Harness) -> dict[str, int]:
    """The one heartbeat that finds connectionRefreshRequired due and pushes it."""

    _, _, (listener,) = h.session(listeners=1)
    cfg = config()
    due_ms = heartbeat.refresh_due_ms(
        listener, cfg.connectionRefreshMinutes, cfg.connectionRefreshSpreadMinutes
    )
    opened = int(time.time() * 1000) - due_ms - 1000
    body = {"action": "heartbeat"}
    return h.measure(lambda: h.send(heartbeat.handler, listener, body, connected_at=opened))


def listener_disconnect(h: Harness) -> dict[str, int]:

    _, _, (listener,) = h.session(listeners=1)
    return h.measure(lambda: disconnect.handler(h.disconnect_event(listener), _context()))


def speaker_disconnect(listeners: int) -> Callable[[Harness], dict[str, int]]:
    def scenario(h: Harness) -> dict[str, int]:

        speaker, session_id, _ = h.session()
        h.listeners(session_id, listeners)
        return h.measure(lambda: disconnect.handler(h.disconnect_event(speaker), _context()))

    return scenario


def report(h: Harness) -> dict[str, int]:

    h.session(listeners=2)
    return h.measure(lambda: metrics_reporter.handler({}, _context()))


SCENARIOS: dict[str, Callable[[Harness], dict[str, int]]] = {
    "$connect (listener)": connect_listener,
    "$connect (listener, venue address)": connect_at_a_venue,
    "createSession": create,
    "joinSession": join,
    "joinSession (unknown session)": join_unknown,
    "refreshConnection (listener)": refresh_listener,
    "refreshConnection (speaker)": refresh_speaker,
    "refreshConnection (listener, no refreshToken)": refresh_listener_unproven,
    "refreshConnection (speaker, no refreshToken)": refresh_speaker_unproven,
    "heartbeat": heartbeat_once,
    "heartbeat (refresh notice due)": heartbeat_with_notice,
    "$disconnect (listener)": listener_disconnect,
    **{
        f"$disconnect (speaker, {n} listeners)": speaker_disconnect(n)
        for n in SPEAKER_DISCONNECT_SIZES
    },
    "metricsReporter": report,
}


# --- standalone ----------------------------------------------------------------------------------


@contextmanager
def environment(transport: str = "emf") -> Iterator[ConnectionsServer]:
    """moto, the service's tables and a recording @connections endpoint, for this process."""

    env = {
        "STAGE": STAGE,
        "METRICS_TRANSPORT": transport,
        "IP_HASH_KEY_PARAMETER": HASH_KEY_PARAMETER,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        # Limits out of the way: the bench counts calls, it does not test limits.
        "MAX_LISTENERS_PER_SESSION": "1000",
        "LISTENER_JOINS_PER_MINUTE": "100000",
        "CONNECTION_ATTEMPTS_PER_MINUTE": "100000",
        "HEARTBEATS_PER_MINUTE": "100000",
        "LOG_LEVEL": "ERROR",  # stdout is for the table
    }
    saved = {key: os.environ.get(key) for key in [*env, "CONNECTIONS_ENDPOINT", "AWS_ENDPOINT_URL"]}
    os.environ.update(env)
    os.environ.pop("AWS_ENDPOINT_URL", None)
    try:
        with ConnectionsServer(STAGE) as server, mock_aws():
            os.environ["CONNECTIONS_ENDPOINT"] = server.endpoint
            _fresh_runtime()

            ddb = boto3.client("dynamodb")
            for table in TABLES:
                ddb.create_table(**table.create_table_kwargs(STAGE))
            boto3.client("ssm").put_parameter(
                Name=HASH_KEY_PARAMETER, Value="bench-hmac-key", Type="SecureString"
            )
            # The key is read once per cold start (its cost is in the cold-start table): read
            # it now, so each operation's count is its own, as on a warm function.
            hash_key.ip_hash_key()
            yield server
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        _fresh_runtime()


def _fresh_runtime() -> None:

    config.cache_clear()
    aws.reset_clients()


def measure_all(transport: str = "emf") -> dict[str, dict[str, int]]:
    """Every scenario's AWS calls, by operation, with ``metricsTransport`` = ``transport``."""
    # EMF lines are written whatever the log level; they must not reach the table on stdout.
    with contextlib.redirect_stdout(io.StringIO()), environment(transport):
        harness = Harness()
        return {name: scenario(harness) for name, scenario in SCENARIOS.items()}
