"""The CLI client against a scripted server: refresh handling, exit codes, error messages."""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Response

from client import cli as client
from client import connection


class Script:
    """A fake service: answers joins and refreshes, pushes what the test asks for."""

    def __init__(self, refresh_reply: str = "connectionRefreshComplete", taint: str = "") -> None:
        self.refresh_reply = refresh_reply
        self.taint = taint  # appended to what the server says: a hostile server's text
        self.received: list[tuple[int, dict[str, Any]]] = []
        self.connections: list[ServerConnection] = []

    async def handler(self, ws: ServerConnection) -> None:
        self.connections.append(ws)
        number = len(self.connections)
        async for frame in ws:
            message = json.loads(frame)
            self.received.append((number, message))
            action = message.get("action")
            if action == "joinSession":
                await ws.send(
                    json.dumps(
                        {
                            "type": "sessionJoined",
                            "sessionId": "calm-lake-101",
                            "sourceLanguage": "en",
                            "targetLanguage": "es",
                            "listenerCount": 1,
                            "refreshToken": "token-of-1",
                        }
                    )
                )
                await ws.send(
                    json.dumps(
                        {
                            "type": "connectionRefreshRequired",
                            "sessionId": "calm-lake-101",
                            "role": "listener",
                            "refreshToken": "token-of-1-pushed",
                        }
                    )
                )
            elif action == "refreshConnection":
                if self.refresh_reply == "connectionRefreshComplete":
                    await ws.send(
                        json.dumps(
                            {
                                "type": "connectionRefreshComplete",
                                "sessionId": "calm-lake-101",
                                "role": "listener",
                                "refreshToken": f"token-of-{number}",
                            }
                        )
                    )
                else:
                    await ws.send(
                        json.dumps(
                            {
                                "type": "error",
                                "code": "INVALID_ACTION",
                                "status": 400,
                                "message": "unknown action" + self.taint,
                            }
                        )
                    )
                    await self.connections[0].send(
                        json.dumps(
                            {
                                "type": "sessionEnded",
                                "sessionId": "calm-lake-101",
                                "reason": "expired" + self.taint,
                            }
                        )
                    )
                    continue
                await asyncio.sleep(0.1)
                await ws.send(
                    json.dumps(
                        {
                            "type": "sessionEnded",
                            "sessionId": "calm-lake-101",
                            "reason": "speakerDisconnected",
                        }
                    )
                )


def listen_args(url: str) -> argparse.Namespace:
    return client.parser("listen").parse_args(["calm-lake-101", "--lang", "es", "--url", url])


