"""refreshConnection: a session outlives its connections; refresh is atomic, bounded, idempotent.

State is built through the real handlers ($connect with a real RSA-signed token, createSession,
joinSession, $disconnect); @connections is a real HTTP stand-in that records what listeners get.
"""

from __future__ import annotations

import time

import pytest

from runtime import refresh_tokens, store
from runtime.handlers import disconnect, refresh_connection
from runtime.handlers.refresh_connection import refresh_slack
from tests.runtime.helpers_entry import assert_error, aws_calls, join
from tests.runtime.helpers_lifecycle import log_lines, set_env
from tests.runtime.helpers_resilience import (
    assert_consistent,
    held_roles,
    join_listeners,
    new_listener,
    new_speaker,
    refresh,
    snapshot,
    start_session,
)
from tests.support.lambda_events import LambdaContext, disconnect_event, message_event, reply


def _disconnect(connection_id: str) -> None:
    response = disconnect.handler(disconnect_event(connection_id), LambdaContext())
    assert response["statusCode"] == 200, response


def _session(session_id: str) -> dict:
    session = store.get_session(session_id)
    assert session is not None
    return session


def _complete(message: dict, session_id: str, role: str) -> None:
    assert message["type"] == "connectionRefreshComplete", message
    assert message["sessionId"] == session_id
    assert message["role"] == role
    assert abs(message["timestamp"] - time.time() * 1000) < 60_000


# --- speaker -------------------------------------------------------------------------------------


def test_speaker_refresh_swaps_the_connection_and_extends_the_ttl(issuer) -> None:
    old, session_id = start_session(issuer, "alice")
    before = _session(session_id)
    new = new_speaker(issuer, "alice")
    time.sleep(1.1)  # the TTL is in whole seconds: make the extension observable

    _complete(refresh(new, session_id, "speaker"), session_id, "speaker")

    after = _session(session_id)
    assert after["speakerConnectionId"] == new
    assert after["expiresAt"] > before["expiresAt"]
    assert after["isActive"] is True
    record = store.get_connection(new)
    assert (record["role"], record["sessionId"]) == ("speaker", session_id)
    assert old != new
    assert_consistent()


def test_old_speaker_disconnect_after_refresh_does_not_end_the_session(issuer, connections) -> None:
    old, session_id = start_session(issuer, "alice")
    listeners = [new_listener() for _ in range(2)]
    for cid in listeners:
        assert join(cid, session_id)["type"] == "sessionJoined"
    new = new_speaker(issuer, "alice")
    _complete(refresh(new, session_id, "speaker"), session_id, "speaker")

    _disconnect(old)

    session = _session(session_id)
    assert session["isActive"] is True
    assert session["listenerCount"] == 2
    assert store.get_connection(old) is None
    assert all(connections.messages(cid) == [] for cid in listeners)
    assert_consistent()

    # The new connection is the speaker now: its leaving ends the session for everyone.
    _disconnect(new)
    assert _session(session_id)["isActive"] is False
    for cid in listeners:
        (ended,) = connections.messages(cid)
        assert (ended["type"], ended["reason"]) == ("sessionEnded", "speakerDisconnected")
    assert_consistent()


def test_speaker_refresh_needs_a_token(issuer) -> None:
    _, session_id = start_session(issuer, "alice")
    anonymous = new_listener()
    assert_error(refresh(anonymous, session_id, "speaker"), "UNAUTHORIZED", 401)
    assert store.get_connection(anonymous).get("role") is None


def test_speaker_refresh_by_another_user_is_forbidden(issuer) -> None:
    old, session_id = start_session(issuer, "alice")
    mallory = new_speaker(issuer, "mallory")
    assert_error(refresh(mallory, session_id, "speaker"), "FORBIDDEN", 403)
    assert _session(session_id)["speakerConnectionId"] == old
    assert store.get_connection(mallory).get("role") is None  # the transaction wrote nothing
    assert_consistent()


def test_speaker_refresh_of_an_ended_or_unknown_session_is_not_found(issuer) -> None:
    old, session_id = start_session(issuer, "alice")
    _disconnect(old)
    new = new_speaker(issuer, "alice")
    assert_error(refresh(new, session_id, "speaker"), "SESSION_NOT_FOUND", 404)
    assert_error(refresh(new, "quiet-lake-555", "speaker"), "SESSION_NOT_FOUND", 404)
    assert store.get_connection(new).get("role") is None
    assert_consistent()


