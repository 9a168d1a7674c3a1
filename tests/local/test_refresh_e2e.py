"""Connection refresh and the sweeper end to end: real WebSocket clients, the local stack.

The refresh notice is pushed at ``connectionRefreshMinutes`` of connection age, and minutes
are the unit, so one test waits for a minute once (heartbeating, as real clients do) and then
moves the speaker through three new connections and every listener through new ones, with
the counts exact and the listeners' final ``sessionEnded`` arriving on their newest
connections. The sweeper runs every 2 s here (``--schedule-interval``) with a 10 s heartbeat
timeout, so the second test sees silent connections closed within seconds.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection

from client.connection import MessageReader
from tests.local.local_support import aws_client, launch, open_ws, session_item, wait_for

HEARTBEAT_TIMEOUT_S = 10
BEAT_EVERY_S = 3.0  # well inside the heartbeat timeout
SWEEP_EVERY_S = 2.0


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    yield from launch(
        tmp_path_factory.mktemp("refresh"),
        "refresh",
        "--schedule-interval",
        str(SWEEP_EVERY_S),
        "--set",
        "connectionRefreshMinutes=1",
        "--set",
        "connectionRefreshSpreadMinutes=0",
        "--set",
        "connectionWarningMinutes=1",
        "--set",
        f"heartbeatTimeoutSeconds={HEARTBEAT_TIMEOUT_S}",
        "--set",
        "heartbeatsPerMinute=1000",
        # Every client here shares 127.0.0.1.
        "--set",
        "connectionAttemptsPerMinute=100000",
        "--set",
        "listenerJoinsPerMinute=100000",
    )


def user() -> str:
    return f"user-{uuid.uuid4().hex[:10]}"


class Client:
    """One WebSocket connection: every message it receives is queued; heartbeats optional."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._reader = MessageReader(ws, lambda _arrived, message: self.inbox.put_nowait(message))
        self.closed = self._reader.closed
        self._beats: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, url: str, token: str | None = None) -> Client:
        return cls(await open_ws(url, token))

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(message))

    async def expect(self, kind: str, timeout: float = 20.0) -> dict[str, Any]:
        """The next message of type ``kind``; anything else before it is skipped (and kept)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {kind} within {timeout}s")
            message = await asyncio.wait_for(self.inbox.get(), left)
            if message.get("type") == kind:
                return message
            assert message.get("type") != "error", message

    async def request(self, message: dict[str, Any], kind: str) -> dict[str, Any]:
        await self.send(message)
        return await self.expect(kind)

    def heartbeat(self) -> None:
        async def beat() -> None:
            while True:
                await self.send({"action": "heartbeat"})
                await asyncio.sleep(BEAT_EVERY_S)

        self._beats = asyncio.create_task(beat())

    async def close(self) -> None:
        if self._beats:
            self._beats.cancel()
        await self.ws.close()
        await self.closed.wait()


def run(coro: Any, timeout: float) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout))


def listener_count(stack: Any, session_id: str) -> int:
    return int(session_item(stack, session_id).get("listenerCount", {}).get("N", "-1"))


def connection_records(stack: Any) -> list[dict[str, Any]]:
    table = stack.info["tables"]["Connections"]
    return aws_client(stack, "dynamodb").scan(TableName=table, ConsistentRead=True)["Items"]


def test_a_session_outlives_three_speaker_connections(stack) -> None:
    speaker_user = user()
    languages = ("es", "fr")

    async def scenario() -> None:
        speaker = await Client.open(stack.url, stack.token(speaker_user))
        created = await speaker.request(
            {"action": "createSession", "sourceLanguage": "en"}, "sessionCreated"
        )
        session_id = created["sessionId"]
        listeners: dict[str, Client] = {}
        for language in languages:
            client = await Client.open(stack.url)
            await client.request(
                {"action": "joinSession", "sessionId": session_id, "targetLanguage": language},
                "sessionJoined",
            )
            listeners[language] = client
        for client in (speaker, *listeners.values()):
            client.heartbeat()

        # At a minute of age, each heartbeating client is told to refresh, and warned.
        notice = await speaker.expect("connectionRefreshRequired", timeout=80)
        assert (notice["sessionId"], notice["role"]) == (session_id, "speaker")
        speaker_token = notice["refreshToken"]
        warning = await speaker.expect("connectionWarning")
        assert 0 < warning["remainingMinutes"] <= 119
        tokens = {}
        for language, client in listeners.items():
            notice = await client.expect("connectionRefreshRequired", timeout=20)
            assert (notice["sessionId"], notice["role"]) == (session_id, "listener")
            assert notice["targetLanguage"] == language
            tokens[language] = notice["refreshToken"]

        for _ in range(3):
            # What the client docs say: open, refresh with the old connection's token, then
            # close the old connection; keep the new connection's token for the next time.
            replacement = await Client.open(stack.url, stack.token(speaker_user))
            done = await replacement.request(
                {
                    "action": "refreshConnection",
                    "sessionId": session_id,
                    "role": "speaker",
                    "refreshToken": speaker_token,
                },
                "connectionRefreshComplete",
            )
            assert (done["sessionId"], done["role"]) == (session_id, "speaker")
            speaker_token = done["refreshToken"]
            replacement.heartbeat()
            await speaker.close()
            speaker = replacement
            for language, old in list(listeners.items()):
                new = await Client.open(stack.url)
                done = await new.request(
                    {
                        "action": "refreshConnection",
                        "sessionId": session_id,
                        "role": "listener",
                        "targetLanguage": language,
                        "refreshToken": tokens[language],
                    },
                    "connectionRefreshComplete",
                )
                tokens[language] = done["refreshToken"]
                new.heartbeat()
                await old.close()
                listeners[language] = new
            # The old connections' $disconnect ran: the count is exact, the session alive.
            assert await asyncio.to_thread(
                wait_for, lambda: listener_count(stack, session_id) == len(languages)
            ), listener_count(stack, session_id)
            item = await asyncio.to_thread(session_item, stack, session_id)
            assert item["isActive"] == {"BOOL": True}

        await speaker.close()
        for client in listeners.values():
            ended = await client.expect("sessionEnded")
            assert (ended["sessionId"], ended["reason"]) == (session_id, "speakerDisconnected")
            await client.close()
        assert await asyncio.to_thread(wait_for, lambda: connection_records(stack) == [])

    run(scenario(), timeout=110)


async def _session(stack: Any) -> tuple[Client, str]:
    speaker = await Client.open(stack.url, stack.token(user()))
    created = await speaker.request(
        {"action": "createSession", "sourceLanguage": "en"}, "sessionCreated"
    )
    return speaker, created["sessionId"]


async def _listener(stack: Any, session_id: str) -> Client:
    client = await Client.open(stack.url)
    await client.request(
        {"action": "joinSession", "sessionId": session_id, "targetLanguage": "es"},
        "sessionJoined",
    )
    return client


def test_the_sweeper_closes_silent_connections(stack) -> None:
    deadline = HEARTBEAT_TIMEOUT_S + 4 * SWEEP_EVERY_S

    async def silent_listener() -> None:
        """A silent listener is closed; its $disconnect frees its place."""
        speaker, session_id = await _session(stack)
        speaker.heartbeat()
        silent, alive = await _listener(stack, session_id), await _listener(stack, session_id)
        alive.heartbeat()
        await asyncio.wait_for(silent.closed.wait(), deadline)
        assert await asyncio.to_thread(wait_for, lambda: listener_count(stack, session_id) == 1)
        assert not alive.closed.is_set() and not speaker.closed.is_set()
        await alive.close()
        await speaker.close()

    async def silent_speaker() -> None:
        """A silent speaker is closed, and the session ends for its listeners."""
        speaker, session_id = await _session(stack)
        alive = await _listener(stack, session_id)
        alive.heartbeat()
        ended = await alive.expect("sessionEnded", timeout=deadline)
        assert (ended["sessionId"], ended["reason"]) == (session_id, "speakerDisconnected")
        await asyncio.wait_for(speaker.closed.wait(), 10)
        await alive.close()

    async def scenario() -> None:
        await asyncio.gather(silent_listener(), silent_speaker())

    run(scenario(), timeout=60)
