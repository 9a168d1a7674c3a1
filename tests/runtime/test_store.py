"""The data layer's conditional writes: limits hold, redelivery changes nothing."""

from __future__ import annotations

import pytest

from runtime import store


def _session(session_id: str, speaker: str) -> dict:
    return {
        "sessionId": session_id,
        "speakerConnectionId": speaker,
        "speakerUserId": "user-1",
        "sourceLanguage": "en",
        "qualityTier": "standard",
        "createdAt": 1,
        "isActive": True,
        "listenerCount": 0,
        "expiresAt": store.ttl_from_now(),
    }


def test_create_session_enforces_limit_uniqueness_and_single_role(aws) -> None:
    store.put_connection("c1", connected_at_ms=1, ip_hash="h", user_id="user-1")
    store.put_connection("c2", connected_at_ms=1, ip_hash="h", user_id="user-1")
    store.create_session(_session("calm-river-101", "c1"), max_active=1, max_per_user=5)

    with pytest.raises(store.Conflict) as limit:
        store.create_session(_session("calm-river-102", "c2"), max_active=1, max_per_user=5)
    assert limit.value.reasons == ["limit"]

    with pytest.raises(store.Conflict) as taken:
        store.create_session(_session("calm-river-101", "c2"), max_active=5, max_per_user=5)
    assert taken.value.reasons == ["taken"]

    with pytest.raises(store.Conflict) as role:
        store.create_session(_session("calm-river-103", "c1"), max_active=5, max_per_user=5)
    assert role.value.reasons == ["role"]
    assert store.get_session(store.COUNTERS_KEY)["activeSessions"] == 1


def test_listener_count_respects_cap_and_never_goes_negative(aws) -> None:
    store.put_connection("s", connected_at_ms=1, ip_hash="h", user_id="u")
    store.create_session(_session("calm-river-101", "s"), max_active=1, max_per_user=5)
    assert store.add_listener("calm-river-101", max_listeners=1)["listenerCount"] == 1
    with pytest.raises(store.Conflict) as full:
        store.add_listener("calm-river-101", max_listeners=1)
    assert full.value.item["listenerCount"] == 1
    with pytest.raises(store.Conflict) as missing:
        store.add_listener("quiet-lake-555", max_listeners=1)
    assert missing.value.item is None
    assert store.remove_listener("calm-river-101") == 0
    assert store.remove_listener("calm-river-101") is None
    assert store.get_session("calm-river-101")["listenerCount"] == 0


def test_end_session_is_idempotent_and_checks_the_speaker(aws) -> None:
    store.put_connection("s", connected_at_ms=1, ip_hash="h", user_id="u")
    store.create_session(_session("calm-river-101", "s"), max_active=1, max_per_user=5)
    assert not store.end_session("calm-river-101", speaker_connection_id="old", reason="x")
    assert store.end_session("calm-river-101", speaker_connection_id="s", reason="x")
    assert not store.end_session("calm-river-101", speaker_connection_id="s", reason="x")
    assert store.get_session(store.COUNTERS_KEY)["activeSessions"] == 0
    assert list(store.active_sessions()) == []


def test_batched_deletes_use_one_call_per_25(aws) -> None:
    ids = [f"c{i}" for i in range(60)]
    for cid in ids:
        # A role is claimed only by a connection that has a record ($connect wrote it).
        store.put_connection(cid, connected_at_ms=1, ip_hash="h", user_id=None)
        store.claim_role(cid, role="listener", session_id="calm-river-101", target_language="es")
    assert len(list(store.listener_connections("calm-river-101"))) == 60
    assert store.delete_connections(ids) == 3
    assert list(store.listener_connections("calm-river-101")) == []
