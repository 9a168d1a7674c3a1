"""The functions' wall clock, read in one place so a test can hold it still.

Per-minute windows (rate limits, the failed-lookup budget, heartbeat counts), timestamps,
``lastSeenAt`` and the sweeper's cut-offs all read ``now()``. Tests that count against a
per-minute window freeze it (``tests/support/clock.py``), so a window cannot roll over in the
middle of a test, whatever second of the minute it starts at and however slow the machine is.
"""

from __future__ import annotations

import time


def now() -> float:
    """Seconds since the epoch."""
    return time.time()


def now_ms() -> int:
    """Milliseconds since the epoch."""
    return int(now() * 1000)
