"""What Lambda does with a function's stdout: each line to CloudWatch Logs.

Lines go to the log group ``/aws/lambda/<function>`` (created with the stack's retention by
``local.monitoring.resources``) and the function's log stream (the one its context names),
so ``aws logs tail``, ``filter-log-events`` and ``get-log-events`` against the embedded AWS
read what CloudWatch Logs would hold. The line's function is the one running on the thread
that wrote it (``local.drills.faults.current_function``); lines written outside a function
are not a function's and are not shipped.

``submit`` is an append to a bounded buffer (cheap, on the writing thread); a daemon thread
sends what accumulated every ``FLUSH_INTERVAL_S`` in ``PutLogEvents`` batches, off the
request path. A full buffer drops the oldest lines and counts them (``stats``): a flood must
not grow the stack's memory. The embedded AWS bounds what it keeps per stream
(``local.aws.server``).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from local.common import console
from local.drills.faults import current_function

FLUSH_INTERVAL_S = 0.5
MAX_PENDING = 20_000
# PutLogEvents: at most 10,000 events and 1,048,576 bytes (each event counts 26 more).
MAX_BATCH_EVENTS = 10_000
MAX_BATCH_BYTES = 1_048_576
EVENT_OVERHEAD = 26
MAX_EVENT_BYTES = 256 * 1024 - EVENT_OVERHEAD


class LogShipper:
    def __init__(
        self,
        logs_client: Any,
        group_of: Callable[[str], str],
        stream_of: Callable[[str], str],
        report: Callable[[str], None] = console.say,
    ) -> None:
        """``group_of`` / ``stream_of``: a route-table function's name → its log group / the
        log stream its invocations write to."""
        self.logs = logs_client
        self.group_of = group_of
        self.stream_of = stream_of
        self.report = report
        self._pending: deque[tuple[str, int, str]] = deque(maxlen=MAX_PENDING)
        self._lock = threading.Lock()
        self._streams: set[tuple[str, str]] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="log-shipper", daemon=True)
        self._failed = False
        self.stats = {"shipped": 0, "dropped": 0, "failed": 0}

    def start(self) -> LogShipper:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self.flush()

    def submit(self, line: str) -> None:
        """One line of stdout (called on the thread that wrote it)."""
        function = current_function()
        if function is None:
            return
        with self._lock:
            if len(self._pending) == MAX_PENDING:
                self.stats["dropped"] += 1
            self._pending.append((function, int(time.time() * 1000), line))

    def flush(self) -> None:
        with self._lock:
            pending = list(self._pending)
            self._pending.clear()
        by_target: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for function, stamp, line in pending:
            target = (self.group_of(function), self.stream_of(function))
            message = line.encode()[:MAX_EVENT_BYTES].decode(errors="ignore")
            by_target.setdefault(target, []).append({"timestamp": stamp, "message": message})
        for (group, stream), events in by_target.items():
            for batch in _batches(events):
                self._put(group, stream, batch)

    def _put(self, group: str, stream: str, events: list[dict[str, Any]]) -> None:
        try:
            if (group, stream) not in self._streams:
                self._create_stream(group, stream)
            try:
                self.logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=events)
            except ClientError as error:  # the embedded AWS restarted: group and stream anew
                if error.response["Error"]["Code"] != "ResourceNotFoundException":
                    raise
                self._create_stream(group, stream)
                self.logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=events)
        except Exception as error:  # embedded AWS trouble must not stop the functions
            self.stats["failed"] += len(events)
            if not self._failed:  # once, until it works again
                self._failed = True
                self.report(f"! could not ship function logs to CloudWatch Logs: {error!r}")
            return
        self._failed = False
        self.stats["shipped"] += len(events)

    def _create_stream(self, group: str, stream: str) -> None:
        for create, kwargs in (
            (self.logs.create_log_group, {"logGroupName": group}),
            (self.logs.create_log_stream, {"logGroupName": group, "logStreamName": stream}),
        ):
            try:
                create(**kwargs)
            except ClientError as error:
                if error.response["Error"]["Code"] != "ResourceAlreadyExistsException":
                    raise
        self._streams.add((group, stream))

    def _run(self) -> None:
        while not self._stop.wait(FLUSH_INTERVAL_S):
            self.flush()


def _batches(events: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """``events`` (in time order) cut to PutLogEvents' limits."""
    batches: list[list[dict[str, Any]]] = []
    current: list[dict[str, Any]] = []
    size = 0
    for event in events:
        cost = len(event["message"].encode()) + EVENT_OVERHEAD
        if current and (len(current) == MAX_BATCH_EVENTS or size + cost > MAX_BATCH_BYTES):
            batches.append(current)
            current, size = [], 0
        current.append(event)
        size += cost
    if current:
        batches.append(current)
    return batches
