"""The embedded AWS process: moto's ThreadedMotoServer, owned by a running local stack.

``python -m local.aws.server --host 127.0.0.1 --port 4566`` binds (port 0: any free port),
writes ``READY <port>`` on stdout, and serves until its stdin closes, which happens when
the stack stops it or dies; and the kernel kills it if the stack dies (``--parent``, the
stack's PID: ``prctl(PR_SET_PDEATHSIG)``), so it can never outlive its stack. It ignores SIGINT and
SIGTERM: on Ctrl-C the stack still needs DynamoDB to run every ``$disconnect``.

A process of its own keeps moto off the stack's GIL, so 64 handler threads and the event
loop do not slow down every DynamoDB call (which otherwise trips the functions' 2-second
botocore read timeouts under load).

What moto lacks, fixed here, in the server process only:

* A call moto does not implement (``describe-alarm-history``, ``describe-query-definitions``…)
  raised ``NotImplementedError``, which werkzeug answered with an HTML 500 and a traceback on
  the stack's terminal; botocore retried the 500. ``AwsErrors`` answers it as AWS answers an
  operation it does not know, in the request's protocol: 400 ``UnknownOperationException``
  (JSON and CBOR) or 400 ``InvalidAction`` (query, XML), which botocore parses and never
  retries. Any other failure inside moto becomes a 500 ``InternalFailure`` body of the same
  kind, one line on stderr, no traceback.
* moto's ``list_metrics`` compared dimension sets pairwise (every dimension of one with
  every dimension of the other), so a metric with two or more dimensions was listed once
  per datum; ``same_dimensions`` compares them as sets.
* moto's ``BaseModel`` keeps a reference to every model object it ever created (for its
  server's dashboard, ``/moto-api``), so every request leaked what it built: about 1.2 KB per
  DynamoDB ``UpdateItem`` (the copies of the item it makes), per metric datum, per log event.
  ``trim`` drops those references (``reset_model_data``), so only what the backends hold
  stays.
* moto keeps every datum and every log event forever. ``Retention`` drops metric datums
  older than ``METRIC_RETENTION_S`` (and the oldest beyond ``MAX_METRIC_DATUMS``) and log
  events beyond their group's retention (and the oldest beyond ``MAX_EVENTS_PER_STREAM``),
  so what the embedded AWS keeps is bounded by time, not by requests.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from moto.cloudwatch import models as cloudwatch_models
from moto.cloudwatch.models import cloudwatch_backends
from moto.core.model_instances import reset_model_data
from moto.logs.models import logs_backends
from moto.server import ThreadedMotoServer

from local.aws.embedded import HEALTH_PATH
from local.common import console
from local.common.lifeline import die_with_parent
from runtime.terminal import printable


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


# --- errors as AWS gives them ---------------------------------------------------------------------

JSON_CONTENT_TYPE = "application/x-amz-json-1.1"
CBOR_CONTENT_TYPE = "application/cbor"


def _protocol(environ: Any) -> str:
    """The request's wire protocol: ``cbor`` (Smithy RPC v2), ``json``, ``query`` or ``rest``."""
    content_type = str(environ.get("CONTENT_TYPE") or "")
    if environ.get("HTTP_SMITHY_PROTOCOL") == "rpc-v2-cbor" or content_type.startswith(
        CBOR_CONTENT_TYPE
    ):
        return "cbor"
    if environ.get("HTTP_X_AMZ_TARGET") or "x-amz-json" in content_type:
        return "json"
    if content_type.startswith("application/x-www-form-urlencoded"):
        return "query"
    return "rest"


def _cbor_text(text: str) -> bytes:
    data = text.encode()
    size = len(data)
    if size < 24:
        head = bytes([0x60 | size])
    elif size < 0x100:
        head = bytes([0x78, size])
    elif size < 0x10000:
        head = bytes([0x79]) + size.to_bytes(2, "big")
    else:
        head = bytes([0x7A]) + size.to_bytes(4, "big")
    return head + data


def cbor_map(fields: dict[str, str]) -> bytes:
    """A CBOR map of text to text (all an error body needs; ``len(fields) < 24``)."""
    return bytes([0xA0 | len(fields)]) + b"".join(
        _cbor_text(k) + _cbor_text(v) for k, v in fields.items()
    )


def error_response(
    environ: Any, status: int, code: str, message: str
) -> tuple[str, list[tuple[str, str]], bytes]:
    """An AWS error in the request's protocol: (status line, headers, body)."""
    request_id = str(uuid.uuid4())
    reason = {400: "Bad Request", 500: "Internal Server Error"}.get(status, "Error")
    headers = [("x-amzn-RequestId", request_id), ("x-amzn-ErrorType", code)]
    protocol = _protocol(environ)
    if protocol == "cbor":
        body = cbor_map({"__type": code, "message": message})
        headers += [("Content-Type", CBOR_CONTENT_TYPE), ("smithy-protocol", "rpc-v2-cbor")]
    elif protocol == "query":
        body = (
            "<ErrorResponse><Error><Type>{}</Type><Code>{}</Code><Message>{}</Message></Error>"
            "<RequestId>{}</RequestId></ErrorResponse>".format(
                "Sender" if status < 500 else "Receiver", code, _xml_escape(message), request_id
            )
        ).encode()
        headers.append(("Content-Type", "text/xml"))
    else:
        body = json.dumps({"__type": code, "message": message}).encode()
        headers.append(("Content-Type", JSON_CONTENT_TYPE))
    headers.append(("Content-Length", str(len(body))))
    return f"{status} {reason}", headers, body