def test_speaker_refresh_on_a_connection_with_a_role_is_forbidden(issuer) -> None:
    _, session_id = start_session(issuer, "alice")
    _, other_session = start_session(issuer, "alice")
    busy = new_speaker(issuer, "alice")
    assert join(busy, other_session)["type"] == "sessionJoined"
    details = assert_error(refresh(busy, session_id, "speaker"), "FORBIDDEN", 403)
    assert details["role"] == "listener"
    assert_consistent()


def test_speaker_refresh_redelivered_changes_nothing(issuer) -> None:
    _, session_id = start_session(issuer, "alice")
    new = new_speaker(issuer, "alice")
    _complete(refresh(new, session_id, "speaker"), session_id, "speaker")
    _complete(refresh(new, session_id, "speaker"), session_id, "speaker")
    assert _session(session_id)["speakerConnectionId"] == new

    # A connection that was the speaker but has since been replaced is not the speaker.
    newer = new_speaker(issuer, "alice")
    _complete(refresh(newer, session_id, "speaker", replacing=new), session_id, "speaker")
    assert_error(refresh(new, session_id, "speaker"), "FORBIDDEN", 403)
    assert _session(session_id)["speakerConnectionId"] == newer
    assert_consistent()


def test_speaker_refresh_costs_three_calls(issuer) -> None:
    old, session_id = start_session(issuer, "alice")
    new = new_speaker(issuer, "alice")
    with aws_calls() as calls:
        _complete(refresh(new, session_id, "speaker", replacing=old), session_id, "speaker")
    # GetItem (who is this?), the failed-lookup budget's GetItem (a session-ID lookup must not
    # be a free guess), one TransactWriteItems; no metric on success. Budget: 4.
    assert calls.names == [
        "dynamodb.GetItem(session-management-test-Connections)",
        "dynamodb.GetItem(session-management-test-RateLimits)",
        "dynamodb.TransactWriteItems",
    ]


def test_speaker_refresh_without_a_token_costs_four_calls(issuer) -> None:
    _, session_id = start_session(issuer, "alice")
    new = new_speaker(issuer, "alice")
    with aws_calls() as calls:
        _complete(refresh(new, session_id, "speaker"), session_id, "speaker")
    # Without the refreshToken, which connection it replaces is read from the session.
    assert calls.names == [
        "dynamodb.GetItem(session-management-test-Connections)",
        "dynamodb.GetItem(session-management-test-RateLimits)",
        "dynamodb.GetItem(session-management-test-Sessions)",
        "dynamodb.TransactWriteItems",
    ]


# --- listener ------------------------------------------------------------------------------------


def test_listener_refresh_counts_the_new_connection_until_the_old_one_leaves(issuer) -> None:
    _, session_id = start_session(issuer, "alice")
    old = new_listener()
    assert join(old, session_id, "fr")["type"] == "sessionJoined"
    new = new_listener()

    _complete(refresh(new, session_id, "listener", "fr"), session_id, "listener")

    # Both connections count for the moment of the swap ...
    assert _session(session_id)["listenerCount"] == 2
    record = store.get_connection(new)
    assert (record["role"], record["sessionId"], record["targetLanguage"]) == (
        "listener",
        session_id,
        "fr",
    )
    assert_consistent()
    # ... and the old connection's $disconnect brings the count back to the truth.
    _disconnect(old)
    assert _session(session_id)["listenerCount"] == 1
    assert_consistent()


