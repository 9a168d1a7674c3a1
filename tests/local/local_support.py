"""Helpers for the local-stack tests: stack subprocesses, WebSocket clients, boto3 clients."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import subprocess
import time
import urllib.parse
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


class RawWebSocket:
    """A WebSocket client over a bare TCP stream, for frames no library will send: unmasked
    frames, a close frame without a status code. ``frame`` builds one frame's bytes."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, url: str) -> RawWebSocket:
        parts = urllib.parse.urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        reader, writer = await asyncio.open_connection(host, port)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            (
                f"GET {parts.path or '/'}{'?' + parts.query if parts.query else ''} HTTP/1.1\r\n"
                f"Host: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), REPLY_TIMEOUT)
        assert head.startswith(b"HTTP/1.1 101"), head
        return cls(reader, writer)

    @staticmethod
    def frame(opcode: int, payload: bytes, *, masked: bool = True) -> bytes:
        length = len(payload)
        head = bytes([0x80 | opcode])
        mask_bit = 0x80 if masked else 0
        if length < 126:
            head += bytes([mask_bit | length])
        elif length < 1 << 16:
            head += bytes([mask_bit | 126]) + length.to_bytes(2, "big")
        else:
            head += bytes([mask_bit | 127]) + length.to_bytes(8, "big")
        if not masked:
            return head + payload
        key = os.urandom(4)
        return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def next_frame(self) -> tuple[int, bytes]:
        """(opcode, payload) of the server's next frame (servers never mask)."""
        first, second = await asyncio.wait_for(self.reader.readexactly(2), REPLY_TIMEOUT)
        length = second & 0x7F
        if length == 126:
            length = int.from_bytes(await self.reader.readexactly(2), "big")
        elif length == 127:
            length = int.from_bytes(await self.reader.readexactly(8), "big")
        return first & 0x0F, await self.reader.readexactly(length)

    async def close_code(self) -> int:
        """The status code of the server's close frame, skipping anything sent before it."""
        while True:
            opcode, payload = await self.next_frame()
            if opcode == 0x8:
                return int.from_bytes(payload[:2], "big")

    def abort(self) -> None:
        self.writer.transport.abort()
