"""Human-readable lines for the developer, on stderr only.

stdout belongs to the functions' JSON log lines (what CloudWatch would receive), so nothing
here ever writes to it. Plain ``print`` under a lock: the runtime owns loguru's configuration.

Every line passes through ``runtime.terminal.printable``: a line may carry what a request,
a client, a token or a config file said (a path, a close reason, a value), and a control
character in it (ESC, BEL, CR, C1 CSI …) must not reach the terminal raw. Nothing here uses
control characters on purpose, so escaping whole lines costs nothing.

Whoever reads stderr may be gone (``make dev 2>&1 | tee`` whose tee was stopped, a closed
terminal): a line that cannot be written is dropped, and the descriptor is pointed at
``/dev/null`` so that shutting down never fails on it (``discard_if_broken``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from typing import TextIO

from runtime.terminal import printable

_lock = threading.Lock()


def say(message: str) -> None:
    """One timestamped line on stderr."""
    stamp = time.strftime("%H:%M:%S")
    _write(f"{stamp} {printable(message)}\n")


def block(lines: list[str]) -> None:
    """Several untimestamped lines on stderr (the startup banner), written at once."""
    _write("\n".join(printable(line) for line in lines) + "\n")


def _write(text: str) -> None:
    with _lock:
        try:
            sys.stderr.write(text)
            sys.stderr.flush()
        except (OSError, ValueError):
            discard_if_broken(sys.stderr)


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


def discard_if_broken(stream: TextIO) -> None:
    """Point ``stream``'s descriptor at /dev/null (its reader is gone), so later writes and
    the flush at exit succeed; what could not be written is lost, as it would be anyway."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        fd = stream.fileno()
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(null, fd)
        finally:
            os.close(null)
        with contextlib.suppress(OSError, ValueError):
            stream.flush()


def settle_stdout() -> None:
    """Flush stdout before exit; if its reader is gone, drop what is left (no exit code 120,
    no 'Exception ignored' message)."""
    try:
        sys.stdout.flush()
    except (OSError, ValueError):
        discard_if_broken(sys.stdout)
