"""``frozen_clock``: the functions' clock (``runtime.clock``) held still for one test.

A test that counts against a per-minute window (a rate limit, the failed-lookup budget,
heartbeats) must not see the window roll over halfway, which happened whenever it started
near the end of a minute or ran slowly. Holding the clock at the instant the test starts
keeps every window of the test the same one, wherever in the minute that is; ``advance``
moves it on explicitly.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from runtime import clock


@dataclass
class FrozenClock:
    now: float

    def now_ms(self) -> int:
        return int(self.now * 1000)

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[FrozenClock]:
    """``runtime.clock.now()`` returns the instant the test started until ``advance``."""
    frozen = FrozenClock(time.time())
    monkeypatch.setattr(clock, "now", lambda: frozen.now)
    yield frozen
