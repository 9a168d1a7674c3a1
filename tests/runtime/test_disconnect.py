"""``$disconnect``: listeners free their place, a speaker ends the session for everyone,
and every redelivery changes nothing."""

from __future__ import annotations

from runtime import store
from runtime.handlers import disconnect
from tests.runtime.helpers_lifecycle import log_lines
from tests.runtime.helpers_resilience import assert_role_released
from tests.support.lambda_events import LambdaContext, disconnect_event


def leave(connection_id: str) -> dict:
    return disconnect.handler(disconnect_event(connection_id), LambdaContext())


def active_count() -> int:
    return store.get_session(store.COUNTERS_KEY)["activeSessions"]


def test_listener_disconnect_frees_its_place_once(aws, service, connections) -> None:
    _, session_id = service.start_session()
    first = service.listener(session_id)
    service.listener(session_id)
    assert store.get_session(session_id)["listenerCount"] == 2

    assert leave(first) == {"statusCode": 200}
    assert store.get_connection(first) is None
    assert store.get_session(session_id)["listenerCount"] == 1

    assert leave(first) == {"statusCode": 200}  # redelivered
    assert store.get_session(session_id)["listenerCount"] == 1
    assert store.get_session(session_id)["isActive"] is True
    assert connections.requests == 0  # a listener leaving tells nobody


def test_listener_count_never_goes_below_zero(aws, service, connections) -> None:
    _, session_id = service.start_session()
    listener = service.listener(session_id)
    # Drift (e.g. a record the sweeper already reconciled): the count is already 0.
    store.remove_listener(session_id)
    assert leave(listener) == {"statusCode": 200}
    assert store.get_session(session_id)["listenerCount"] == 0


def test_speaker_disconnect_ends_the_session_for_every_listener(aws, service, connections) -> None:
    speaker, session_id = service.start_session()
    listeners = [service.listener(session_id, lang) for lang in ("es", "fr", "de", "es")]
    assert active_count() == 1

    assert leave(speaker) == {"statusCode": 200}

    session = store.get_session(session_id)
    assert session["isActive"] is False
    assert session["endReason"] == "speakerDisconnected"
    assert active_count() == 0
    assert list(store.active_sessions()) == []
    for cid in listeners:
        (message,) = connections.messages(cid)
        assert set(message) == {"type", "sessionId", "reason", "timestamp"}
        assert message["type"] == "sessionEnded"
        assert message["sessionId"] == session_id
        assert message["reason"] == "speakerDisconnected"
        # The socket is still open (it may join another session): the role goes, the record
        # and its liveness stay.
        record = store.get_connection(cid)
        assert not set(store.ROLE_ATTRIBUTES) & set(record), record
        assert {"connectedAt", "lastSeenAt", "ipHash"} <= set(record)
    assert store.get_connection(speaker) is None
    assert list(store.listener_connections(session_id)) == []
    assert connections.delivered_to() == set(listeners)  # nothing to the speaker that left


def test_speaker_disconnect_redelivered_changes_nothing(aws, service, connections) -> None:
    speaker, session_id = service.start_session()
    listener = service.listener(session_id)
    _, other_session = service.start_session()
    leave(speaker)
    requests = connections.requests

    assert leave(speaker) == {"statusCode": 200}

    assert connections.requests == requests  # no second sessionEnded
    assert len(connections.messages(listener)) == 1
    # The other session's slot in the active counter is untouched.
    assert active_count() == 1
    assert store.get_session(other_session)["isActive"] is True


def test_refreshed_speakers_old_connection_does_not_end_the_session(
    aws, service, connections
) -> None:
    old_speaker, session_id = service.start_session()
    listener = service.listener(session_id)
    new_speaker = service.refresh(session_id, "speaker")

    assert leave(old_speaker) == {"statusCode": 200}

    session = store.get_session(session_id)
    assert session["isActive"] is True
    assert session["listenerCount"] == 1
    assert active_count() == 1
    assert store.get_connection(old_speaker) is None
    assert store.get_connection(listener) is not None
    assert connections.requests == 0

    leave(new_speaker)  # the current speaker leaving does end it
    assert store.get_session(session_id)["isActive"] is False
    assert [m["type"] for m in connections.messages(listener)] == ["sessionEnded"]