def test_listener_refresh_overshoot_is_bounded(issuer, monkeypatch) -> None:
    cap = 4
    set_env(monkeypatch, MAX_LISTENERS_PER_SESSION=cap)
    slack = refresh_slack(cap)
    assert slack == 1
    _, session_id = start_session(issuer, "alice")
    olds = [new_listener() for _ in range(cap)]
    for cid in olds:
        assert join(cid, session_id)["type"] == "sessionJoined"
    assert join(new_listener(), session_id)["code"] == "SESSION_FULL"

    first = new_listener()
    _complete(
        refresh(first, session_id, "listener", "es", replacing=olds[0]), session_id, "listener"
    )
    assert _session(session_id)["listenerCount"] == cap + slack
    # Joining is still refused at the cap, and refresh cannot go past cap + slack:
    assert join(new_listener(), session_id)["code"] == "SESSION_FULL"
    second = new_listener()
    details = assert_error(
        refresh(second, session_id, "listener", "es", replacing=olds[1]), "SESSION_FULL", 503
    )
    assert details["retryAfter"] >= 1
    assert store.get_connection(second).get("role") is None  # nothing half-written
    assert "replacedAt" not in store.get_connection(olds[1])
    assert_consistent()

    # Once the first refresher's old connection has gone, the next refresh goes through.
    _disconnect(olds[0])
    _complete(
        refresh(second, session_id, "listener", "es", replacing=olds[1]), session_id, "listener"
    )
    _disconnect(olds[1])
    assert _session(session_id)["listenerCount"] == cap
    assert_consistent()


def test_listener_refresh_redelivered_at_the_bound_still_answers_complete(
    issuer, monkeypatch
) -> None:
    # docs/resilience.md rule 5: a repeated refresh is always answered complete, even when
    # the refresh it repeats used up the last place of the slack.
    cap = 2
    set_env(monkeypatch, MAX_LISTENERS_PER_SESSION=cap)
    _, session_id = start_session(issuer, "alice")
    olds = [new_listener() for _ in range(cap)]
    for cid in olds:
        assert join(cid, session_id)["type"] == "sessionJoined"
    new = new_listener()
    _complete(refresh(new, session_id, "listener", "es", replacing=olds[0]), session_id, "listener")
    assert _session(session_id)["listenerCount"] == cap + refresh_slack(cap)
    for _ in range(2):
        _complete(
            refresh(new, session_id, "listener", "es", replacing=olds[0]), session_id, "listener"
        )
    assert _session(session_id)["listenerCount"] == cap + refresh_slack(cap)
    assert_consistent()


def test_listener_refresh_slack_is_small(issuer) -> None:
    assert refresh_slack(1) == 1
    assert refresh_slack(500) == 50
    assert refresh_slack(10_000) == 1000


def test_listener_refresh_of_an_ended_or_unknown_session_is_not_found(issuer) -> None:
    old, session_id = start_session(issuer, "alice")
    _disconnect(old)
    new = new_listener()
    assert_error(refresh(new, session_id, "listener", "es"), "SESSION_NOT_FOUND", 404)
    assert_error(refresh(new, "quiet-lake-555", "listener", "es"), "SESSION_NOT_FOUND", 404)
    assert store.get_connection(new).get("role") is None
    assert store.get_session("quiet-lake-555") is None  # no item conjured by the ADD
    assert_consistent()


def test_listener_refresh_redelivered_counts_once(issuer) -> None:
    _, session_id = start_session(issuer, "alice")
    new = new_listener()
    for _ in range(3):
        _complete(refresh(new, session_id, "listener", "de"), session_id, "listener")
    assert _session(session_id)["listenerCount"] == 1
    assert_consistent()


def test_listener_refresh_on_a_connection_with_another_role_is_forbidden(issuer) -> None:
    _, session_id = start_session(issuer, "alice")
    _, other_session = start_session(issuer, "alice")
    busy = new_listener()
    assert join(busy, other_session)["type"] == "sessionJoined"
    assert_error(refresh(busy, session_id, "listener", "es"), "FORBIDDEN", 403)
    assert _session(session_id)["listenerCount"] == 0
    assert_consistent()


def test_listener_refresh_costs_two_calls(issuer) -> None:
    _, session_id = start_session(issuer, "alice")
    new = new_listener()
    with aws_calls() as calls:
        _complete(refresh(new, session_id, "listener", "es"), session_id, "listener")
    # The join limit (with the failed-lookup budget in its condition) and the transaction.
    assert calls.names == [
        "dynamodb.UpdateItem(session-management-test-RateLimits)",
        "dynamodb.TransactWriteItems",
    ]  # budget: 3 with a metric


# --- proof: a listener refresh replaces a listener of that session (issue 21.1) ------------------


