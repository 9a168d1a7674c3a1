"""CloudWatch Logs for in-process handlers: what it does with the functions' EMF lines.

Every EMF line a function writes is checked against the specification (``local.monitoring.emf``) and
kept; once an AWS is there (``publish``), its metrics are published to that CloudWatch right
away. ``observe(monkeypatch)`` hooks the log renderer, so it sees exactly the lines written.
Publishing uses a client of its own (its own botocore session), so it is never counted among
the handlers' AWS calls.
"""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.config import Config

from local.monitoring import emf
from runtime.observability import logs


class CloudWatchLogs:
    current: CloudWatchLogs | None = None

    def __init__(self) -> None:
        self.documents: list[dict[str, Any]] = []
        self.invalid: list[tuple[str, list[str]]] = []
        self.publish = False
        self._client: Any = None

    def observe(self, monkeypatch: pytest.MonkeyPatch) -> CloudWatchLogs:
        """See every line the functions' log sink renders (for the rest of the test)."""
        render = logs._json_line

        def observed(record: Any) -> str:
            text = render(record)
            self.see(text)
            return text

        monkeypatch.setattr(logs, "_json_line", observed)
        return self

    def see(self, text: str) -> None:
        for line in text.splitlines():
            document, problems = emf.parse_line(line)
            if document is None:
                continue
            if problems:
                self.invalid.append((line, problems))
                continue
            self.documents.append(document)
            if self.publish:
                self._put(document)

    def _put(self, document: dict[str, Any]) -> None:
        if self._client is None:
            self._client = boto3.session.Session().client(
                "cloudwatch",
                config=Config(connect_timeout=1, read_timeout=2, retries={"total_max_attempts": 1}),
            )
        by_namespace: dict[str, list[dict[str, Any]]] = {}
        for namespace, datum in emf.metric_data(document):
            by_namespace.setdefault(namespace, []).append(datum)
        for namespace, data in by_namespace.items():
            self._client.put_metric_data(Namespace=namespace, MetricData=data)

    def metric_data(self, start: int = 0) -> list[dict[str, Any]]:
        """PutMetricData datums extracted from the documents seen (from index ``start``)."""
        return [datum for doc in self.documents[start:] for _, datum in emf.metric_data(doc)]
