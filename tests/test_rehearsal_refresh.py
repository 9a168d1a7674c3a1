"""The rehearsal refreshes as real clients must: with the refreshToken of what it replaces."""

from __future__ import annotations

import asyncio
from typing import Any

from client.rehearsal import Member, Plan, Rehearsal

INFO = {"websocketUrl": "ws://127.0.0.1:1/dev", "settings": {}, "alarmTimeScale": 1}


def _refresh_body(notice: dict[str, Any], language: str | None) -> dict[str, Any]:
    rehearsal = Rehearsal(Plan(port=1, listeners=1), INFO)
    rehearsal.session_id = "golden-eagle-427"
    member = Member(rehearsal, "listener" if language else "speaker", language)
    sent: list[dict[str, Any]] = []

    async def refused(body: dict[str, Any], expected: str) -> tuple[None, str]:
        sent.append(body)
        return None, "stopped here"

    member.connect_and_send = refused  # type: ignore[method-assign]
    asyncio.run(member.refresh(notice))
    assert rehearsal.outcome.refused  # the refusal is reported, not swallowed
    return sent[0]


def test_a_listener_refresh_carries_the_pushed_refresh_token():
    notice = {"type": "connectionRefreshRequired", "refreshToken": "proof", "targetLanguage": "es"}
    body = _refresh_body(notice, "es")
    assert body == {
        "action": "refreshConnection",
        "sessionId": "golden-eagle-427",
        "role": "listener",
        "targetLanguage": "es",
        "refreshToken": "proof",
    }


def test_a_speaker_refresh_carries_it_too_and_none_is_invented():
    assert _refresh_body({"refreshToken": "proof"}, None)["refreshToken"] == "proof"
    assert "refreshToken" not in _refresh_body({}, None)
