"""``heartbeat``: ack, per-connection rate limit, and the once-only refresh / warning pushes."""

from __future__ import annotations

import time

import pytest

from runtime import refresh_tokens, store
from runtime.handlers import heartbeat
from tests.runtime.helpers_lifecycle import (
    heartbeat_event,
    log_lines,
    set_env,
)
from tests.support.lambda_events import LambdaContext, message_event, new_connection_id, reply


def beat(connection_id: str, *, age_s: float = 0) -> dict:
    return reply(heartbeat.handler(heartbeat_event(connection_id, age_s=age_s), LambdaContext()))


@pytest.fixture
def notices(monkeypatch):
    """Refresh at 1 minute of age (no spread), warning from 2; heartbeats unlimited enough
    to test them."""
    set_env(
        monkeypatch,
        CONNECTION_REFRESH_MINUTES=1,
        CONNECTION_REFRESH_SPREAD_MINUTES=0,
        CONNECTION_WARNING_MINUTES=2,
        HEARTBEATS_PER_MINUTE=1000,
    )


def test_heartbeat_is_acknowledged_and_recorded(aws, service, connections) -> None:
    cid = service.connect()
    before = int(time.time() * 1000)
    response = heartbeat.handler(heartbeat_event(cid), LambdaContext())
    assert response["statusCode"] == 200
    ack = reply(response)
    assert set(ack) == {"type", "timestamp"}
    assert ack["type"] == "heartbeatAck"
    assert ack["timestamp"] >= before
    assert store.get_connection(cid)["lastSeenAt"] == ack["timestamp"]
    assert connections.requests == 0  # a young connection gets no push


def test_heartbeat_without_a_record_is_acknowledged_but_not_recreated(
    aws, service, connections
) -> None:
    cid = new_connection_id()
    assert beat(cid)["type"] == "heartbeatAck"
    assert store.get_connection(cid) is None


def test_heartbeat_rate_limit_rejects_with_retry_after(
    aws, service, connections, monkeypatch, frozen_clock
) -> None:
    set_env(monkeypatch, HEARTBEATS_PER_MINUTE=3)
    cid = service.connect()
    assert [beat(cid)["type"] for _ in range(3)] == ["heartbeatAck"] * 3

    response = heartbeat.handler(heartbeat_event(cid), LambdaContext())
    error = reply(response)
    assert response["statusCode"] == 429
    assert error["type"] == "error"
    assert error["code"] == "RATE_LIMIT_EXCEEDED"
    assert error["status"] == 429
    assert 1 <= error["details"]["retryAfter"] <= 60
    assert error["details"]["limit"] == 3
    # A rejected heartbeat is not counted: the window stays at the limit, not above it.
    record = store.get_connection(cid)
    assert record[f"hb{store.heartbeat_window(frozen_clock.now_ms())}"] == 3


def test_a_new_minute_starts_a_new_count_and_drops_the_old_one(aws, service, connections) -> None:
    cid = service.connect()
    now = int(time.time() * 1000)
    window = store.heartbeat_window(now)
    # The previous minute was used up: it must neither count now nor linger in the record.
    for _ in range(4):
        store.record_heartbeat(cid, now_ms=now - store.HEARTBEAT_WINDOW_MS, per_minute=4)
    record = store.record_heartbeat(cid, now_ms=now, per_minute=4)
    assert record[f"hb{window}"] == 1
    assert f"hb{window - 1}" not in record


def test_heartbeats_with_gaps_leave_only_the_current_window(
    aws, service, connections, monkeypatch
) -> None:
    # Issue 21.5: each heartbeat removed only the previous minute's counter, so heartbeats 64 s
    # apart left an hb<minute> attribute behind for every minute they skipped.
    opened = int(time.time() * 1000)
    cid = service.connect()
    clock = {"now": opened}
    monkeypatch.setattr(heartbeat, "now_ms", lambda: clock["now"])
    seen: list[set[str]] = []
    for n in range(24):
        clock["now"] += 64_000 + (n % 3) * 70_000  # gaps of 64 s to 204 s
        event = message_event(cid, {"action": "heartbeat"}, connected_at=opened)
        assert reply(heartbeat.handler(event, LambdaContext()))["type"] == "heartbeatAck"
        record = store.get_connection(cid)
        seen.append({name for name in record if name.startswith("hb")})
        assert seen[-1] == {f"hb{store.heartbeat_window(clock['now'])}"}, seen