def test_gone_listeners_are_cleaned_and_the_others_still_told(
    aws, service, connections, capsys
) -> None:
    speaker, session_id = service.start_session()
    listeners = [service.listener(session_id) for _ in range(6)]
    gone = set(listeners[:2])
    connections.gone.update(gone)
    capsys.readouterr()

    assert leave(speaker) == {"statusCode": 200}

    assert connections.delivered_to() == set(listeners) - gone
    for cid in listeners:
        if cid in gone:
            assert store.get_connection(cid) is None
        else:
            assert_role_released(cid)
    summary = [
        line
        for line in log_lines(capsys.readouterr().out)
        if "listeners notified" in line["message"]
    ]
    assert len(summary) == 1
    assert summary[0]["details"]["delivered"] == 4
    assert summary[0]["details"]["gone"] == 2
    assert summary[0]["details"]["failed"] == 0
    assert summary[0]["correlationId"] == session_id


def test_a_failing_listener_does_not_stop_the_others_or_the_cleanup(
    aws, service, connections
) -> None:
    speaker, session_id = service.start_session()
    listeners = [service.listener(session_id) for _ in range(4)]
    connections.failing[listeners[0]] = 403

    assert leave(speaker) == {"statusCode": 200}

    assert connections.delivered_to() == set(listeners[1:])
    for cid in listeners:  # the failing one too: the session is over either way
        assert_role_released(cid)
    assert store.get_session(session_id)["isActive"] is False


def test_a_refreshed_listeners_old_connection_gives_back_only_its_own_place(
    aws, service, connections
) -> None:
    _, session_id = service.start_session()
    old = service.listener(session_id, "fr")
    new = service.refresh(session_id, "listener", "fr")
    assert store.get_session(session_id)["listenerCount"] == 2  # both, for a moment

    leave(old)

    assert store.get_session(session_id)["listenerCount"] == 1
    assert store.get_connection(new)["role"] == "listener"


def test_a_listener_leaving_after_its_session_ended_is_a_no_op(aws, service, connections) -> None:
    speaker, session_id = service.start_session()
    listener = service.listener(session_id)
    leave(speaker)
    before = store.get_session(session_id)

    assert leave(listener) == {"statusCode": 200}
    assert store.get_session(session_id) == before


def test_a_connection_without_a_role_just_goes(aws, service, connections) -> None:
    cid = service.connect()
    _, session_id = service.start_session()
    assert leave(cid) == {"statusCode": 200}
    assert store.get_connection(cid) is None
    assert store.get_session(session_id)["isActive"] is True
    assert connections.requests == 0


def test_no_raw_connection_id_in_disconnect_logs(aws, service, connections, capsys) -> None:
    speaker, session_id = service.start_session()
    listeners = [service.listener(session_id) for _ in range(3)]
    connections.gone.add(listeners[0])
    connections.failing[listeners[1]] = 403
    capsys.readouterr()
    leave(speaker)
    leave(listeners[2])
    out = capsys.readouterr().out
    assert log_lines(out)
    for cid in (speaker, *listeners):
        assert cid not in out


def test_listeners_told_session_ended_can_join_another_session_at_once(
    aws, service, connections
) -> None:
    # Issue 21.2: the role used to be released after the push, so a client answering
    # sessionEnded with joinSession on the same socket got FORBIDDEN "already a listener".
    speaker, session_id = service.start_session()
    _, next_session = service.start_session()
    listeners = [service.listener(session_id) for _ in range(8)]
    roles_on_receipt: dict[str, str | None] = {}
    rejoined: dict[str, dict] = {}

    def on_receipt(cid: str, message: dict) -> None:
        if message.get("type") != "sessionEnded":
            return
        roles_on_receipt[cid] = (store.get_connection(cid) or {}).get("role")
        rejoined[cid] = service.join(cid, next_session, "fr")

    connections.on_post = on_receipt
    assert leave(speaker) == {"statusCode": 200}

    assert roles_on_receipt == dict.fromkeys(listeners)
    assert {cid: m["type"] for cid, m in rejoined.items()} == dict.fromkeys(
        listeners, "sessionJoined"
    )
    for cid in listeners:
        record = store.get_connection(cid)
        assert (record["role"], record["sessionId"]) == ("listener", next_session)
    assert store.get_session(next_session)["listenerCount"] == len(listeners)
