"""End to end through the local stack: real handlers, real WebSocket clients, embedded AWS.

One stack (a subprocess on free ports) serves this module, with limits raised because every
client shares 127.0.0.1; each test uses its own users and sessions so tests never interfere.
The fixture's teardown SIGTERMs the stack and checks a clean exit and a clean stdout.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import signal
import subprocess
import sys
import time
import urllib.parse
import uuid
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from client.local_stack import fetch_info
from local.config import project_root
from local.monitoring import emf
from local.tokens import TokenIssuer
from runtime import metric_names
from runtime.errors import ErrorCode
from runtime.languages import SOURCE_LANGUAGES
from tests.local.local_support import (
    aws_client,
    launch,
    listener,
    management_client,
    next_message,
    open_ws,
    read_until,
    request,
    session_item,
    speaker,
    wait_for,
)

LISTENERS = 100


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    yield from launch(
        tmp_path_factory.mktemp("e2e"),
        "main",
        "--set",
        "maxListenersPerSession=1000",
        "--set",
        "maxActiveSessions=1000",
        "--set",
        "listenerJoinsPerMinute=100000",
        "--set",
        "connectionAttemptsPerMinute=100000",
        "--set",
        "heartbeatsPerMinute=1000",
        "--set",
        "sessionsPerHour=3",
    )


def user() -> str:
    return f"user-{uuid.uuid4().hex[:10]}"


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 90))


def assert_error(reply: dict, code: ErrorCode) -> dict:
    assert reply["type"] == "error", reply
    assert reply["code"] == code.value, reply
    assert reply["status"] == code.status
    assert isinstance(reply["message"], str) and reply["message"]
    assert reply["requestId"] and isinstance(reply["timestamp"], int)
    return reply


def listener_count(stack, session_id: str) -> int:
    return int(session_item(stack, session_id).get("listenerCount", {}).get("N", "-1"))


async def collect(ws, quiet_s: float = 0.7, limit_s: float = 20.0) -> list[dict]:
    """Messages until the first sessionEnded plus ``quiet_s`` of silence, or the limit."""
    messages: list[dict] = []
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        ended = any(m.get("type") == "sessionEnded" for m in messages)
        wait = quiet_s if ended else deadline - time.monotonic()
        try:
            messages.append(await next_message(ws, max(0.05, wait)))
        except (TimeoutError, ConnectionClosed):
            if ended:
                break
    return messages


def test_speaker_and_listener_lifecycle(stack):
    token = stack.token(user())

    async def scenario() -> None:
        spk, session_id = await speaker(stack.url, token, "en")
        first, joined = await listener(stack.url, session_id, "es")
        assert joined["type"] == "sessionJoined"
        assert (joined["sessionId"], joined["sourceLanguage"], joined["targetLanguage"]) == (
            session_id,
            "en",
            "es",
        )
        assert joined["listenerCount"] == 1
        second, joined_2 = await listener(stack.url, session_id, "fr")
        assert joined_2["listenerCount"] == 2

        for ws in (spk, first, second):
            ack = await request(ws, {"action": "heartbeat"})
            assert ack["type"] == "heartbeatAck" and isinstance(ack["timestamp"], int)

        await second.close()
        assert await asyncio.to_thread(wait_for, lambda: listener_count(stack, session_id) == 1), (
            "a leaving listener must free its place"
        )

        await spk.close()
        ended = await next_message(first)
        assert ended["type"] == "sessionEnded"
        assert (ended["sessionId"], ended["reason"]) == (session_id, "speakerDisconnected")
        item = await asyncio.to_thread(
            wait_for, lambda: session_item(stack, session_id).get("isActive") == {"BOOL": False}
        )
        assert item
        await first.close()

    run(scenario())


def test_hundred_listeners_then_speaker_disconnect_reaches_all(stack):
    token = stack.token(user())

    async def scenario() -> None:
        spk, session_id = await speaker(stack.url, token)

        async def join() -> tuple:
            started = time.perf_counter()
            ws, reply = await listener(stack.url, session_id, "es")
            return ws, reply, time.perf_counter() - started

        results = await asyncio.gather(*(join() for _ in range(LISTENERS)))
        sockets = [ws for ws, _, _ in results]
        replies = [reply for _, reply, _ in results]
        assert all(r["type"] == "sessionJoined" for r in replies), [
            r for r in replies if r["type"] != "sessionJoined"
        ][:3]
        assert sorted(r["listenerCount"] for r in replies) == list(range(1, LISTENERS + 1))
        assert await asyncio.to_thread(listener_count, stack, session_id) == LISTENERS

        await spk.close()
        received = await asyncio.gather(*(collect(ws) for ws in sockets))
        for messages in received:
            ended = [m for m in messages if m.get("type") == "sessionEnded"]
            assert len(ended) == 1, messages
            assert ended[0]["reason"] == "speakerDisconnected"
            assert ended[0]["sessionId"] == session_id
        await asyncio.gather(*(ws.close() for ws in sockets))

    run(scenario())


def unsupported_language() -> str:
    for first in "zyxwvutsrq":
        for second in "zyxwvutsrq":
            if first + second not in SOURCE_LANGUAGES:
                return first + second
    raise AssertionError("every code is supported?")


def test_every_error_code_over_the_wire(stack):
    token = stack.token(user())

    async def scenario() -> None:
        spk, session_id = await speaker(stack.url, token)
        ws = await open_ws(stack.url)

        assert_error(await request(ws, "not json"), ErrorCode.INVALID_MESSAGE)
        assert_error(await request(ws, "[1, 2]"), ErrorCode.INVALID_MESSAGE)
        assert_error(await request(ws, {"action": "dance"}), ErrorCode.INVALID_ACTION)
        assert_error(await request(ws, {"no": "action"}), ErrorCode.INVALID_ACTION)
        missing = assert_error(
            await request(ws, {"action": "joinSession", "targetLanguage": "es"}),
            ErrorCode.INVALID_PARAMETERS,
        )
        assert missing["details"]["field"] == "sessionId"
        assert_error(
            await request(
                ws, {"action": "joinSession", "sessionId": "not-an-id", "targetLanguage": "es"}
            ),
            ErrorCode.INVALID_SESSION_ID,
        )
        assert_error(
            await request(
                ws,
                {
                    "action": "joinSession",
                    "sessionId": session_id,
                    "targetLanguage": unsupported_language(),
                },
            ),
            ErrorCode.UNSUPPORTED_LANGUAGE,
        )
        assert_error(
            await request(
                ws,
                {"action": "joinSession", "sessionId": "golden-eagle-999", "targetLanguage": "es"},
            ),
            ErrorCode.SESSION_NOT_FOUND,
        )
        assert_error(
            await request(ws, {"action": "createSession", "sourceLanguage": "en"}),
            ErrorCode.UNAUTHORIZED,
        )
        joined = await request(
            ws, {"action": "joinSession", "sessionId": session_id, "targetLanguage": "es"}
        )
        assert joined["type"] == "sessionJoined"
        assert_error(
            await request(
                ws, {"action": "joinSession", "sessionId": session_id, "targetLanguage": "es"}
            ),
            ErrorCode.FORBIDDEN,
        )
        assert_error(
            await request(spk, {"action": "createSession", "sourceLanguage": "en"}),
            ErrorCode.FORBIDDEN,
        )
        await ws.close()
        await spk.close()

    run(scenario())


def test_create_session_rate_limit(stack):
    token = stack.token(user())  # sessionsPerHour=3 in this stack

    async def scenario() -> None:
        sockets = []
        limited = None
        for _ in range(6):
            ws = await open_ws(stack.url, token)
            sockets.append(ws)
            reply = await request(ws, {"action": "createSession", "sourceLanguage": "en"})
            if reply["type"] == "error":
                limited = reply
                break
        assert limited is not None, "sessionsPerHour=3 never said no"
        assert_error(limited, ErrorCode.RATE_LIMIT_EXCEEDED)
        assert limited["details"]["retryAfter"] > 0
        assert len(sockets) == 4
        await asyncio.gather(*(ws.close() for ws in sockets))

    run(scenario())


def test_bad_tokens_are_401_at_the_handshake(stack):
    expired = stack.token(user(), ttl_s=-120)
    info = stack.info
    foreign = TokenIssuer(info["issuer"], info["audience"]).mint("mallory")

    async def scenario() -> None:
        for token in ("abc", expired, foreign):
            with pytest.raises(InvalidStatus) as rejected:
                await open_ws(stack.url, token)
            assert rejected.value.response.status_code == 401
            body = json.loads(rejected.value.response.body)
            assert body["code"] == "UNAUTHORIZED"

    run(scenario())


def test_abrupt_drop_is_cleaned_up(stack):
    token = stack.token(user())

    async def scenario() -> None:
        spk, session_id = await speaker(stack.url, token)
        ws, joined = await listener(stack.url, session_id)
        assert joined["listenerCount"] == 1
        ws.transport.abort()  # kill the TCP connection: no close frame
        assert await asyncio.to_thread(wait_for, lambda: listener_count(stack, session_id) == 0), (
            "the dropped listener was not cleaned up"
        )
        await spk.close()

    run(scenario())


def connection_ids_of(stack, session_id: str) -> list[str]:
    table = stack.info["tables"]["Connections"]
    items = aws_client(stack, "dynamodb").scan(
        TableName=table,
        FilterExpression="sessionId = :s",
        ExpressionAttributeValues={":s": {"S": session_id}},
        ConsistentRead=True,
    )["Items"]
    return [
        item["connectionId"]["S"] for item in items if item.get("role", {}).get("S") == "listener"
    ]


def test_connections_api_gone_semantics_via_boto3(stack):
    token = stack.token(user())
    api = management_client(stack.connections_url)

    async def scenario() -> None:
        spk, session_id = await speaker(stack.url, token)
        ws, _ = await listener(stack.url, session_id)
        (connection_id,) = await asyncio.to_thread(connection_ids_of, stack, session_id)

        await asyncio.to_thread(
            api.post_to_connection, ConnectionId=connection_id, Data=b'{"type":"hello"}'
        )
        assert await next_message(ws) == {"type": "hello"}
        info = await asyncio.to_thread(api.get_connection, ConnectionId=connection_id)
        assert info["Identity"]["SourceIp"] == "127.0.0.1"

        await ws.close()
        assert await asyncio.to_thread(wait_for, lambda: listener_count(stack, session_id) == 0)
        with pytest.raises(api.exceptions.GoneException):
            await asyncio.to_thread(api.post_to_connection, ConnectionId=connection_id, Data=b"x")
        with pytest.raises(api.exceptions.GoneException):
            await asyncio.to_thread(
                api.post_to_connection, ConnectionId="ZZZZZZZZZZZZZZZ=", Data=b"x"
            )
        with pytest.raises(api.exceptions.GoneException):
            await asyncio.to_thread(api.delete_connection, ConnectionId="ZZZZZZZZZZZZZZZ=")
        await spk.close()

    run(scenario())


def _raw_request(port: int, method: str, path: str, headers: dict[str, str]) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=b'{"type":"forged"}', headers=headers)
        response = conn.getresponse()
        response.read()
        return response.status, response.getheader("x-amzn-errortype") or ""
    finally:
        conn.close()


FOREIGN_CALLERS = [
    {"Host": "evil.example:{port}"},
    {"Host": "evil.example"},
    {"Host": "127.0.0.1.nip.io:{port}"},
    {"Host": "127.0.0.1:{port}", "Origin": "http://evil.example"},
    {"Host": "127.0.0.1:{port}", "Sec-Fetch-Site": "cross-site"},
]


def test_connections_api_refuses_foreign_callers_and_serves_boto3(stack):
    """A DNS-rebinding or cross-site page cannot post to or delete a connection (AWS would
    want a SigV4 signature); boto3 pointed at 127.0.0.1 still can."""
    api = management_client(stack.connections_url)
    stage_path = urllib.parse.urlsplit(stack.connections_url).path.rstrip("/")

    async def scenario() -> None:
        spk, session_id = await speaker(stack.url, stack.token(user()))
        ws, _ = await listener(stack.url, session_id)
        (connection_id,) = await asyncio.to_thread(connection_ids_of, stack, session_id)
        quoted = urllib.parse.quote(connection_id, safe="")
        paths = [f"{stage_path}/@connections/{quoted}", f"{stage_path}/%40connections/{quoted}"]
        for headers in FOREIGN_CALLERS:
            sent = {name: value.format(port=stack.port) for name, value in headers.items()}
            for method in ("POST", "DELETE", "GET"):
                for path in paths:
                    status, kind = await asyncio.to_thread(
                        _raw_request, stack.port, method, path, sent
                    )
                    assert (status, kind) == (403, "ForbiddenException"), (method, path, sent)

        # Nothing forged arrived and the connection is still open: boto3's post is the
        # first message the listener gets.
        await asyncio.to_thread(
            api.post_to_connection, ConnectionId=connection_id, Data=b'{"type":"hello"}'
        )
        assert await next_message(ws) == {"type": "hello"}
        await asyncio.to_thread(api.delete_connection, ConnectionId=connection_id)
        with pytest.raises(ConnectionClosed):
            await next_message(ws)
        await spk.close()

    run(scenario())


def test_message_limit_is_128_kb(stack):
    async def scenario() -> None:
        ws = await open_ws(stack.url)
        at_limit = await request(ws, json.dumps({"action": "heartbeat", "pad": ""}).ljust(131072))
        assert at_limit["type"] in ("heartbeatAck", "error")
        await ws.send("x" * (128 * 1024 + 1))
        with pytest.raises(ConnectionClosed):
            await next_message(ws, 10)
        assert ws.close_code == 1009

    run(scenario())


def test_metrics_reach_the_embedded_cloudwatch(stack):
    token = stack.token(user())

    async def scenario() -> None:
        spk, session_id = await speaker(stack.url, token)
        ws, _ = await listener(stack.url, session_id)
        await request(ws, {"action": "heartbeat"})
        assert_error(await request(ws, {"action": "dance"}), ErrorCode.INVALID_ACTION)
        await ws.close()
        await spk.close()

    run(scenario())
    cloudwatch = aws_client(stack, "cloudwatch")
    stage = [{"Name": "Stage", "Value": stack.info["stack"]}]
    wanted = {"SessionCreationLatency", "ListenerJoinLatency", "HeartbeatLatency"}

    def names() -> set[str]:
        metrics = cloudwatch.list_metrics(Namespace="SessionManagement", Dimensions=stage)
        return {m["MetricName"] for m in metrics["Metrics"]}

    assert wanted | {"ConnectionErrors"} <= wait_for(
        lambda: (found := names()) >= wanted | {"ConnectionErrors"} and found
    ), names()
    now = datetime.now(UTC)
    stats = cloudwatch.get_metric_statistics(
        Namespace="SessionManagement",
        MetricName="SessionCreationLatency",
        Dimensions=stage,
        StartTime=now - timedelta(minutes=10),
        EndTime=now + timedelta(minutes=1),
        Period=60,
        Statistics=["SampleCount", "Maximum"],
    )
    assert sum(p["SampleCount"] for p in stats["Datapoints"]) >= 1
    by_code = cloudwatch.list_metrics(
        Namespace="SessionManagement",
        MetricName="ConnectionErrors",
        Dimensions=[*stage, {"Name": "ErrorCode", "Value": "INVALID_ACTION"}],
    )
    assert by_code["Metrics"]


def test_emf_in_the_log_lines_becomes_metrics_with_their_exact_dimension_sets(stack):
    """The functions write EMF (no PutMetricData); the stack extracts it like CloudWatch Logs."""
    token = stack.token(user())

    async def scenario() -> None:
        spk, session_id = await speaker(stack.url, token)
        ws, _ = await listener(stack.url, session_id)
        for _ in range(2):
            assert (await request(ws, {"action": "heartbeat"}))["type"] == "heartbeatAck"
        for _ in range(3):
            assert_error(await request(ws, {"action": "dance"}), ErrorCode.INVALID_ACTION)
        await ws.close()
        await spk.close()

    run(scenario())
    cloudwatch = aws_client(stack, "cloudwatch")
    namespace = "SessionManagement"

    def dimension_sets() -> dict[str, set[tuple[str, ...]]]:
        found: dict[str, set[tuple[str, ...]]] = {}
        for page in cloudwatch.get_paginator("list_metrics").paginate(Namespace=namespace):
            for metric in page["Metrics"]:
                names = tuple(sorted(d["Name"] for d in metric["Dimensions"]))
                found.setdefault(metric["MetricName"], set()).add(names)
        return found

    expected = {"SessionCreationLatency", "ListenerJoinLatency", "HeartbeatLatency"}
    expected |= {"DisconnectLatency", "ConnectionErrors"}
    sets = wait_for(lambda: (found := dimension_sets()).keys() >= expected and found)
    assert sets, dimension_sets()
    for name, found in sets.items():
        declared = {tuple(sorted(dims)) for dims in metric_names.BY_NAME[name].dimension_sets}
        assert found == declared, (name, found)

    # The values arrive too: this test's three INVALID_ACTION replies, under the exact set.
    def invalid_actions() -> float:
        now = datetime.now(UTC)
        points = cloudwatch.get_metric_statistics(
            Namespace=namespace,
            MetricName="ConnectionErrors",
            Dimensions=[
                {"Name": "Stage", "Value": stack.info["stack"]},
                {"Name": "ErrorCode", "Value": "INVALID_ACTION"},
            ],
            StartTime=now - timedelta(minutes=30),
            EndTime=now + timedelta(minutes=1),
            Period=3600,
            Statistics=["Sum"],
            Unit="Count",
        )["Datapoints"]
        return sum(p["Sum"] for p in points)

    assert wait_for(lambda: invalid_actions() >= 3), invalid_actions()
    # They came from the log lines: every one with an _aws block, none rejected.
    emf_lines = [r for r in stack.log_records() if "_aws" in r]
    assert any(r.get("HeartbeatLatency") for r in emf_lines)
    for record in emf_lines:
        assert emf.problems(record) == [], record
    info = fetch_info(stack.port)
    assert info["emf"]["documents"] >= 1 and info["emf"]["rejected"] == 0, info["emf"]


def test_token_command_mints_tokens_the_stack_accepts(stack):
    result = subprocess.run(
        [sys.executable, "-m", "local", "token", "--user", "carol", "--port", str(stack.port)],
        cwd=project_root(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    assert jwt.decode(token, options={"verify_signature": False})["sub"] == "carol"

    async def scenario() -> None:
        ws, session_id = await speaker(stack.url, token)
        assert session_id
        await ws.close()

    run(scenario())


def test_token_command_without_a_stack_says_so(unused_port):
    result = subprocess.run(
        [sys.executable, "-m", "local", "token", "--user", "x", "--port", str(unused_port)],
        cwd=project_root(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "no local stack is running on port" in result.stderr
    assert result.stdout == ""


def _local_get(port: int, path: str, headers: dict[str, str]) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


@pytest.mark.parametrize("path", ["/_local/token?user=mallory", "/_local/info"])
@pytest.mark.parametrize(
    "headers",
    [
        {"Host": "evil.example:{port}"},
        {"Host": "evil.example"},
        {"Host": "localhost.evil.example:{port}"},
        {"Host": "127.0.0.1.nip.io:{port}"},
        {"Host": "localhost:{port}", "Sec-Fetch-Site": "cross-site"},
        {"Host": "localhost:{port}", "Sec-Fetch-Site": "same-site"},
        {"Host": "localhost:{port}", "Origin": "http://evil.example"},
        {"Host": "localhost:{port}", "Origin": "http://localhost:1"},
    ],
    ids=lambda h: ",".join(f"{k}={v}" for k, v in h.items()),
)
def test_local_endpoints_refuse_foreign_hosts_and_sites(stack, path, headers):
    """DNS rebinding (a foreign Host on 127.0.0.1) and cross-site requests get no token."""
    sent = {name: value.format(port=stack.port) for name, value in headers.items()}
    status, doc = _local_get(stack.port, path, sent)
    assert status == 403, doc
    assert "token" not in doc and "websocketUrl" not in doc
    assert doc["message"].startswith("local tools only")


@pytest.mark.parametrize(
    "headers",
    [
        {"Host": "localhost:{port}"},
        {"Host": "127.0.0.1:{port}"},
        {"Host": "127.8.9.10:{port}"},
        {"Host": "[::1]:{port}"},
        {"Host": "LocalHost:{port}", "Sec-Fetch-Site": "same-origin"},
        {"Host": "localhost:{port}", "Sec-Fetch-Site": "none"},
        {"Host": "localhost:{port}", "Origin": "http://localhost:{port}"},
    ],
    ids=lambda h: ",".join(f"{k}={v}" for k, v in h.items()),
)
def test_local_endpoints_serve_loopback_tools(stack, headers):
    sent = {name: value.format(port=stack.port) for name, value in headers.items()}
    status, doc = _local_get(stack.port, "/_local/token?user=alice", sent)
    assert status == 200, doc
    assert jwt.decode(doc["token"], options={"verify_signature": False})["sub"] == "alice"
    status, info = _local_get(stack.port, "/_local/info", sent)
    assert status == 200 and info["websocketUrl"] == stack.url
    # The JWKS is public key material: served whatever the Host, as Cognito's is.
    status, jwks = _local_get(stack.port, "/.well-known/jwks.json", {"Host": "evil.example"})
    assert status == 200 and jwks["keys"]


def test_cli_speaker_and_listener(stack):
    cli = [sys.executable, "-m", "local"]
    common = {"cwd": project_root(), "stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    speak = subprocess.Popen(
        [*cli, "speak", "--url", stack.url, "--user", user(), "--heartbeat", "1"],
        text=True,
        **common,
    )
    listen = None
    try:
        banner = read_until(speak, "SESSION ID", 30)
        session_id = banner.split("SESSION ID")[1].split()[0]
        listen = subprocess.Popen(
            [*cli, "listen", session_id, "--lang", "es", "--url", stack.url], text=True, **common
        )
        read_until(listen, "sessionJoined", 30)
        speak.send_signal(signal.SIGINT)
        assert speak.wait(30) == 0, speak.stderr.read()
        out = read_until(listen, "sessionEnded", 30)
        assert "speakerDisconnected" in out
        assert listen.wait(30) == 0
    finally:
        for process in (speak, listen):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait(10)

    bad = subprocess.run(
        [*cli, "listen", "not-a-session", "--lang", "es", "--url", stack.url],
        cwd=project_root(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 1
    assert "INVALID_SESSION_ID" in bad.stderr