def test_a_connection_that_never_joined_cannot_refresh_into_a_full_session(
    issuer, monkeypatch
) -> None:
    # The attack: a refresh was a join without the cap. A full session (cap 10, 10 joined)
    # took an 11th "listener" that had never joined, and real listeners' refreshes were then
    # refused SESSION_FULL.
    cap = 10
    set_env(monkeypatch, MAX_LISTENERS_PER_SESSION=cap)
    _, session_id = start_session(issuer, "alice")
    _, other_session = start_session(issuer, "bob")
    members = join_listeners(session_id, cap)
    (elsewhere,) = join_listeners(other_session, 1)
    genuine = refresh_tokens.issue(session_id, "listener", members[0])
    forged = [
        None,  # no proof at all
        refresh_tokens.issue(other_session, "listener", elsewhere),  # another session's
        refresh_tokens.issue(session_id, "speaker", members[0]),  # another role's
        genuine[:-1] + ("0" if genuine[-1] != "0" else "1"),  # a byte changed
        genuine.split(".")[0] + ".",  # no MAC
        "not a token",
        "\x1b[2J.é",
    ]
    outsider = new_listener()
    for token in forged:
        answer = refresh(outsider, session_id, "listener", "es", token=token)
        details = assert_error(answer, "SESSION_FULL", 503)
        assert details["maxListeners"] == cap
        assert "refreshToken" in answer["message"]
        assert _session(session_id)["listenerCount"] == cap
        assert store.get_connection(outsider).get("role") is None
    assert "replacedAt" not in store.get_connection(members[0])

    # A member's refresh, with the token its join gave it, gets the slack place.
    new = new_listener()
    done = refresh(new, session_id, "listener", "es", token=genuine)
    _complete(done, session_id, "listener")
    assert done["refreshToken"] == refresh_tokens.issue(session_id, "listener", new)
    assert _session(session_id)["listenerCount"] == cap + 1
    _disconnect(members[0])
    assert _session(session_id)["listenerCount"] == cap
    assert_consistent()


def test_a_refresh_token_replaces_its_connection_once(issuer, monkeypatch) -> None:
    cap = 3
    set_env(monkeypatch, MAX_LISTENERS_PER_SESSION=cap)
    _, session_id = start_session(issuer, "alice")
    members = join_listeners(session_id, cap)
    first = new_listener()
    _complete(
        refresh(first, session_id, "listener", "es", replacing=members[0]), session_id, "listener"
    )
    assert store.get_connection(members[0])["replacedAt"] > 0

    # The same token again, from another connection: no proof any more, held to the cap.
    second = new_listener()
    answer = refresh(second, session_id, "listener", "es", replacing=members[0])
    assert "retryAfter" not in assert_error(answer, "SESSION_FULL", 503)
    assert _session(session_id)["listenerCount"] == cap + 1
    assert store.get_connection(second).get("role") is None
    assert_consistent()


def test_a_token_whose_connection_has_gone_is_held_to_the_cap(issuer, monkeypatch) -> None:
    # A listener whose connection dropped before it refreshed: its place was freed by the
    # $disconnect, so it gets back in as a join would, if there is room.
    cap = 3
    set_env(monkeypatch, MAX_LISTENERS_PER_SESSION=cap)
    _, session_id = start_session(issuer, "alice")
    members = join_listeners(session_id, cap)
    _disconnect(members[0])
    back = new_listener()
    with aws_calls() as calls:
        done = refresh(back, session_id, "listener", "es", replacing=members[0])
    _complete(done, session_id, "listener")
    # The join limit, the transaction the proof failed, the transaction at the cap.
    assert calls.names == [
        "dynamodb.UpdateItem(session-management-test-RateLimits)",
        "dynamodb.TransactWriteItems",
        "dynamodb.TransactWriteItems",
    ]
    assert _session(session_id)["listenerCount"] == cap
    # The session is full again: the gone connection's token gets no slack place.
    again = new_listener()
    answer = refresh(again, session_id, "listener", "es", replacing=members[0])
    assert_error(answer, "SESSION_FULL", 503)
    assert _session(session_id)["listenerCount"] == cap
    assert_consistent()


