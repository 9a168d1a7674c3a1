"""RFC 6455 framing rules aiohttp's server leaves to the application.

* Every frame a client sends must be masked (§5.1); a server must close the connection on an
  unmasked one, with 1002 (protocol error), as API Gateway does. aiohttp unmasks what is
  masked and accepts what is not, so ``GatewayWebSocket`` puts ``MaskCheck`` in front of its
  frame parser: it follows the frame headers in the byte stream (it never copies payloads)
  and, at the first unmasked frame, stops feeding the parser and fails the connection's
  message queue with a ``WebSocketError(1002)``. aiohttp's ``receive()`` then answers with a
  1002 close frame and returns an ERROR message, the same path as a message that is too big
  (1009), so the gateway records the close and runs ``$disconnect``.
* A close frame without a status code is reported as 1005 (no status received, §7.1.5);
  aiohttp reports it as 0.

``GatewayWebSocket`` reaches into aiohttp internals (``_post_start``, the request
protocol's ``_payload_parser`` and ``_message_tail``); the attack e2e tests send unmasked
frames through a raw socket, so an aiohttp upgrade that changes them fails a test, not a
client.
"""

from __future__ import annotations

from typing import Any

from aiohttp import WSCloseCode, web
from aiohttp.http_websocket import WebSocketError

from local.gateway.connection import MESSAGE_TOO_BIG

PROTOCOL_ERROR = 1002
NO_STATUS_RECEIVED = 1005
UNMASKED_REASON = "Client frames must be masked"
# The frames aiohttp's receive() refuses with a close of its own: code → the reason recorded.
REFUSED_FRAMES = {MESSAGE_TOO_BIG: "Message too big", PROTOCOL_ERROR: UNMASKED_REASON}

_MASKED = 0x80
_LENGTH = 0x7F
_MASK_KEY_BYTES = 4


def close_code_received(code: int) -> int:
    """The status code a client's close frame carried; 1005 when it carried none (aiohttp: 0)."""
    return code or NO_STATUS_RECEIVED


class MaskCheck:
    """A WebSocket frame parser's front: passes bytes on while every frame is masked."""

    def __init__(self, parser: Any, fail: Any) -> None:
        self._parser = parser
        self._fail = fail  # called once with the WebSocketError, at the first unmasked frame
        self._header = bytearray()
        self._payload_left = 0
        self._failed = False

    def feed_data(self, data: bytes | bytearray | memoryview) -> tuple[bool, bytes]:
        if self._failed:
            return True, b""
        if not self._all_masked(bytes(data)):
            self._failed = True
            self._fail(WebSocketError(WSCloseCode.PROTOCOL_ERROR, UNMASKED_REASON))
            return True, b""
        result: tuple[bool, bytes] = self._parser.feed_data(data)
        return result

    def feed_eof(self) -> None:
        self._parser.feed_eof()

    def _all_masked(self, data: bytes) -> bool:
        """Follows frame boundaries through ``data``; False at a header without the mask bit."""
        position, size = 0, len(data)
        while position < size:
            if self._payload_left:
                step = min(self._payload_left, size - position)
                self._payload_left -= step
                position += step
                continue
            self._header.append(data[position])
            position += 1
            if len(self._header) < 2:
                continue
            second = self._header[1]
            if not second & _MASKED:
                return False
            length = second & _LENGTH
            extended = 2 if length == 126 else 8 if length == 127 else 0
            if len(self._header) < 2 + extended + _MASK_KEY_BYTES:
                continue
            if extended:
                length = int.from_bytes(self._header[2 : 2 + extended], "big")
            self._payload_left = length
            self._header.clear()
        return True


class GatewayWebSocket(web.WebSocketResponse):
    """aiohttp's server WebSocket, refusing unmasked client frames (see the module docstring)."""

    def _post_start(self, request: Any, protocol: Any, writer: Any) -> None:
        handler = request.protocol
        # Bytes that arrived with the handshake are fed to the parser as it is set: hold
        # them back so that they pass the check too.
        tail, handler._message_tail = handler._message_tail, b""
        super()._post_start(request, protocol, writer)
        check = MaskCheck(handler._payload_parser, self._fail_unmasked)
        handler._payload_parser = check
        if tail:
            eof, _ = check.feed_data(tail)
            if eof:
                handler.close()

    def _fail_unmasked(self, error: WebSocketError) -> None:
        reader = self._reader
        if reader is not None:
            reader.set_exception(error)