def _xml_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _operation(environ: Any, error: BaseException) -> str:
    """The operation named by moto's NotImplementedError (``The x_y action has not …``)."""
    words = str(error).split()
    return words[1] if len(words) > 2 and words[0] == "The" else "this operation"


class AwsErrors:
    """WSGI wrapper: what moto cannot do is answered as AWS answers it, never a traceback."""

    def __init__(self, app: Any, report: Any = None) -> None:
        self.app = app
        self.report = report or (lambda line: sys.stderr.write(printable(line) + "\n"))

    def __call__(self, environ: Any, start_response: Any) -> list[bytes]:
        try:
            return list(self.app(environ, start_response))
        except NotImplementedError as error:
            operation = _operation(environ, error)
            status, headers, body = error_response(
                environ,
                400,
                "InvalidAction" if _protocol(environ) == "query" else "UnknownOperationException",
                f"The embedded AWS (moto) does not implement {operation}",
            )
        except Exception as error:  # moto's bug: one line, an AWS-shaped 500, no traceback
            self.report(f"{type(error).__name__} in moto: {error}"[:300])
            status, headers, body = error_response(
                environ, 500, "InternalFailure", f"{type(error).__name__} in the embedded AWS"
            )
        start_response(status, headers)
        return [body]


# --- moto's list_metrics, fixed -------------------------------------------------------------------


def same_dimensions(ours: list[Any], theirs: list[Any]) -> bool:
    """Two dimension sets are the same metric's when they hold the same name/value pairs."""
    return {(d.name, d.value) for d in ours} == {(d.name, d.value) for d in theirs}


def patch_moto() -> None:
    cloudwatch_models.are_dimensions_same = same_dimensions  # type: ignore[assignment]


# --- retention ------------------------------------------------------------------------------------

METRIC_RETENTION_S = 3 * 3600.0
MAX_METRIC_DATUMS = 50_000
MAX_EVENTS_PER_STREAM = 2_000
RETENTION_INTERVAL_S = 5.0


def _epoch(stamp: Any) -> float:
    """A datum's time as epoch seconds (moto keeps what the request carried: a datetime,
    naive for UTC, or a string; one it cannot read counts as now, so it is kept)."""
    if isinstance(stamp, str):
        try:
            stamp = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        except ValueError:
            return time.time()
    if not isinstance(stamp, datetime):
        return time.time()
    return (stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)).timestamp()


def trim(now: float | None = None) -> tuple[int, int]:
    """Drop what moto would keep past its retention; (metric datums, log events) dropped."""
    now = time.time() if now is None else now
    reset_model_data()  # moto's registry of every model object ever made (see above)
    datums = events = 0
    backend: Any  # moto's BackendDict yields BaseBackend
    for _, _, backend in cloudwatch_backends.iter_backends():
        kept = [m for m in backend.metric_data if _epoch(m.timestamp) >= now - METRIC_RETENTION_S]
        kept = kept[-MAX_METRIC_DATUMS:]
        datums += len(backend.metric_data) - len(kept)
        backend.metric_data = kept
    for _, _, backend in logs_backends.iter_backends():
        for group in backend.groups.values():
            oldest_ms = (
                (now - group.retention_in_days * 86400) * 1000 if group.retention_in_days else 0
            )
            for stream in group.streams.values():
                kept_events = [e for e in stream.events if e.timestamp >= oldest_ms]
                kept_events = kept_events[-MAX_EVENTS_PER_STREAM:]
                events += len(stream.events) - len(kept_events)
                stream.events = kept_events
    return datums, events


class Retention:
    """Runs ``trim`` every ``interval_s`` under the request lock (moto is not thread-safe)."""

    def __init__(self, lock: threading.Lock, interval_s: float = RETENTION_INTERVAL_S) -> None:
        self.lock = lock
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="retention", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                with self.lock:
                    trim()
            except Exception as error:  # never stop the server over bookkeeping
                sys.stderr.write(printable(f"retention pass failed: {error!r}") + "\n")


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
    console.log_to_stderr(logging.ERROR)
    # werkzeug logs every failed request with its traceback; AwsErrors answers them instead.
    logging.getLogger("werkzeug").setLevel(logging.CRITICAL)
    patch_moto()
    server = MotoServer(ip_address=args.host, port=args.port, verbose=False)
    server.start()
    if server.error is not None:
        sys.stdout.write(f"ERROR {server.error}\n")
        sys.stdout.flush()
        return 1
    # No client knows the port before READY, so every request goes through the lock.
    serialized = OneRequestAtATime(AwsErrors(server._server.app))  # type: ignore[union-attr]
    server._server.app = serialized  # type: ignore[union-attr]
    retention = Retention(serialized.lock)
    retention.start()
    sys.stdout.write(f"READY {server.get_host_and_port()[1]}\n")
    sys.stdout.flush()
    sys.stdin.read()  # until the stack closes our stdin (or dies)
    retention.stop()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