# --- validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"role": "speaker"}, "INVALID_PARAMETERS", "sessionId"),
        ({"sessionId": 42, "role": "speaker"}, "INVALID_PARAMETERS", "sessionId"),
        ({"sessionId": "not an id", "role": "speaker"}, "INVALID_SESSION_ID", "sessionId"),
        ({"sessionId": "calm-river-101"}, "INVALID_PARAMETERS", "role"),
        ({"sessionId": "calm-river-101", "role": "admin"}, "INVALID_PARAMETERS", "role"),
        ({"sessionId": "calm-river-101", "role": ["speaker"]}, "INVALID_PARAMETERS", "role"),
        ({"sessionId": "calm-river-101", "role": "listener"}, "INVALID_PARAMETERS", None),
        (
            {"sessionId": "calm-river-101", "role": "speaker", "refreshToken": 42},
            "INVALID_PARAMETERS",
            "refreshToken",
        ),
        (
            {"sessionId": "calm-river-101", "role": "speaker", "refreshToken": "x" * 513},
            "INVALID_PARAMETERS",
            "refreshToken",
        ),
        (
            {"sessionId": "calm-river-101", "role": "listener", "targetLanguage": "xx"},
            "UNSUPPORTED_LANGUAGE",
            "targetLanguage",
        ),
    ],
)
def test_malformed_requests_are_rejected_before_any_aws_call(issuer, body, code, field) -> None:
    cid = new_listener()
    event = message_event(cid, {"action": "refreshConnection", **body})
    with aws_calls() as calls:
        message = reply(refresh_connection.handler(event, LambdaContext()))
    details = assert_error(message, code, 400)
    if field:
        assert details["field"] == field
    assert [n for n in calls.names if n.startswith("dynamodb")] == []


# --- lifetime ------------------------------------------------------------------------------------


def test_a_session_survives_many_refreshes_with_exact_counts(issuer, connections) -> None:
    speaker_cid, session_id = start_session(issuer, "alice")
    listeners = {"es": new_listener(), "fr": new_listener(), "de": new_listener()}
    for language, cid in listeners.items():
        assert join(cid, session_id, language)["type"] == "sessionJoined"

    for _ in range(3):
        replacement = new_speaker(issuer, "alice")
        _complete(
            refresh(replacement, session_id, "speaker", replacing=speaker_cid),
            session_id,
            "speaker",
        )
        _disconnect(speaker_cid)
        speaker_cid = replacement
        for language, old in list(listeners.items()):
            new = new_listener()
            _complete(
                refresh(new, session_id, "listener", language, replacing=old),
                session_id,
                "listener",
            )
            _disconnect(old)
            listeners[language] = new
        session = _session(session_id)
        assert session["isActive"] is True
        assert session["listenerCount"] == 3
        assert session["speakerConnectionId"] == speaker_cid
        assert_consistent()

    assert connections.delivered_to() == set()  # no one was told the session ended
    _disconnect(speaker_cid)
    for cid in listeners.values():
        (ended,) = connections.messages(cid)
        assert ended["type"] == "sessionEnded"
    sessions, records, counter = snapshot()
    assert counter == 0
    assert held_roles(records) == {}
    assert set(records) == set(listeners.values())  # only the open listener sockets
    assert sessions[session_id]["isActive"] is False


def test_refresh_logs_are_correlated_and_never_carry_a_raw_connection_id(issuer, capsys) -> None:
    old, session_id = start_session(issuer, "alice")
    new = new_speaker(issuer, "alice")
    listener_cid = new_listener()
    capsys.readouterr()
    _complete(refresh(new, session_id, "speaker"), session_id, "speaker")
    _complete(refresh(listener_cid, session_id, "listener", "es"), session_id, "listener")
    out = capsys.readouterr().out
    lines = [line for line in log_lines(out) if line.get("operation") == "refreshConnection"]
    assert {line["correlationId"] for line in lines} == {session_id}
    speaker_lines = [line for line in lines if "speaker" in line["message"]]
    assert speaker_lines and all(line["userContext"]["userId"] == "alice" for line in speaker_lines)
    assert all(line["userContext"]["ipHash"] for line in lines)
    for cid in (old, new, listener_cid):
        assert cid not in out
