"""The embedded AWS process: moto's ThreadedMotoServer, owned by a running local stack.

``python -m local.aws.server --host 127.0.0.1 --port 4566`` binds (port 0: any free port),
writes ``READY <port>`` on stdout, and serves until its stdin closes, which happens when
the stack stops it or dies; and the kernel kills it if the stack dies (``--parent``, the
stack's PID: ``prctl(PR_SET_PDEATHSIG)``), so it can never outlive its stack. It ignores SIGINT and
SIGTERM: on Ctrl-C the stack still needs DynamoDB to run every ``$disconnect``.

A process of its own keeps moto off the stack's GIL, so 64 handler threads and the event
loop do not slow down every DynamoDB call (which otherwise trips the functions' 2-second
botocore read timeouts under load).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from typing import Any

from moto.server import ThreadedMotoServer

from local.aws.embedded import HEALTH_PATH
from local.common.lifeline import die_with_parent


class OneRequestAtATime:
    """WSGI wrapper: DynamoDB applies every request atomically, but moto evaluates a condition
    and applies the write without a lock, so two concurrent conditional writes could both pass
    a limit (maxListenersPerSession, maxActiveSessions). Serving one request at a time restores
    per-request atomicity; clients still race for the order, as they do on AWS."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ: Any, start_response: Any) -> list[bytes]:
        if environ.get("PATH_INFO") == HEALTH_PATH:  # the supervisor's probe: never queued
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"ok"]
        with self.lock:
            return list(self.app(environ, start_response))


class MotoServer(ThreadedMotoServer):
    """ThreadedMotoServer that reports a failed bind instead of waiting forever."""

    error: BaseException | None = None

    def _server_entry(self) -> None:
        try:
            super()._server_entry()
        except BaseException as error:
            self.error = error
            self._server_ready_event.set()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.aws.server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4566)
    parser.add_argument("--parent", type=int, default=None, help="the stack's PID")
    args = parser.parse_args(argv)
    # Never outlive the stack: the kernel kills this process when the stack dies, whatever
    # it died of (its stdin's EOF, below, is the other way out).
    die_with_parent(signal.SIGKILL, args.parent)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    logging.basicConfig(stream=sys.stderr, level=logging.ERROR)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = MotoServer(ip_address=args.host, port=args.port, verbose=False)
    server.start()
    if server.error is not None:
        sys.stdout.write(f"ERROR {server.error}\n")
        sys.stdout.flush()
        return 1
    # No client knows the port before READY, so every request goes through the lock.
    server._server.app = OneRequestAtATime(server._server.app)  # type: ignore[union-attr]
    sys.stdout.write(f"READY {server.get_host_and_port()[1]}\n")
    sys.stdout.flush()
    sys.stdin.read()  # until the stack closes our stdin (or dies)
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
