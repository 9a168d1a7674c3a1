"""The sweeper: silent connections closed, dead sessions ended, counts repaired within a pass.

State comes from the real handlers; only what they cannot produce on demand (time passing,
a crash between two writes) is written directly (helpers_resilience). @connections is the
recording HTTP stand-in, so closes, posts and 410 Gone are real HTTP.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import boto3

from runtime import aws as runtime_aws
from runtime import store
from runtime.config import config
from runtime.handlers import disconnect, sweeper
from tests.runtime.helpers_entry import aws_calls, join
from tests.runtime.helpers_lifecycle import log_lines, set_env
from tests.runtime.helpers_resilience import (
    assert_consistent,
    assert_role_released,
    delete_record,
    expire,
    faults,
    held_roles,
    join_listeners,
    new_listener,
    new_speaker,
    refresh,
    set_active_counter,
    set_listener_count,
    silence,
    snapshot,
    speaker_missing_for,
    start_session,
)
from tests.support.iam import as_the_test
from tests.support.lambda_events import LambdaContext, disconnect_event


def sweep(context: object | None = None) -> dict:
    return sweeper.handler({"source": "aws.events"}, context or LambdaContext())


def _disconnect(connection_id: str) -> None:
    """What API Gateway does after a close: deliver $disconnect."""
    assert disconnect.handler(disconnect_event(connection_id), LambdaContext())["statusCode"] == 200


# --- silent connections --------------------------------------------------------------------------


def test_silent_connections_are_closed_and_their_disconnect_cleans_up(issuer, connections) -> None:
    _, session_id = start_session(issuer, "alice")
    quiet, chatty = join_listeners(session_id, 2)
    silence(quiet, 91)
    silence(chatty, 30)

    summary = sweep()

    assert connections.deletes == [quiet]
    assert summary["closed"] == 1
    assert summary["gone"] == 0
    _disconnect(quiet)  # API Gateway follows the close with $disconnect
    assert store.get_session(session_id)["listenerCount"] == 1
    assert_consistent()


def test_the_timeout_is_the_configured_one(issuer, connections, monkeypatch) -> None:
    set_env(monkeypatch, HEARTBEAT_TIMEOUT_SECONDS=30)
    _, session_id = start_session(issuer, "alice")
    (cid,) = join_listeners(session_id, 1)
    silence(cid, 31)
    sweep()
    assert connections.deletes == [cid]


def test_a_silent_listener_already_gone_is_cleaned_like_disconnect(issuer, connections) -> None:
    _, session_id = start_session(issuer, "alice")
    gone, stays = join_listeners(session_id, 2)
    silence(gone, 120)
    connections.gone.add(gone)  # API Gateway already dropped it: no $disconnect will come

    summary = sweep()

    assert summary["gone"] == 1
    assert store.get_connection(gone) is None
    assert store.get_connection(stays) is not None
    assert store.get_session(session_id)["listenerCount"] == 1
    assert_consistent()


def test_a_silent_speaker_already_gone_ends_the_session(issuer, connections) -> None:
    speaker_cid, session_id = start_session(issuer, "alice")
    listeners = join_listeners(session_id, 3)
    silence(speaker_cid, 200)
    connections.gone.add(speaker_cid)

    summary = sweep()

    assert summary["sessionsEnded"] == 1
    session = store.get_session(session_id)
    assert (session["isActive"], session["endReason"]) == (False, "speakerDisconnected")
    for cid in listeners:
        (ended,) = connections.messages(cid)
        assert (ended["type"], ended["sessionId"], ended["reason"]) == (
            "sessionEnded",
            session_id,
            "speakerDisconnected",
        )
    _, records, counter = snapshot()
    assert held_roles(records) == {} and speaker_cid not in records
    assert counter == 0
    assert_consistent()


# --- dead sessions -------------------------------------------------------------------------------


def test_a_session_whose_speaker_record_is_missing_is_ended(issuer, connections) -> None:
    speaker_cid, session_id = start_session(issuer, "alice")
    listeners = join_listeners(session_id, 2)
    _, healthy = start_session(issuer, "bob")
    delete_record(speaker_cid)  # $disconnect deleted the record, then crashed

    # The first pass only notes it: a $disconnect may be between its two writes.
    noted = sweep()
    assert (noted["speakersMissing"], noted["sessionsEnded"]) == (1, 0)
    assert store.get_session(session_id)["isActive"] is True
    assert connections.delivered_to() == set()
    assert sweep()["sessionsEnded"] == 0  # within the grace: still waiting
    speaker_missing_for(session_id, 60)

    summary = sweep()

    assert summary["sessionsEnded"] == 1
    assert store.get_session(session_id)["isActive"] is False
    assert store.get_session(healthy)["isActive"] is True
    for cid in listeners:
        assert [m["reason"] for m in connections.messages(cid)] == ["expired"]
        assert_role_released(cid)
    assert_consistent()


def test_an_expired_session_is_ended_and_everyone_told(issuer, connections) -> None:
    speaker_cid, session_id = start_session(issuer, "alice")
    listeners = join_listeners(session_id, 2)
    expire(session_id)

    sweep()

    session = store.get_session(session_id)
    assert (session["isActive"], session["endReason"]) == (False, "expired")
    for cid in [*listeners, speaker_cid]:
        (ended,) = connections.messages(cid)
        assert (ended["type"], ended["reason"]) == ("sessionEnded", "expired")
    for cid in listeners:
        assert_role_released(cid)
    assert_consistent()
    # The speaker's own $disconnect later changes nothing.
    _disconnect(speaker_cid)
    assert_consistent()


def test_a_refreshed_session_is_left_alone(issuer, connections) -> None:
    old, session_id = start_session(issuer, "alice")
    join_listeners(session_id, 2)
    new = new_speaker(issuer, "alice")
    assert refresh(new, session_id, "speaker")["type"] == "connectionRefreshComplete"
    _disconnect(old)

    summary = sweep()

    assert summary["sessionsEnded"] == 0
    assert store.get_session(session_id)["isActive"] is True
    assert connections.delivered_to() == set()
    assert_consistent()


def test_a_listener_whose_session_ended_elsewhere_is_not_double_counted(
    issuer, connections
) -> None:
    speaker_cid, session_id = start_session(issuer, "alice")
    join_listeners(session_id, 2)
    silence(speaker_cid, 300)
    sweep()  # closes the speaker ...
    _disconnect(speaker_cid)  # ... whose $disconnect ends the session
    assert store.get_session(session_id)["isActive"] is False
    assert sweep()["sessionsEnded"] == 0
    assert_consistent()


# --- counts --------------------------------------------------------------------------------------


def test_listener_count_drift_is_corrected_within_one_pass(issuer, connections) -> None:
    _, session_id = start_session(issuer, "alice")
    join_listeners(session_id, 3)
    set_listener_count(session_id, 7)  # e.g. a $disconnect that crashed before its decrement

    summary = sweep()

    assert summary["listenerCountsCorrected"] == 1
    assert store.get_session(session_id)["listenerCount"] == 3
    assert_consistent()


def _decrement(body: dict) -> bool:
    return body.get("ExpressionAttributeValues", {}).get(":minus") == {"N": "-1"}


def test_a_join_that_crashed_between_its_writes_is_repaired(issuer, connections) -> None:
    _, session_id = start_session(issuer, "alice")
    join_listeners(session_id, 1)
    cid = new_listener()
    # The claim and then its compensation both fail: the count is one too high.
    with faults(runtime_aws.dynamodb()) as injected:
        injected.fail("UpdateItem", table="session-management-test-Connections")
        injected.fail("UpdateItem", table="session-management-test-Sessions", when=_decrement)
        assert join(cid, session_id)["code"] == "SERVICE_UNAVAILABLE"
    assert store.get_session(session_id)["listenerCount"] == 2

    sweep()

    assert store.get_session(session_id)["listenerCount"] == 1
    assert_consistent()


def test_active_counter_drift_is_corrected(issuer, connections) -> None:
    start_session(issuer, "alice")
    start_session(issuer, "bob")
    set_active_counter(9)

    assert sweep()["activeCounterCorrected"] == 1
    _, _, counter = snapshot()
    assert counter == 2
    set_active_counter(0)  # too low would let sessions past maxActiveSessions
    sweep()
    assert snapshot()[2] == 2
    assert_consistent()


def test_a_consistent_state_is_left_untouched_and_sweeping_twice_is_harmless(
    issuer, connections
) -> None:
    _, session_id = start_session(issuer, "alice")
    join_listeners(session_id, 2)
    before = snapshot()
    first, second = sweep(), sweep()
    assert snapshot()[0] == before[0]
    for summary in (first, second):
        assert summary["sessionsEnded"] == 0
        assert summary["listenerCountsCorrected"] == 0
        assert summary["activeCounterCorrected"] == 0
    assert connections.requests == 0


def test_a_correction_loses_to_a_concurrent_change(issuer) -> None:
    _, session_id = start_session(issuer, "alice")
    assert not store.set_listener_count(session_id, seen=5, actual=0)
    assert store.get_session(session_id)["listenerCount"] == 0
    assert not store.set_active_sessions(seen=7, actual=0)
    assert snapshot()[2] == 1


# --- cost and failures ---------------------------------------------------------------------------


def test_the_pass_costs_a_bounded_number_of_calls(issuer, connections) -> None:
    sessions = [start_session(issuer, f"user-{i}")[1] for i in range(4)]
    for session_id in sessions:
        join_listeners(session_id, 2)

    with aws_calls() as calls:
        summary = sweep()

    assert summary["sessionsChecked"] == 4
    # One Scan, one counter read, one index query, one BatchGetItem, one COUNT per session.
    assert sorted(calls.names) == sorted(
        [
            "dynamodb.Scan(session-management-test-Connections)",
            "dynamodb.GetItem(session-management-test-Sessions)",
            "dynamodb.Query(session-management-test-Sessions)",
            "dynamodb.BatchGetItem",
            *["dynamodb.Query(session-management-test-Connections)"] * 4,
        ]
    )


def test_a_failing_close_is_counted_and_the_pass_goes_on(issuer, connections, capsys) -> None:
    _, session_id = start_session(issuer, "alice")
    failing, quiet = join_listeners(session_id, 2)
    silence(failing, 100)
    silence(quiet, 100)
    connections.failing[failing] = 403
    capsys.readouterr()

    with aws_calls() as calls:
        summary = sweep()

    assert summary["failures"] == 1
    assert summary["closed"] == 1
    assert quiet in connections.deletes
    lines = log_lines(capsys.readouterr().out)
    warning = next(line for line in lines if line["level"] == "WARN")
    assert "closeConnection" in warning["message"]
    assert calls.metric_sum("DependencyFailures", Operation="sweeper.closeConnection") == 1
    out = "\n".join(map(str, lines))
    assert failing not in out and quiet not in out  # never a raw connection ID


@dataclass
class _ShortContext(LambdaContext):
    remaining_ms: int = 3_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def test_the_pass_stops_starting_work_when_time_runs_out(issuer, connections) -> None:
    _, session_id = start_session(issuer, "alice")
    (cid,) = join_listeners(session_id, 1)
    silence(cid, 100)
    summary = sweep(_ShortContext())
    assert summary["truncated"] is True
    assert connections.deletes == []


# --- orphans -------------------------------------------------------------------------------------


def _ended_ago(session_id: str, seconds: int) -> None:
    """Time passing since a session ended (past the sweeper's grace for its $disconnect)."""
    boto3.client("dynamodb").update_item(
        TableName=config().sessions_table,
        Key=store.to_item({"sessionId": session_id}),
        UpdateExpression="SET endedAt = :t",
        ExpressionAttributeValues=store.to_item({":t": int((time.time() - seconds) * 1000)}),
    )


def _ended_messages(connections, cid: str) -> list[tuple[str, str, str]]:
    return [(m["type"], m["sessionId"], m["reason"]) for m in connections.messages(cid)]


def test_listeners_left_by_a_failed_speaker_disconnect_are_told_and_removed(
    issuer, connections
) -> None:
    speaker_cid, session_id = start_session(issuer, "alice")
    listeners = join_listeners(session_id, 2)
    _, healthy = start_session(issuer, "bob")
    live = join_listeners(healthy, 2)
    # $disconnect ends the session, then cannot read the listener list: nobody is told.
    with faults(runtime_aws.dynamodb()) as injected:
        injected.fail(
            "Query", "InternalServerError", status=500, table="session-management-test-Connections"
        )
        disconnect.handler(disconnect_event(speaker_cid), LambdaContext())
    assert store.get_session(session_id)["isActive"] is False
    assert all(store.get_connection(cid) for cid in listeners)

    # Within the grace its $disconnect might still be telling them: left alone.
    assert sweep()["orphans"] == 0
    assert connections.delivered_to() == set()

    _ended_ago(session_id, 60)
    with aws_calls() as calls:
        summary = sweep()

    assert summary["orphans"] == 2
    for cid in listeners:
        assert _ended_messages(connections, cid) == [
            ("sessionEnded", session_id, "speakerDisconnected")
        ]
        assert_role_released(cid)
    for cid in live:  # listeners of an active session are never touched
        assert connections.messages(cid) == []
        assert store.get_connection(cid) is not None
    # What the orphans cost: one BatchGetItem of their sessions, their posts, one batch delete.
    assert sorted(calls.names) == sorted(
        [
            "dynamodb.Scan(session-management-test-Connections)",
            "dynamodb.GetItem(session-management-test-Sessions)",
            "dynamodb.Query(session-management-test-Sessions)",
            "dynamodb.BatchGetItem",
            "dynamodb.Query(session-management-test-Connections)",
            "dynamodb.BatchGetItem",
            *["apigatewaymanagementapi.PostToConnection"] * 2,
            "dynamodb.BatchWriteItem",
        ]
    )
    assert_consistent()
    assert sweep()["orphans"] == 0  # told once
    assert len(connections.messages(listeners[0])) == 1


def test_a_listener_whose_claim_landed_after_the_speaker_left_is_told_and_removed(
    issuer, connections, monkeypatch
) -> None:
    speaker_cid, session_id = start_session(issuer, "alice")
    (early,) = join_listeners(session_id, 1)
    late = new_listener()
    claim_role = store.claim_role

    def claim_after_the_speaker_left(connection_id: str, **kwargs: object) -> None:
        if connection_id == late:  # counted; then $disconnect reads the list; then the claim
            _disconnect(speaker_cid)
        claim_role(connection_id, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(store, "claim_role", claim_after_the_speaker_left)
        assert join(late, session_id)["type"] == "sessionJoined"
    assert _ended_messages(connections, early) == [
        ("sessionEnded", session_id, "speakerDisconnected")
    ]
    assert connections.messages(late) == []
    assert store.get_connection(late)["role"] == "listener"

    _ended_ago(session_id, 60)
    summary = sweep()

    assert summary["orphans"] == 1
    assert _ended_messages(connections, late) == [
        ("sessionEnded", session_id, "speakerDisconnected")
    ]
    assert len(connections.messages(early)) == 1
    _, records, _ = snapshot()
    assert held_roles(records) == {}
    assert_consistent()


def test_an_orphan_of_a_vanished_session_is_told_it_expired(issuer, connections) -> None:
    speaker_cid, session_id = start_session(issuer, "alice")
    (cid,) = join_listeners(session_id, 1)
    # The session item is gone (TTL) and only its connections' records are left.
    boto3.client("dynamodb").delete_item(
        TableName=config().sessions_table, Key=store.to_item({"sessionId": session_id})
    )
    set_active_counter(0)

    assert sweep()["orphans"] == 2
    for orphan in (speaker_cid, cid):
        assert _ended_messages(connections, orphan) == [("sessionEnded", session_id, "expired")]
        assert_role_released(orphan)


def test_the_speaker_of_a_session_the_sweeper_ended_is_removed_without_a_second_notice(
    issuer, connections
) -> None:
    speaker_cid, session_id = start_session(issuer, "alice")
    join_listeners(session_id, 1)
    expire(session_id)
    sweep()
    assert len(connections.messages(speaker_cid)) == 1
    assert store.get_connection(speaker_cid) is not None  # its socket is still open

    _ended_ago(session_id, 60)
    assert sweep()["orphans"] == 1

    assert len(connections.messages(speaker_cid)) == 1
    assert_role_released(speaker_cid)
    _disconnect(speaker_cid)  # its $disconnect later finds nothing to do
    assert_consistent()


def test_a_session_created_during_the_pass_is_not_mistaken_for_an_orphan(
    issuer, connections, monkeypatch
) -> None:
    _, session_id = start_session(issuer, "alice")
    join_listeners(session_id, 1)
    created: list[str] = []
    sweep_connections, active_sessions = store.sweep_connections, store.active_sessions

    def scan_that_sees_a_new_session(silent_since_ms: int):
        yield from sweep_connections(silent_since_ms)
        # A session created and joined while the Scan ran, read by its last page.
        speaker_cid, new_session = start_session(issuer, "bob")
        (cid,) = join_listeners(new_session, 1)
        created.append(new_session)
        with as_the_test():  # the Scan's page, read by the test: not the sweeper's own call
            page = [store.get_connection(speaker_cid), store.get_connection(cid)]
        yield from page

    queries: list[int] = []

    def index_not_caught_up():
        # On the first query the sparse index has not caught up with the new session yet.
        queries.append(1)
        return (s for s in active_sessions() if len(queries) > 1 or s["sessionId"] not in created)

    with monkeypatch.context() as patch:
        patch.setattr(store, "sweep_connections", scan_that_sees_a_new_session)
        patch.setattr(store, "active_sessions", index_not_caught_up)
        with aws_calls() as calls:
            summary = sweep()

    assert created and summary["orphans"] == 0
    assert calls.names.count("dynamodb.BatchGetItem") == 2  # the consistent check did run
    assert connections.delivered_to() == set()
    _, records, _ = snapshot()
    assert len(records) == 4
    assert_consistent()


def test_a_failing_orphan_check_is_counted_and_the_pass_goes_on(issuer, connections) -> None:
    speaker_cid, session_id = start_session(issuer, "alice")
    (cid,) = join_listeners(session_id, 1)
    delete_record(speaker_cid)
    store.end_session(session_id, speaker_connection_id=None, reason="speakerDisconnected")
    _ended_ago(session_id, 60)

    with faults(runtime_aws.dynamodb()) as injected, aws_calls() as calls:
        injected.fail(
            "BatchGetItem",
            "InternalServerError",
            status=500,
            table="session-management-test-Sessions",
        )
        summary = sweep()

    assert (summary["orphans"], summary["failures"]) == (0, 1)
    assert calls.metric_sum("DependencyFailures", Operation="sweeper.orphans") == 1
    assert store.get_connection(cid) is not None  # looked at again next minute
    assert sweep()["orphans"] == 1
    assert_consistent()


# --- races with the speaker's own $disconnect and refresh ----------------------------------------


def test_a_sweep_during_the_speakers_disconnect_leaves_the_ending_to_it(
    issuer, connections, monkeypatch
) -> None:
    speaker_cid, session_id = start_session(issuer, "alice")
    listeners = join_listeners(session_id, 2)
    delete_connection = store.delete_connection
    passes: list[dict] = []

    def delete_then_sweep(connection_id: str) -> dict | None:
        record = delete_connection(connection_id)
        if connection_id == speaker_cid:  # the record is gone, the session not ended yet
            passes.append(sweep())
        return record

    with monkeypatch.context() as patch:
        patch.setattr(store, "delete_connection", delete_then_sweep)
        _disconnect(speaker_cid)

    assert passes and passes[0]["sessionsEnded"] == 0
    session = store.get_session(session_id)
    assert (session["isActive"], session["endReason"]) == (False, "speakerDisconnected")
    for cid in listeners:
        assert _ended_messages(connections, cid) == [
            ("sessionEnded", session_id, "speakerDisconnected")
        ]
        assert_role_released(cid)
    assert sweep()["sessionsEnded"] == 0
    assert_consistent()


def test_a_sweep_during_a_speaker_refresh_leaves_the_session_alive(
    issuer, connections, monkeypatch
) -> None:
    old, session_id = start_session(issuer, "alice")
    listeners = join_listeners(session_id, 2)
    new = new_speaker(issuer, "alice")
    existing_connections = store.existing_connections

    def refresh_while_the_pass_runs(ids):
        # The pass read the session with its old speaker; the swap and the old connection's
        # $disconnect land before it looks that speaker up.
        assert refresh(new, session_id, "speaker")["type"] == "connectionRefreshComplete"
        _disconnect(old)
        return existing_connections(ids)

    with monkeypatch.context() as patch:
        patch.setattr(store, "existing_connections", refresh_while_the_pass_runs)
        summary = sweep()

    assert summary["sessionsEnded"] == 0
    session = store.get_session(session_id)
    assert session["isActive"] is True and session["speakerConnectionId"] == new
    assert [connections.messages(cid) for cid in listeners] == [[], []]
    assert sweep()["sessionsEnded"] == 0
    assert_consistent()


def test_a_speaker_noted_missing_that_refreshes_keeps_its_session(issuer, connections) -> None:
    old, session_id = start_session(issuer, "alice")
    join_listeners(session_id, 1)
    delete_record(old)  # its record is gone (TTL, a crash) while the speaker reconnects
    assert sweep()["speakersMissing"] == 1
    new = new_speaker(issuer, "alice")
    assert refresh(new, session_id, "speaker")["type"] == "connectionRefreshComplete"
    speaker_missing_for(session_id, 60)

    summary = sweep()

    assert (summary["speakersMissing"], summary["sessionsEnded"]) == (0, 0)
    assert store.get_session(session_id)["isActive"] is True
    assert connections.delivered_to() == set()
