"""The local gateway alone, with stand-in functions, in its own process (for bench.gateway).

``python -m bench.gateway_server`` serves the real ``local.gateway.websocket.Gateway`` on a free
127.0.0.1 port with an invoker that answers at once ($connect 200, every message echoed as
its route's reply; ``WHOAMI`` gets the connection's ID), writes ``READY <port>`` on stdout
and serves until stdin closes. With no DynamoDB and no handler in the way, what the bench
measures is the gateway's HTTP and WebSocket stack: handshake, frame in → reply out, and the
@connections API.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from typing import Any

from local.gateway.connection import GatewayOptions
from local.gateway.websocket import Gateway
from runtime.routes import Function

STAGE = "bench"
WHOAMI = '{"action":"whoami"}'


class EchoInvoker:
    """Answers like a function that does no work: 200 for $connect, the body as the reply."""

    async def invoke(self, function: Function, event: dict[str, Any]) -> Any:
        if function.route_key in ("$connect", "$disconnect"):
            return {"statusCode": 200}
        body = event.get("body") or ""
        if body == WHOAMI:  # the bench needs the ID to address the connection via @connections
            body = json.dumps({"connectionId": event["requestContext"]["connectionId"]})
        return {"statusCode": 200, "body": body}


async def serve() -> None:
    gateway = Gateway(
        GatewayOptions(stage=STAGE, port=0, announce=False, ping_interval_s=None), EchoInvoker()
    )
    await gateway.start()
    sys.stdout.write(f"READY {gateway.port}\n")
    sys.stdout.flush()
    loop = asyncio.get_running_loop()
    # Until the bench closes our stdin (or dies).
    await loop.run_in_executor(None, sys.stdin.read)
    with contextlib.suppress(Exception):
        await gateway.shutdown(timeout_s=5)


if __name__ == "__main__":
    asyncio.run(serve())
