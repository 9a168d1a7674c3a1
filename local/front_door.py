"""One port for WebSocket and plain HTTP: read the request head, then pick the protocol.

The websockets library parses GET requests only, but the @connections API needs POST and
DELETE on the same port (as on AWS). ``front_door`` returns a ``ServerConnection`` subclass
for websockets' documented ``create_connection`` hook: it buffers a new connection's bytes
until the end of the request head, then either starts the WebSocket machinery with them
(an upgrade) or moves the transport to the HTTP server (anything else). A connection that
sends no complete head within ``head_timeout_s`` or more than ``MAX_HEAD_BYTES`` is dropped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from websockets.asyncio.server import ServerConnection

from local.http import MAX_HEAD_BYTES, is_websocket_upgrade

TakeOver = Callable[[asyncio.Transport, bytes], None]


def front_door(
    take_over: TakeOver,
    lost: Callable[[ServerConnection], None],
    head_timeout_s: float,
) -> type[ServerConnection]:
    """A ServerConnection class routing non-upgrades to ``take_over``; ``lost`` on WS close."""

    class FrontDoor(ServerConnection):
        _front_mode: str | None = None  # None while reading the head, then "ws" or "http"

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            # The WebSocket side starts only once we know it is an upgrade.
            self._front_transport = transport
            self._front_buffer = bytearray()
            self._front_timer = self.loop.call_later(head_timeout_s, transport.abort)

        def data_received(self, data: bytes) -> None:
            if self._front_mode == "ws":
                super().data_received(data)
                return
            self._front_buffer += data
            end = self._front_buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._front_buffer) > MAX_HEAD_BYTES:
                    self._front_timer.cancel()
                    self._front_transport.abort()
                return
            self._front_timer.cancel()
            initial = bytes(self._front_buffer)
            self._front_buffer.clear()
            transport = self._front_transport
            if is_websocket_upgrade(initial[:end]):
                self._front_mode = "ws"
                super().connection_made(transport)
                super().data_received(initial)
            else:
                self._front_mode = "http"
                take_over(transport, initial)  # type: ignore[arg-type]

        def eof_received(self) -> bool | None:
            if self._front_mode == "ws":
                return super().eof_received()
            return None

        def connection_lost(self, exc: Exception | None) -> None:
            if self._front_mode == "ws":
                super().connection_lost(exc)
                lost(self)
            else:
                self._front_timer.cancel()

        def pause_writing(self) -> None:
            if self._front_mode == "ws":
                super().pause_writing()

        def resume_writing(self) -> None:
            if self._front_mode == "ws":
                super().resume_writing()

    return FrontDoor
