"""Human-readable lines for the developer, on stderr only.

stdout belongs to the functions' JSON log lines (what CloudWatch would receive), so nothing
here ever writes to it. Plain ``print`` under a lock: the runtime owns loguru's configuration.

Every line passes through ``runtime.terminal.printable``: a line may carry what a request,
a client, a token or a config file said (a path, a close reason, a value), and a control
character in it (ESC, BEL, CR, C1 CSI …) must not reach the terminal raw. Nothing here uses
control characters on purpose, so escaping whole lines costs nothing.
"""

from __future__ import annotations

import logging
import sys
import threading
import time

from runtime.terminal import printable

_lock = threading.Lock()


def say(message: str) -> None:
    """One timestamped line on stderr."""
    stamp = time.strftime("%H:%M:%S")
    with _lock:
        sys.stderr.write(f"{stamp} {printable(message)}\n")
        sys.stderr.flush()


def block(lines: list[str]) -> None:
    """Several untimestamped lines on stderr (the startup banner), written at once."""
    with _lock:
        sys.stderr.write("\n".join(printable(line) for line in lines) + "\n")
        sys.stderr.flush()


class PrintableFormatter(logging.Formatter):
    """Library log records on stderr, escaped like every other line (a traceback becomes one
    line with ``\\n`` in it: never raw text from a request)."""

    def format(self, record: logging.LogRecord) -> str:
        return printable(super().format(record))


def log_to_stderr(level: int, fmt: str | None = None) -> None:
    """``logging.basicConfig`` on stderr with ``PrintableFormatter``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(PrintableFormatter(fmt))
    logging.basicConfig(level=level, handlers=[handler])
