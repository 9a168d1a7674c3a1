"""A recording stand-in for API Gateway's @connections API, on 127.0.0.1 in a thread.

moto's apigatewaymanagementapi never answers 410 Gone, so tests and the call-count bench
point ``CONNECTIONS_ENDPOINT`` here instead. It records every POST body and DELETE per
connection ID, answers 410 GoneException for IDs marked gone (and for IDs it closed), a chosen
error status for IDs marked failing, and measures how many requests were in flight at once.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

_MARKER = "/@connections/"


class _Server(ThreadingHTTPServer):
    # socketserver's default backlog of 5 drops a burst of concurrent connects (each dropped
    # SYN costs a 1 s retransmit), which would measure the stand-in, not the fan-out.
    request_queue_size = 256
    daemon_threads = True


class ConnectionsServer:
    """Start with ``with ConnectionsServer() as server:``; ``server.endpoint`` is the URL."""

    def __init__(self, stage: str = "test", *, delay_s: float = 0.0) -> None:
        self.stage = stage
        self.delay_s = delay_s
        self.gone: set[str] = set()
        self.failing: dict[str, int] = {}
        self.posts: dict[str, list[bytes]] = defaultdict(list)
        self.deletes: list[str] = []
        self.requests = 0
        self.max_in_flight = 0
        # Called with (connection ID, message) for each delivered POST, before it is answered:
        # what the client would do on receipt, while the sender still waits for the reply.
        self.on_post: Callable[[str, dict[str, Any]], None] | None = None
        self._in_flight = 0
        self._lock = threading.Lock()
        self._httpd = _Server(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def endpoint(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/{self.stage}"

    def start(self) -> ConnectionsServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> ConnectionsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def messages(self, connection_id: str) -> list[dict[str, Any]]:
        """The JSON messages delivered (2xx) to a connection, in order."""
        with self._lock:
            return [json.loads(body) for body in self.posts.get(connection_id, [])]

    def delivered_to(self) -> set[str]:
        with self._lock:
            return {cid for cid, bodies in self.posts.items() if bodies}

    def reset(self) -> None:
        with self._lock:
            self.gone.clear()
            self.failing.clear()
            self.posts.clear()
            self.deletes.clear()
            self.requests = 0
            self.max_in_flight = 0

    def _handle(self, method: str, path: str, body: bytes) -> tuple[int, str | None]:
        """(status, AWS error type) for one request; records what was delivered."""
        if _MARKER not in path:
            return 404, "NotFoundException"
        cid = unquote(path.split(_MARKER, 1)[1].split("?", 1)[0])
        with self._lock:
            self.requests += 1
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
        on_post = None
        try:
            if self.delay_s:
                time.sleep(self.delay_s)
            with self._lock:
                if cid in self.gone:
                    return 410, "GoneException"
                if cid in self.failing:
                    return self.failing[cid], "InternalServerErrorException"
                if method == "DELETE":
                    self.deletes.append(cid)
                    self.gone.add(cid)  # like API Gateway: a closed connection is gone
                    return 204, None
                if method == "POST":
                    self.posts[cid].append(body)
                    on_post = self.on_post
            if on_post is not None:
                on_post(cid, json.loads(body))
            return 200, None
        finally:
            with self._lock:
                self._in_flight -= 1

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                status, error_type = server._handle(method, self.path, body)
                payload = json.dumps({"message": error_type}).encode() if error_type else b""
                self.send_response(status)
                if error_type:
                    self.send_header("x-amzn-ErrorType", error_type)
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if payload:
                    self.wfile.write(payload)

            def do_POST(self) -> None:
                self._serve("POST")

            def do_DELETE(self) -> None:
                self._serve("DELETE")

            def do_GET(self) -> None:
                self._serve("GET")

            def log_message(self, format: str, *args: Any) -> None:
                pass  # stdout is reserved for the functions' JSON log lines

        return Handler
