"""What CloudWatch Logs receives: the functions' stdout, line by line, for local consumers.

The functions write one JSON object per line to ``sys.stdout`` (``runtime.observability``
looks it up per write). ``StdoutTap`` stands in for it: every write still reaches the real
stdout unchanged, and each complete line is also handed to the subscribers (the web
console's log ring, for instance). A subscriber that fails is reported once on stderr and
never breaks the function that logged.
"""

from __future__ import annotations

import io
import sys
import threading
from collections.abc import Callable
from typing import TextIO

from local.common import console

LineSubscriber = Callable[[str], None]


class StdoutTap(io.TextIOBase):
    """A text stream that writes through to ``target`` and publishes complete lines."""

    def __init__(self, target: TextIO) -> None:
        super().__init__()
        self.target = target
        self._subscribers: list[LineSubscriber] = []
        self._failed: set[int] = set()
        self._partial: dict[int, str] = {}  # per writing thread: text after its last newline
        self._lock = threading.Lock()

    def subscribe(self, subscriber: LineSubscriber) -> None:
        with self._lock:
            self._subscribers.append(subscriber)

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        try:
            written = self.target.write(text)
        except (OSError, ValueError):  # the reader of stdout is gone (| jq stopped first)
            console.discard_if_broken(self.target)
            written = len(text)
        thread = threading.get_ident()
        with self._lock:
            pending = self._partial.pop(thread, "") + text
            *lines, rest = pending.split("\n")
            if rest:
                self._partial[thread] = rest
            subscribers = list(self._subscribers)
        for line in lines:
            if line:
                self._publish(subscribers, line)
        return written

    def flush(self) -> None:
        try:
            self.target.flush()
        except (OSError, ValueError):
            console.discard_if_broken(self.target)

    def fileno(self) -> int:
        return self.target.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.target, "encoding", "utf-8")

    def _publish(self, subscribers: list[LineSubscriber], line: str) -> None:
        for subscriber in subscribers:
            try:
                subscriber(line)
            except Exception as error:  # a consumer's bug must not break a function's logging
                key = id(subscriber)
                if key not in self._failed:
                    self._failed.add(key)
                    console.say(f"! log consumer {subscriber!r} failed: {error!r}")


def install() -> StdoutTap:
    """Put a tap in front of ``sys.stdout`` (once per process) and return it."""
    current = sys.stdout
    if isinstance(current, StdoutTap):
        return current
    tap = StdoutTap(current)
    sys.stdout = tap
    return tap


def uninstall(tap: StdoutTap) -> None:
    """Give ``sys.stdout`` back its own stream if ``tap`` is still in place."""
    if sys.stdout is tap:
        sys.stdout = tap.target