async def run_listener(script: Script) -> int:
    async with serve(script.handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        return await asyncio.wait_for(client.listen(listen_args(f"ws://127.0.0.1:{port}/dev")), 30)


def test_listener_follows_a_refresh_and_ends_on_the_new_connection(capsys):
    script = Script()
    assert asyncio.run(run_listener(script)) == 0
    assert [(n, m["action"]) for n, m in script.received] == [
        (1, "joinSession"),
        (2, "refreshConnection"),
    ]
    assert script.received[1][1] == {
        "action": "refreshConnection",
        "sessionId": "calm-lake-101",
        "role": "listener",
        "targetLanguage": "es",
        # Issue 21.1: the proof that it replaces the first connection (the latest token).
        "refreshToken": "token-of-1-pushed",
    }
    out = capsys.readouterr().out
    assert "token-of" not in out  # kept, not shown
    assert "refreshed" in out and "speakerDisconnected" in out


def test_a_refused_refresh_keeps_the_current_connection(capsys):
    script = Script(refresh_reply="error")
    assert asyncio.run(run_listener(script)) == 0
    captured = capsys.readouterr()
    assert "refresh refused: INVALID_ACTION" in captured.err
    assert "expired" in captured.out  # sessionEnded arrived on the first connection


C0_C1 = "".join(chr(c) for c in [*range(0x20), 0x7F, *range(0x80, 0xA0)])


def raw_controls(text: str) -> set[str]:
    return {c for c in text if c in C0_C1 and c != "\n"}


def test_what_a_server_says_reaches_the_terminal_escaped(capsys):
    # Issue 21.7: every C0 and C1 control a server puts in a message is shown escaped.
    script = Script(refresh_reply="error", taint=C0_C1 + "\x1b]0;pwned\x07")
    assert asyncio.run(run_listener(script)) == 0
    captured = capsys.readouterr()
    assert raw_controls(captured.out) == set() and raw_controls(captured.err) == set()
    assert "unknown action\\x00\\x01" in captured.err  # the refused refresh, on stderr
    assert "expired\\x00\\x01" in captured.out  # sessionEnded, on stdout
    assert "\\x1b]0;pwned\\x07" in captured.out and "\\x9b" in captured.out


def test_handshake_rejection_is_explained():
    async def reject(ws: ServerConnection, request: Any) -> Response:
        body = json.dumps({"code": "UNAUTHORIZED", "message": "The token has expired."}).encode()
        return Response(401, "Unauthorized", Headers([("Content-Length", str(len(body)))]), body)

    async def scenario() -> str:
        async with serve(
            lambda ws: asyncio.sleep(0), "127.0.0.1", 0, process_request=reject
        ) as server:
            port = server.sockets[0].getsockname()[1]
            with pytest.raises(connection.ClientError) as failed:
                await connection.open_connection(f"ws://127.0.0.1:{port}/dev", "secret-token")
            return str(failed.value)

    message = asyncio.run(scenario())
    assert "HTTP 401" in message and "UNAUTHORIZED: The token has expired." in message
    assert "secret-token" not in message


def test_connection_refused_is_explained(unused_port, capsys):
    code = client.main(
        "listen", ["calm-lake-101", "--lang", "es", "--url", f"ws://127.0.0.1:{unused_port}/dev"]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert "connection refused" in err and "make dev" in err


def test_speaker_needs_a_token_for_a_deployed_url(capsys):
    code = client.main("speak", ["--url", "wss://example.invalid/prod"])
    assert code == 1
    assert "--token" in capsys.readouterr().err


def test_heartbeats_wait_out_a_retry_after(capsys):
    """After a RATE_LIMIT_EXCEEDED with retryAfter, no heartbeat until it has passed."""
    beats: list[float] = []
    refused_at: list[float] = []

    async def handler(ws: ServerConnection) -> None:
        loop = asyncio.get_running_loop()
        async for frame in ws:
            action = json.loads(frame).get("action")
            if action == "joinSession":
                await ws.send(json.dumps({"type": "sessionJoined", "sessionId": "calm-lake-101"}))
            elif action == "heartbeat":
                beats.append(loop.time())
                if len(beats) == 1:
                    refused_at.append(loop.time())
                    await ws.send(
                        json.dumps(
                            {
                                "type": "error",
                                "code": "RATE_LIMIT_EXCEEDED",
                                "status": 429,
                                "message": "Too many heartbeat requests; retry in 2 s.",
                                "details": {"retryAfter": 2, "limit": 4, "windowSeconds": 60},
                            }
                        )
                    )
                else:
                    await ws.send(json.dumps({"type": "heartbeatAck"}))
                if len(beats) == 3:
                    await ws.send(
                        json.dumps({"type": "sessionEnded", "sessionId": "calm-lake-101"})
                    )

    async def scenario() -> int:
        async with serve(handler, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            args = client.parser("listen").parse_args(
                [
                    "calm-lake-101",
                    "--lang",
                    "es",
                    "--url",
                    f"ws://127.0.0.1:{port}/dev",
                    "--heartbeat",
                    "0.2",
                ]
            )
            return await asyncio.wait_for(client.listen(args), 30)

    assert asyncio.run(scenario()) == 0
    assert len(beats) == 3
    # Every 0.2 s before the refusal; the next one only once retryAfter (2 s) had passed.
    assert beats[1] - refused_at[0] >= 2.0
    assert "no heartbeat for 2 s" in capsys.readouterr().out


def test_a_heartbeat_interval_is_checked_against_the_stacks_limit(monkeypatch):
    monkeypatch.setattr(client, "fetch_info", lambda port: {"settings": {"heartbeatsPerMinute": 6}})
    assert client.check_heartbeat(10, "ws://127.0.0.1:8080/dev") is None
    problem = client.check_heartbeat(9.5, "ws://127.0.0.1:8080/dev")
    assert problem is not None and "6 a minute" in problem and "every 10 s or more" in problem
    remote = client.check_heartbeat(14, "wss://abc.execute-api.us-east-1.amazonaws.com/dev")
    assert remote is not None and "every 15 s or more" in remote
    assert client.check_heartbeat(0, "ws://127.0.0.1:8080/dev") == "--heartbeat must be > 0"


def test_a_refresh_refused_with_retry_after_is_sent_again_once_it_has_passed(capsys):
    refreshes: list[tuple[int, float]] = []
    sockets: list[ServerConnection] = []

    async def handler(ws: ServerConnection) -> None:
        sockets.append(ws)
        number = len(sockets)
        loop = asyncio.get_running_loop()
        async for frame in ws:
            action = json.loads(frame).get("action")
            if action == "joinSession":
                await ws.send(json.dumps({"type": "sessionJoined", "sessionId": "calm-lake-101"}))
                await ws.send(
                    json.dumps(
                        {
                            "type": "connectionRefreshRequired",
                            "sessionId": "calm-lake-101",
                            "role": "listener",
                        }
                    )
                )
            elif action == "refreshConnection":
                refreshes.append((number, loop.time()))
                if len(refreshes) == 1:
                    await ws.send(
                        json.dumps(
                            {
                                "type": "error",
                                "code": "SESSION_FULL",
                                "status": 503,
                                "message": "Session 'calm-lake-101' has too many listeners "
                                "changing connections right now; keep the current connection "
                                "and retry in 1 s.",
                                "details": {"retryAfter": 1, "maxListeners": 2},
                            }
                        )
                    )
                    continue
                await ws.send(
                    json.dumps(
                        {
                            "type": "connectionRefreshComplete",
                            "sessionId": "calm-lake-101",
                            "role": "listener",
                        }
                    )
                )
                await asyncio.sleep(0.1)
                await ws.send(json.dumps({"type": "sessionEnded", "sessionId": "calm-lake-101"}))

    async def scenario() -> int:
        async with serve(handler, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            return await asyncio.wait_for(
                client.listen(listen_args(f"ws://127.0.0.1:{port}/dev")), 30
            )

    assert asyncio.run(scenario()) == 0
    # The first refresh on connection 2 was refused; the second, on a new connection 3,
    # went out only after retryAfter and completed.
    assert [n for n, _ in refreshes] == [2, 3]
    assert refreshes[1][1] - refreshes[0][1] >= 1.0
    captured = capsys.readouterr()
    assert "refreshing again in 1 s (retryAfter)" in captured.err
    assert "refreshed" in captured.out
