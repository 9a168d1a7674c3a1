"""The recent function log lines, kept in a bounded ring for the web console.

Fed by ``local.functions.log_tap`` with each JSON line the functions write to stdout. Each
record gets a
sequence number so the console can ask only for what is new (``since``). Filters match what a
developer looks for while building a client: a minimum level, an operation, a session (its
``sessionId`` or, before the session is known, the ``correlationId``).
"""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

DEFAULT_CAPACITY = 2000
MAX_PAGE = 500
LEVELS = ("DEBUG", "INFO", "WARN", "ERROR")
_RANK = {level: rank for rank, level in enumerate(LEVELS)}
# The EMF directive is for CloudWatch Logs, not for a person reading the line.
_HIDDEN = ("_aws",)


@dataclass(frozen=True)
class LogQuery:
    since: int = 0  # only records with a larger sequence number
    level: str | None = None  # minimum level
    operation: str | None = None
    session: str | None = None  # sessionId or correlationId
    limit: int = 200

    def __post_init__(self) -> None:
        if self.level is not None and self.level not in _RANK:
            raise ValueError(f"level must be one of {', '.join(LEVELS)}")
        if not 1 <= self.limit <= MAX_PAGE:
            raise ValueError(f"limit must be within 1-{MAX_PAGE}")
        if self.since < 0:
            raise ValueError("since must be ≥ 0")

    def matches(self, record: dict[str, Any]) -> bool:
        if self.level is not None and _RANK.get(record.get("level", ""), 0) < _RANK[self.level]:
            return False
        if self.operation is not None and record.get("operation") != self.operation:
            return False
        return self.session is None or self.session in (
            record.get("sessionId"),
            record.get("correlationId"),
        )


class LogRing:
    """The last ``capacity`` JSON log lines, parsed, with increasing sequence numbers."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self.capacity = capacity
        self._records: deque[tuple[int, dict[str, Any]]] = deque(maxlen=capacity)
        self._seq = 0
        self._lock = threading.Lock()

    def add_line(self, line: str) -> None:
        """Keep ``line`` if it is a JSON object (anything else is not a function log line)."""
        try:
            record = json.loads(line)
        except ValueError:
            return
        if not isinstance(record, dict):
            return
        for key in _HIDDEN:
            record.pop(key, None)
        with self._lock:
            self._seq += 1
            self._records.append((self._seq, record))

    @property
    def last_seq(self) -> int:
        with self._lock:
            return self._seq

    def query(self, query: LogQuery) -> dict[str, Any]:
        """The newest ``limit`` matching records after ``since``, oldest first, and the cursor."""
        with self._lock:
            snapshot = list(self._records)
            last = self._seq
        found: list[dict[str, Any]] = []
        for seq, record in reversed(snapshot):
            if seq <= query.since or len(found) >= query.limit:
                break
            if query.matches(record):
                found.append({"seq": seq, **record})
        found.reverse()
        operations = sorted({r["operation"] for _, r in snapshot if r.get("operation")})
        return {"records": found, "cursor": last, "operations": operations}
