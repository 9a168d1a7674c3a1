"""Human-readable lines for the developer, on stderr only.

stdout belongs to the functions' JSON log lines (what CloudWatch would receive), so nothing
here ever writes to it. Plain ``print`` under a lock: the runtime owns loguru's configuration.
"""

from __future__ import annotations

import sys
import threading
import time

_lock = threading.Lock()


def say(message: str) -> None:
    """One timestamped line on stderr."""
    stamp = time.strftime("%H:%M:%S")
    with _lock:
        sys.stderr.write(f"{stamp} {message}\n")
        sys.stderr.flush()


def block(lines: list[str]) -> None:
    """Several untimestamped lines on stderr (the startup banner), written at once."""
    with _lock:
        sys.stderr.write("\n".join(lines) + "\n")
        sys.stderr.flush()
