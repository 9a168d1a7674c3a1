"""Helpers for the local-stack tests: stack subprocesses, WebSocket clients, boto3 clients."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
from websockets.asyncio.client import ClientConnection

from client.connection import connect_service
from local.process import StackProcess

RAW_CONNECTION_ID = re.compile(r"(?<![A-Za-z0-9+/])[A-Za-z0-9]{15}=")
REPLY_TIMEOUT = 20.0


IAM_DENIED = "IAM AccessDenied:"


def launch(
    logs: Path, name: str, *args: str, aws_may_fail: bool = False, iam_denials: bool = False
) -> Iterator[StackProcess]:
    """Start a stack, yield it, then SIGTERM it and check a clean exit and clean stdout.

    IAM is enforced in the stack: a call some function's policy does not allow is a stderr
    line, and fails the tests of that stack here unless ``iam_denials`` says they are the point.
    """
    stack = StackProcess(args, logs, name).start()
    try:
        yield stack
    finally:
        code = stack.stop()
        assert code == 0, f"stack {name} exited with {code}:\n{stack.stderr()[-3000:]}"
        assert "stopped" in stack.stderr()
        check_stdout(stack, aws_may_fail=aws_may_fail)
        if not iam_denials:
            denied = [line for line in stack.stderr().splitlines() if IAM_DENIED in line]
            assert not denied, "\n".join(denied[:10])


def check_stdout(stack: StackProcess, aws_may_fail: bool = False) -> None:
    """stdout is only JSON log lines, and none carries a raw IP or a raw connection ID.

    With ``aws_may_fail``, lines naming the embedded AWS endpoint (in botocore's connection
    errors, where AWS would name its own endpoint) are allowed to contain 127.0.0.1.
    """
    lines = stack.stdout_lines()
    assert lines, "the functions logged nothing"
    for line in lines:
        record = json.loads(line)
        assert isinstance(record, dict) and {"timestamp", "level", "message"} <= set(record)
        allowed = aws_may_fail and stack.aws_endpoint in line
        assert allowed or "127.0.0.1" not in line, line
        assert not RAW_CONNECTION_ID.search(line), line


def aws_client(stack: StackProcess, service: str, config: Any = None) -> Any:
    return boto3.client(
        service,
        endpoint_url=stack.aws_endpoint,
        region_name=stack.info["region"],
        aws_access_key_id="local",
        aws_secret_access_key="local",
        config=config,
    )


def management_client(endpoint: str) -> Any:
    return boto3.client(
        "apigatewaymanagementapi",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )


async def open_ws(url: str, token: str | None = None, **kwargs: Any) -> ClientConnection:
    return await connect_service(url, token, **{"open_timeout": 30, **kwargs})


async def request(ws: ClientConnection, payload: Any, timeout: float = REPLY_TIMEOUT) -> dict:
    """Send a frame (dict → JSON) and return the next message, parsed."""
    await ws.send(payload if isinstance(payload, str | bytes) else json.dumps(payload))
    return await next_message(ws, timeout)


async def next_message(ws: ClientConnection, timeout: float = REPLY_TIMEOUT) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def speaker(url: str, token: str, lang: str = "en") -> tuple[ClientConnection, str]:
    """A connected speaker and the ID of the session it created."""
    ws = await open_ws(url, token)
    reply = await request(ws, {"action": "createSession", "sourceLanguage": lang})
    assert reply["type"] == "sessionCreated", reply
    return ws, reply["sessionId"]


async def listener(url: str, session_id: str, lang: str = "es") -> tuple[ClientConnection, dict]:
    ws = await open_ws(url)
    reply = await request(
        ws, {"action": "joinSession", "sessionId": session_id, "targetLanguage": lang}
    )
    return ws, reply


def session_item(stack: StackProcess, session_id: str) -> dict[str, Any]:
    table = stack.info["tables"]["Sessions"]
    item = aws_client(stack, "dynamodb").get_item(
        TableName=table, Key={"sessionId": {"S": session_id}}, ConsistentRead=True
    )
    return item.get("Item") or {}


def wait_for(predicate: Any, timeout: float = 20.0, interval: float = 0.1) -> Any:
    """Poll ``predicate`` until it returns something truthy (bounded)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


async def wait_for_async(predicate: Any, timeout: float = 20.0, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await asyncio.to_thread(predicate)
        if value or time.monotonic() > deadline:
            return value
        await asyncio.sleep(interval)


def read_until(process: subprocess.Popen, needle: str, timeout: float = 60) -> str:
    """Lines of ``process.stdout`` until one contains ``needle`` (bounded by ``timeout``)."""
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        seen.append(line)
        if needle in line:
            return "".join(seen)
    raise AssertionError(f"no {needle!r} within {timeout}s; got:\n{''.join(seen)}")


async def heartbeat_once(url: str) -> None:
    """One heartbeat on a fresh connection, so a stack's functions have logged something."""
    ws = await open_ws(url)
    assert (await request(ws, {"action": "heartbeat"}))["type"] == "heartbeatAck"
    await ws.close()