def test_refresh_required_is_pushed_once_to_a_speaker(aws, service, connections, notices) -> None:
    speaker, session_id = service.start_session()
    assert beat(speaker, age_s=30)["type"] == "heartbeatAck"
    assert connections.messages(speaker) == []  # not due yet

    acks = [beat(speaker, age_s=70) for _ in range(5)]

    assert [a["type"] for a in acks] == ["heartbeatAck"] * 5
    pushed = connections.messages(speaker)
    assert len(pushed) == 1
    assert pushed[0] == {
        "type": "connectionRefreshRequired",
        "sessionId": session_id,
        "role": "speaker",
        "refreshToken": refresh_tokens.issue(session_id, "speaker", speaker),
        "timestamp": acks[0]["timestamp"],
    }


def test_refresh_required_tells_a_listener_its_language(aws, service, connections, notices) -> None:
    _, session_id = service.start_session()
    listener = service.listener(session_id, "fr")
    for _ in range(3):
        beat(listener, age_s=65)
    pushed = connections.messages(listener)
    assert [m["type"] for m in pushed] == ["connectionRefreshRequired"]
    assert pushed[0]["role"] == "listener"
    assert pushed[0]["targetLanguage"] == "fr"
    assert pushed[0]["sessionId"] == session_id
    assert pushed[0]["refreshToken"] == refresh_tokens.issue(session_id, "listener", listener)


def test_warning_is_pushed_once_with_the_minutes_left(aws, service, connections, notices) -> None:
    speaker, _ = service.start_session()
    beat(speaker, age_s=70)  # refresh notice
    for _ in range(4):
        beat(speaker, age_s=150)  # 2.5 minutes old: warning due
    pushed = connections.messages(speaker)
    assert [m["type"] for m in pushed] == ["connectionRefreshRequired", "connectionWarning"]
    # 120 − 2.5 minutes left, rounded down: never promise more time than there is.
    assert pushed[1]["remainingMinutes"] == 117
    assert isinstance(pushed[1]["timestamp"], int)


def test_both_notices_due_at_once_are_separate_pushes_and_one_reply(
    aws, service, connections, notices
) -> None:
    speaker, _ = service.start_session()
    response = heartbeat.handler(heartbeat_event(speaker, age_s=119 * 60 + 30), LambdaContext())
    assert reply(response)["type"] == "heartbeatAck"
    pushed = connections.messages(speaker)
    assert [m["type"] for m in pushed] == ["connectionRefreshRequired", "connectionWarning"]
    assert pushed[1]["remainingMinutes"] == 0
    beat(speaker, age_s=119 * 60 + 40)
    assert len(connections.messages(speaker)) == 2


def test_a_connection_without_a_role_gets_the_warning_but_no_refresh(
    aws, service, connections, notices
) -> None:
    cid = service.connect()
    beat(cid, age_s=70)
    assert connections.messages(cid) == []
    beat(cid, age_s=130)
    assert [m["type"] for m in connections.messages(cid)] == ["connectionWarning"]


def test_a_failed_push_does_not_fail_the_heartbeat(
    aws, service, connections, notices, capsys
) -> None:
    speaker, _ = service.start_session()
    connections.failing[speaker] = 403
    assert beat(speaker, age_s=70)["type"] == "heartbeatAck"
    lines = log_lines(capsys.readouterr().out)
    warnings = [line for line in lines if line["level"] == "WARN"]
    assert len(warnings) == 1
    assert "connectionRefreshRequired" in warnings[0]["message"]
    assert speaker not in str(lines)


