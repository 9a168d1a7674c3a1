"""No IAM grant is missing, and none is more than a call needs: the mutation test.

Every runtime test already runs with IAM enforced (``tests/runtime/conftest.py``): a call a
function's policy does not allow fails as on AWS and fails the test. That catches a missing
grant. This module catches the opposite, an over-grant: it removes each grant of the route
table one at a time — each (function, table, action) of ``Function.tables``, each
(function, table, action) of ``Function.indexes``, each ``manages_connections``,
``closes_connections`` and ``reads_hash_key`` — and shows that a call a function really makes
is then denied with AccessDenied. A grant no call needs is an over-grant: remove it (or, if
the call is real, add it to a scenario below).

How, fast: the scenarios below drive the real handlers through every path that calls AWS
(moto, the recording @connections stand-in) once, with every request the enforcer checked
recorded per function. Each mutation is then decided by evaluating its narrowed policy
against those recorded requests (``runtime.iam.evaluate``, microseconds). That is the same
decision the enforcer would take when re-running the scenario under the mutation: the
handlers' path up to their first call the narrowed policy denies is the same as in the
recorded run (a narrowed policy allows nothing the full one denies), so that call is reached
and denied. The refresh grant of issue 19 is re-run for real as well (it fails open, so its
denial shows only as a DependencyFailure and a WARN line).
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest

from runtime import hash_key, hashing, store
from runtime.config import config
from runtime.handlers import (
    default,
    disconnect,
    heartbeat,
    metrics_reporter,
    refresh_connection,
    sweeper,
)
from runtime.iam.calls import Request
from runtime.iam.evaluate import is_allowed
from runtime.iam.policy import function_policy
from runtime.routes import BY_NAME, ROUTES, Function
from runtime.tables import RATE_LIMITS
from tests.runtime.helpers_lifecycle import Service, heartbeat_event
from tests.runtime.helpers_resilience import (
    delete_record,
    expire,
    set_active_counter,
    set_listener_count,
    silence,
    speaker_missing_for,
)
from tests.support.iam import TestIam, runtime_test_names
from tests.support.lambda_events import LambdaContext, disconnect_event, message_event, reply

UNKNOWN_SESSION = "quiet-lake-555"


# --- scenarios: every path of every function that calls AWS ---------------------------------------


def _refresh(
    svc: Service, session_id: str, role: str, language: str | None = None, cid: str = ""
) -> tuple[str, dict]:
    """A refreshConnection on a new connection (or again on ``cid``: a redelivery)."""
    cid = cid or svc.connect(user=svc.speakers.get(session_id) if role == "speaker" else None)
    body: dict[str, Any] = {"action": "refreshConnection", "sessionId": session_id, "role": role}
    if language:
        body["targetLanguage"] = language
    event = message_event(cid, body, ip=svc.next_ip())
    return cid, reply(refresh_connection.handler(event, LambdaContext()))


def _disconnect(connection_id: str) -> None:
    assert disconnect.handler(disconnect_event(connection_id), LambdaContext())["statusCode"] == 200


def clients_come_and_go(svc: Service) -> None:
    """$connect, createSession, joinSession (and a failed lookup), heartbeats with a refresh
    push, $default, refreshes of both roles (and a failed one), both kinds of $disconnect."""
    speaker, session_id = svc.start_session()
    stays, leaves, gone = (svc.listener(session_id) for _ in range(3))
    assert svc.join(svc.connect(), UNKNOWN_SESSION)["code"] == "SESSION_NOT_FOUND"
    # Past refresh + spread (and the warning): both pushes are due.
    for age_s in (0, 116 * 60):
        assert reply(heartbeat.handler(heartbeat_event(stays, age_s=age_s), LambdaContext()))
    body = {"action": "noSuchAction"}
    assert reply(default.handler(message_event(stays, body), LambdaContext()))["type"] == "error"
    _disconnect(leaves)
    new_speaker, refreshed = _refresh(svc, session_id, "speaker")
    assert refreshed["type"] == "connectionRefreshComplete", refreshed
    # Redelivered: the connection already is the speaker (the session is read to be sure).
    _, again = _refresh(svc, session_id, "speaker", cid=new_speaker)
    assert again["type"] == "connectionRefreshComplete", again
    assert _refresh(svc, session_id, "listener", "fr")[1]["type"] == "connectionRefreshComplete"
    assert _refresh(svc, UNKNOWN_SESSION, "listener", "fr")[1]["code"] == "SESSION_NOT_FOUND"
    # The speaker leaves; one listener's socket is already gone (410: its record removed).
    svc.connections.gone.add(gone)
    _disconnect(new_speaker)
    del speaker


def a_user_at_its_session_limit(svc: Service) -> None:
    """One user opens as many sessions as it may; one more is refused after the sessions it
    holds are checked (are any of them already ended?)."""
    for _ in range(config().maxActiveSessionsPerUser):
        assert svc.create(svc.connect(user="busy-speaker"))["type"] == "sessionCreated"
    refused = svc.create(svc.connect(user="busy-speaker"))
    assert refused["code"] == "USER_SESSION_LIMIT_REACHED", refused


def the_reporter_reports(svc: Service) -> None:
    svc.start_session()
    metrics_reporter.handler({"source": "aws.events"}, LambdaContext())


def _sweep() -> dict:
    return sweeper.handler({"source": "aws.events"}, LambdaContext())


def the_sweeper_repairs(svc: Service) -> None:
    """Silent connections (open and gone), expired sessions, a missing speaker, drifting
    counts, orphans of a vanished session."""
    _, drifting = svc.start_session()
    quiet, gone, _ = (svc.listener(drifting) for _ in range(3))
    silence(quiet, 600)
    silence(gone, 600)
    svc.connections.gone.add(gone)
    set_listener_count(drifting, 9)
    _, expired = svc.start_session()
    svc.listener(expired)
    # Told sessionEnded, but already gone: the 410 is logged with the connection's keyed
    # hash (the sweeper's one read of the HMAC key).
    svc.connections.gone.add(svc.listener(expired))
    expire(expired)
    missing_speaker, missing = svc.start_session()
    svc.listener(missing)
    delete_record(missing_speaker)
    orphan_speaker, vanished = svc.start_session()
    svc.listener(vanished)
    boto3.client("dynamodb").delete_item(
        TableName=config().sessions_table, Key=store.to_item({"sessionId": vanished})
    )
    set_active_counter(11)
    _sweep()
    speaker_missing_for(missing, 3600)
    _sweep()
    del orphan_speaker


SCENARIOS: tuple[Callable[[Service], None], ...] = (
    clients_come_and_go,
    a_user_at_its_session_limit,
    the_reporter_reports,
    the_sweeper_repairs,
)


# --- mutations: every grant of the route table, removed one at a time -----------------------------


@dataclasses.dataclass(frozen=True, eq=False)
class Mutation:
    function: str
    removed: str
    narrowed: Function


def _without(grants: Any, table: str, action: str) -> dict[str, tuple[str, ...]]:
    narrowed = {t: tuple(a for a in actions if not (t == table and a == action))
                for t, actions in grants.items()}  # fmt: skip
    return {t: a for t, a in narrowed.items() if a}


def mutations() -> Iterator[Mutation]:
    for f in ROUTES:
        for table, actions in f.tables.items():
            for action in actions:
                narrowed = dataclasses.replace(f, tables=_without(f.tables, table, action))
                yield Mutation(f.name, f"{action} on {table}", narrowed)
        for table, actions in f.indexes.items():
            for action in actions:
                narrowed = dataclasses.replace(f, indexes=_without(f.indexes, table, action))
                yield Mutation(f.name, f"{action} on {table} indexes", narrowed)
        if f.manages_connections:
            narrowed = dataclasses.replace(f, manages_connections=False, closes_connections=False)
            yield Mutation(f.name, "manages_connections", narrowed)
        if f.closes_connections:
            yield Mutation(
                f.name, "closes_connections", dataclasses.replace(f, closes_connections=False)
            )
        if f.reads_hash_key:
            yield Mutation(f.name, "reads_hash_key", dataclasses.replace(f, reads_hash_key=False))


MUTATIONS = tuple(mutations())


@pytest.fixture
def recorded(
    aws: None, service: Service, iam: TestIam, monkeypatch: pytest.MonkeyPatch
) -> dict[str, list[tuple[str, Request]]]:
    """Every request each function made in the scenarios: function → (scenario, request).

    On Lambda each function reads the HMAC key in its own process; here all share one, so
    the key's per-process cache is bypassed: every hash reads it, as a cold start would.
    """
    monkeypatch.setattr(hashing, "ip_hash_key", hash_key.ip_hash_key.__wrapped__)
    calls: dict[str, list[tuple[str, Request]]] = defaultdict(list)
    for scenario in SCENARIOS:
        iam.requests.clear()
        scenario(service)
        for seen in iam.requests:
            calls[seen.function].append((scenario.__name__, seen.request))
    assert not iam.denials  # the full policies allow everything the scenarios do
    return calls


def _first_denied(
    mutation: Mutation, calls: list[tuple[str, Request]]
) -> tuple[str, Request] | None:
    policy = function_policy(mutation.narrowed, runtime_test_names())
    for scenario, request in calls:
        if not is_allowed(policy, request.action, request.resource, request.context):
            return scenario, request
    return None


def test_every_grant_is_needed_by_a_call_a_function_makes(
    recorded: dict[str, list[tuple[str, Request]]],
) -> None:
    caught = {m: _first_denied(m, recorded[m.function]) for m in MUTATIONS}
    over_grants = [f"{m.function}: {m.removed}" for m, denied in caught.items() if denied is None]
    assert over_grants == [], "grants no call needs (over-grants): " + ", ".join(over_grants)
    # Every kind of grant is mutated: the test cannot pass by mutating nothing.
    assert len(MUTATIONS) >= sum(
        sum(map(len, f.tables.values())) + sum(map(len, f.indexes.values())) for f in ROUTES
    )


def test_the_mutations_cover_each_kind_of_grant() -> None:
    removed = {m.removed for m in MUTATIONS}
    assert {"manages_connections", "closes_connections", "reads_hash_key"} <= removed
    assert any(m.removed.endswith("indexes") for m in MUTATIONS)
    assert ("refresh-connection", "dynamodb:GetItem on RateLimits") in {
        (m.function, m.removed) for m in MUTATIONS
    }


@pytest.mark.parametrize("action", ["dynamodb:GetItem", "dynamodb:UpdateItem"])
def test_without_the_refresh_grant_on_rate_limits_a_refresh_is_denied_and_fails_open(
    aws: None, service: Service, iam: TestIam, capsys: pytest.CaptureFixture[str], action: str
) -> None:
    """Issue 19, re-run for real: refreshConnection's RateLimits calls are denied as on AWS,
    its limits fail open with a DependencyFailure, and the enforcement says so."""
    refresh = BY_NAME["refresh-connection"]
    iam.expect_denials()
    iam.enforcer.overrides[refresh.name] = dataclasses.replace(
        refresh, tables=_without(refresh.tables, RATE_LIMITS.logical_name, action)
    )
    capsys.readouterr()  # drop the setup's lines
    clients_come_and_go(service)

    denied = [d for d in iam.denials if d.function == refresh.name]
    assert denied, "no AccessDenied for refreshConnection"
    table = f"arn:aws:dynamodb:us-east-1:123456789012:table/{config().rate_limits_table}"
    assert {(d.action, d.resource, d.code, d.status) for d in denied} == {
        (action, table, "AccessDeniedException", 400)
    }
    assert denied[0].message == (
        "User: arn:aws:sts::123456789012:assumed-role/session-management-test-refresh-connection"
        "-role/session-management-test-refresh-connection is not authorized to perform: "
        f"{action} on resource: {table} because no identity-based policy allows the {action} "
        "action"
    )
    out = capsys.readouterr().out
    assert '"message": "rateLimits failed; continuing degraded"' in out
    assert "AccessDeniedException: User: arn:aws:sts::123456789012:assumed-role/" in out
