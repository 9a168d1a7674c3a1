"""The refresh wave of a large event: peak new connections per second, with and without the
refresh spread, against API Gateway's account quota of 500 new connections per second.

A model, not a measurement: every listener opens a new connection when it is told
``connectionRefreshRequired``, which the heartbeat that finds the refresh due pushes. So a
listener's refresh lands at its connect time + ``connectionRefreshMinutes`` + its own offset
(``runtime.handlers.heartbeat.refresh_offset_ms``, uniform over the spread) + the wait for
its next heartbeat. The offsets here are the service's own function over generated
connection IDs (with a fixed hash key), so the model spreads exactly as the service does.

Two ways an audience comes to share its connection age:
- *arrival*: 5,000 listeners join within a minute (the keynote starts), each heartbeating
  on its own phase;
- *blip*: the venue's Wi-Fi drops and 5,000 phones reconnect within 10 s (at the quota),
  heartbeating in step from then on (each every 30 s from its reconnect).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import random
from collections import Counter
from dataclasses import dataclass

from bench.report import Section

LISTENERS = 5000
HEARTBEAT_S = 30
QUOTA_PER_S = 500  # API Gateway: new WebSocket connections per second, per account and region
REFRESH_MINUTES = 100
SPREAD_MINUTES = 15


@dataclass(frozen=True)
class Scenario:
    name: str
    window_s: float  # the connects that gave the audience its common age
    heartbeats_in_step: bool


SCENARIOS = (
    Scenario("5,000 join within 60 s (keynote starts)", 60.0, heartbeats_in_step=False),
    Scenario("5,000 reconnect within 10 s (Wi-Fi blip)", 10.0, heartbeats_in_step=True),
)


def refresh_times(
    scenario: Scenario, spread_minutes: int, listeners: int = LISTENERS, seed: int = 18
) -> list[float]:
    """Each listener's refresh (new connection), seconds after the first connect."""
    from runtime.handlers.heartbeat import refresh_due_ms

    rng = random.Random(seed)
    times = []
    for i in range(listeners):
        connected = rng.uniform(0, scenario.window_s)
        due = (
            refresh_due_ms(f"Model{i:08d}=", REFRESH_MINUTES, spread_minutes, hash_hex=_hash) / 1000
        )
        # The heartbeat that finds it due: the first beat at or after `due` of age.
        phase = 0.0 if scenario.heartbeats_in_step else rng.uniform(0, HEARTBEAT_S)
        beats = math.ceil(max(0.0, due - phase) / HEARTBEAT_S)
        times.append(connected + phase + beats * HEARTBEAT_S)
    return times


def _hash(value: str) -> str:
    """The service's keyed hash (HMAC-SHA256, truncated), under a model key."""
    return hmac.new(b"refresh-model-key", value.encode(), hashlib.sha256).hexdigest()[:16]


def peak_per_second(times: list[float]) -> int:
    return max(Counter(int(t) for t in times).values())


def refresh_section() -> Section:
    section = Section(
        f"Refresh wave of a {LISTENERS:,}-listener event: peak new connections per second "
        f"(model; quota {QUOTA_PER_S}/s per account)"
    )
    for scenario in SCENARIOS:
        rng = random.Random(1)
        joins = peak_per_second([rng.uniform(0, scenario.window_s) for _ in range(LISTENERS)])
        without = peak_per_second(refresh_times(scenario, 0))
        spread = refresh_times(scenario, SPREAD_MINUTES)
        with_spread = peak_per_second(spread)
        over = " — over the quota" if without >= QUOTA_PER_S else ""
        section.add(
            f"{scenario.name}: refresh at {REFRESH_MINUTES} min, no spread (before)",
            f"{without:,}/s",
            f"quota {QUOTA_PER_S}/s{over}; the joins themselves peaked at {joins:,}/s",
        )
        section.add(
            f"{scenario.name}: refresh at {REFRESH_MINUTES} min + offset in "
            f"[0, {SPREAD_MINUTES}) min",
            f"{with_spread:,}/s",
            f"quota {QUOTA_PER_S}/s; over {max(spread) - min(spread):,.0f} s",
            "OK" if with_spread < QUOTA_PER_S else "OVER",
        )
    section.notes.append(
        "refresh wave model (bench/refresh_model.py): each listener reconnects when the "
        f"heartbeat (every {HEARTBEAT_S} s) that finds connectionRefreshMinutes + its own "
        "offset passed pushes connectionRefreshRequired; offsets are the service's own "
        "keyed hash of generated connection IDs"
    )
    return section


if __name__ == "__main__":
    from bench.report import render_table

    print(render_table([refresh_section()]))