def test_a_gone_connection_still_gets_its_ack(aws, service, connections, notices) -> None:
    speaker, _ = service.start_session()
    connections.gone.add(speaker)
    assert beat(speaker, age_s=70)["type"] == "heartbeatAck"


def test_without_connected_at_no_notice_is_due(aws, service, connections, notices) -> None:
    speaker, _ = service.start_session()
    event = message_event(speaker, {"action": "heartbeat"})
    del event["requestContext"]["connectedAt"]
    assert reply(heartbeat.handler(event, LambdaContext()))["type"] == "heartbeatAck"
    assert connections.requests == 0


def test_malformed_heartbeat_gets_one_error_reply(aws, service, connections) -> None:
    cid = service.connect()
    response = heartbeat.handler(
        message_event(cid, "{not json", route_key="heartbeat"), LambdaContext()
    )
    assert response["statusCode"] == 400
    assert reply(response)["code"] == "INVALID_MESSAGE"


# --- the refresh spread ---------------------------------------------------------------------------


def test_each_connection_has_its_own_stable_refresh_offset_within_the_spread(aws) -> None:
    ids = [new_connection_id() for _ in range(2000)]
    offsets = [heartbeat.refresh_offset_ms(cid, 15) for cid in ids]
    assert all(0 <= o < 15 * 60_000 for o in offsets)
    assert offsets == [heartbeat.refresh_offset_ms(cid, 15) for cid in ids]  # stable
    # Spread over the whole window: every minute of the 15 gets a share near 1/15.
    per_minute = [0] * 15
    for offset in offsets:
        per_minute[offset // 60_000] += 1
    assert min(per_minute) > 2000 / 15 * 0.6 and max(per_minute) < 2000 / 15 * 1.4
    assert heartbeat.refresh_offset_ms(ids[0], 0) == 0
    assert heartbeat.refresh_due_ms(ids[0], 100, 15) == 100 * 60_000 + offsets[0]


def test_the_refresh_push_waits_for_the_connections_own_offset(
    aws, service, connections, monkeypatch
) -> None:
    set_env(
        monkeypatch,
        CONNECTION_REFRESH_MINUTES=1,
        CONNECTION_REFRESH_SPREAD_MINUTES=3,
        # Past the latest refresh (4 min) plus the 5 s the last beat is late: no warning yet.
        CONNECTION_WARNING_MINUTES=5,
        HEARTBEATS_PER_MINUTE=1000,
    )
    speaker, _ = service.start_session()
    due_s = heartbeat.refresh_due_ms(speaker, 1, 3) / 1000
    assert 60 <= due_s < 240
    beat(speaker, age_s=due_s - 1)
    assert connections.messages(speaker) == []  # not yet: its own offset has not passed
    beat(speaker, age_s=due_s + 0.5)
    beat(speaker, age_s=due_s + 5)
    assert [m["type"] for m in connections.messages(speaker)] == ["connectionRefreshRequired"]


def test_a_heartbeat_late_in_a_connection_removes_only_the_windows_a_silence_allows(
    aws, service, connections
) -> None:
    # 110 minutes into a connection: a counter older than heartbeatTimeoutSeconds (90 s)
    # plus the sweeper's slack cannot exist, so the REMOVE list stays short (it listed
    # every minute since the connection opened: 110 names, each heartbeat).
    from bench.call_counter import CallCounter
    from runtime import aws as runtime_aws

    cid = service.connect()
    with CallCounter([runtime_aws.dynamodb()], default_session=False) as calls:
        assert beat(cid, age_s=110 * 60)["type"] == "heartbeatAck"
    ((_, params),) = calls.requests()
    removed = [n for n in params["ExpressionAttributeNames"] if n.startswith("#old")]
    assert 1 <= len(removed) <= 5
    assert store.stale_windows(1000, 0, 90) == range(995, 1000)
    assert store.stale_windows(1000, 0) == range(1000 - 121, 1000)
