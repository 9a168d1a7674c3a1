"""What a fire drill is made of: the running stack's HTTP routes, one run's clients, faults.

``local.drills.scenarios`` holds the drills themselves, ``local.drills.runner`` runs one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection

from client.connection import open_connection
from runtime.aws import READ_TIMEOUT_S
from runtime.terminal import printable

ALARM, OK = "ALARM", "OK"
POLL_S = 0.25
REPLY_TIMEOUT_S = 30.0
CONNECTIONS_PER_ADDRESS = 8  # under the default connectionAttemptsPerMinute (20)
SLOW_CALL_MAX_MS = READ_TIMEOUT_S * 1000 - 200  # a slow call, not yet a read timeout
# A drill's faults expire this long after their last renewal (every LEASE_S / 3 while it runs).
LEASE_S = 10.0
FOR_DRILLS = 'make dev ARGS="--alarm-time-scale 60"'


class DrillFailed(Exception):
    """The drill could not run (no stack, no such alarm…): exit 2."""


# --- the running stack ---------------------------------------------------------------------------


class Stack:
    """HTTP access to a running local stack's local-only endpoints."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.base = f"http://{host}:{port}"
        self.port = port

    def call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method)  # noqa: S310
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            detail = error.read().decode(errors="replace")[:300]
            raise DrillFailed(f"{method} {path}: HTTP {error.code} {detail}") from None
        except OSError as error:
            raise DrillFailed(
                f"no local stack on port {self.port} ({error}); start one for drills with "
                f"{FOR_DRILLS}"
            ) from None

    async def acall(self, method: str, path: str, body: Any = None) -> Any:
        return await asyncio.to_thread(self.call, method, path, body)


@dataclass
class Drill:
    name: str
    summary: str
    # The alarm it fires: the first of these slugs the stack has (function alarms: by name).
    targets: tuple[str, ...]
    pressure: Callable[[DrillRun], Coroutine[Any, Any, None]]


@dataclass
class DrillRun:
    """One run of a drill: the stack, its target alarm, the clients it opened."""

    stack: Stack
    info: dict[str, Any]
    alarm: dict[str, Any]
    clients: list[ClientConnection] = field(default_factory=list)
    # The faults this run set (by ID), under its own owner name, each on a lease.
    owner: str = field(default_factory=lambda: f"drill pid {os.getpid()}")
    faults: list[int] = field(default_factory=list)
    block: int = field(default_factory=lambda: random.randint(1, 254))
    opened: int = 0
    replies: dict[str, int] = field(default_factory=dict)

    @property
    def ws_url(self) -> str:
        return str(self.info["websocketUrl"])

    def say(self, text: str) -> None:
        say(text)

    def source(self) -> str:
        """A loopback source address; a new one every CONNECTIONS_PER_ADDRESS connections."""
        n = self.opened // CONNECTIONS_PER_ADDRESS
        self.opened += 1
        return f"127.{self.block}.{n // 250 + 1}.{n % 250 + 1}"

    async def connect(self, token: str | None = None) -> ClientConnection:
        ws = await open_connection(self.ws_url, token, local_addr=(self.source(), 0))
        self.clients.append(ws)
        return ws

    async def token(self, user: str) -> str:
        doc = await self.stack.acall("GET", f"/_local/token?user={user}")
        return str(doc["token"])

    async def request(self, ws: ClientConnection, payload: dict[str, Any]) -> dict[str, Any]:
        """Send ``payload`` and return the reply (an ``error`` reply too), counted by kind."""
        await ws.send(json.dumps(payload))
        while True:
            doc: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), REPLY_TIMEOUT_S))
            if doc.get("type") in ("heartbeatAck",) and payload.get("action") != "heartbeat":
                continue
            kind = doc.get("code") or doc.get("type") or "?"
            self.replies[kind] = self.replies.get(kind, 0) + 1
            return doc

    async def fault(self, **fault: Any) -> None:
        """Set a fault under this run's name, on a lease that ``keep_leases`` renews."""
        doc = {**fault, "owner": self.owner, "durationSeconds": LEASE_S}
        added = await self.stack.acall("POST", "/_local/faults", doc)
        self.faults.extend(int(f["id"]) for f in added["faults"])

    async def keep_leases(self) -> None:
        """Renew this run's faults every LEASE_S / 3 while the drill runs."""
        while True:
            await asyncio.sleep(LEASE_S / 3)
            for fault_id in list(self.faults):
                with contextlib.suppress(DrillFailed):  # removed meanwhile
                    await self.stack.acall(
                        "PATCH", f"/_local/faults/{fault_id}", {"durationSeconds": LEASE_S}
                    )

    async def remove_faults(self) -> list[int]:
        """Remove this run's faults, and only them; returns their IDs."""
        owner = urllib.parse.quote(self.owner)
        doc = await self.stack.acall("DELETE", f"/_local/faults?owner={owner}")
        self.faults.clear()
        return [int(i) for i in doc.get("removed", [])]

    async def close_all(self) -> int:
        clients, self.clients = self.clients, []
        await asyncio.gather(*(ws.close() for ws in clients), return_exceptions=True)
        return len(clients)


def say(text: str) -> None:
    # Alarm reasons and errors come from the stack: escaped, never raw control characters.
    sys.stdout.write(f"{time.strftime('%H:%M:%S')}  {printable(text)}\n")
    sys.stdout.flush()
