"""Count AWS API calls by service and API through botocore's event system.

``before-call.<service>.<API>`` fires once per API call (retries are attempts inside one call),
so the counts are the round trips a handler asks for. botocore copies a session's event
emitter into each client it creates, so the counter registers on the boto3 default session
(clients created later) and on any clients passed in (clients that already exist, like the
runtime's per-process ones).

    with CallCounter(clients) as calls:
        handler(event, context)
    calls.counts()  # {"dynamodb:UpdateItem": 1, "cloudwatch:PutMetricData": 1}

``python -m bench.call_counter`` prints the calls of every operation of the service.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable
from typing import Any

import boto3

_EVENT = "before-call.*.*"
# The API parameters of each call, before serialization (what the cost model reads to tell
# which DynamoDB writes also write an index).
_PARAMS_EVENT = "before-parameter-build.dynamodb.*"


class CallCounter:
    """Thread-safe: the fan-out calls from worker threads."""

    def __init__(self, clients: Iterable[Any] = (), *, default_session: bool = True) -> None:
        self._emitters = [client.meta.events for client in clients]
        if default_session:
            self._emitters.append(boto3._get_default_session().events)
        self._calls: Counter[str] = Counter()
        self._requests: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()
        self._unique_id = f"call-counter-{id(self)}"

    def _record_params(self, params: Any = None, model: Any = None, **_: Any) -> None:
        if model is None or not isinstance(params, dict):
            return
        with self._lock:
            self._requests.append((f"dynamodb:{model.name}", dict(params)))

    def _record(self, model: Any = None, **_: Any) -> None:
        if model is None:
            return
        name = f"{model.service_model.service_name}:{model.name}"
        with self._lock:
            self._calls[name] += 1

    def start(self) -> CallCounter:
        for emitter in self._emitters:
            emitter.register(_EVENT, self._record, unique_id=self._unique_id)
            emitter.register(
                _PARAMS_EVENT, self._record_params, unique_id=self._unique_id + "-params"
            )
        return self

    def stop(self) -> None:
        for emitter in self._emitters:
            emitter.unregister(_EVENT, self._record, unique_id=self._unique_id)
            emitter.unregister(
                _PARAMS_EVENT, self._record_params, unique_id=self._unique_id + "-params"
            )

    def __enter__(self) -> CallCounter:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self) -> None:
        with self._lock:
            self._calls.clear()
            self._requests.clear()

    def requests(self) -> list[tuple[str, dict[str, Any]]]:
        """Every DynamoDB call's (``dynamodb:API``, parameters), in order."""
        with self._lock:
            return list(self._requests)

    def counts(self) -> dict[str, int]:
        """``service:API`` → calls, sorted by name."""
        with self._lock:
            return dict(sorted(self._calls.items()))

    def total(self, service: str | None = None) -> int:
        with self._lock:
            return sum(
                n
                for key, n in self._calls.items()
                if service is None or key.partition(":")[0] == service
            )

    def __getitem__(self, key: str) -> int:
        with self._lock:
            return self._calls.get(key, 0)


def format_table(rows: dict[str, dict[str, int]]) -> str:
    """A Markdown table: one block of ``service:API → count`` lines per operation."""
    lines = ["| operation | AWS call | count |", "|---|---|---:|"]
    for operation, counts in rows.items():
        for api, count in counts.items():
            lines.append(f"| {operation} | {api} | {count} |")
        lines.append(f"| {operation} | **total** | **{sum(counts.values())}** |")
    return "\n".join(lines)


def main() -> None:
    # The scenarios drive the service's handlers; imported here so the counter itself
    # stays free of the runtime.
    from bench.call_scenarios import measure_all

    print(format_table(measure_all()))


if __name__ == "__main__":
    main()
