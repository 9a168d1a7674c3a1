"""What a rehearsal (``client.rehearsal``) measured, whether it passed, and how it reads."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from client.local_stack import fetch_alarms

ALARM = "ALARM"


@dataclass
class Outcome:
    listeners: int
    refresh_window_s: tuple[float, float]
    started_at: float = 0.0
    finished_at: float = 0.0
    joins_took_s: float = 0.0
    join_ms: list[float] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    heartbeats: int = 0
    retries: int = 0  # transient failures (503, timeouts) tried again, as clients do
    heartbeat_errors: list[str] = field(default_factory=list)
    connects: list[float] = field(default_factory=list)  # epoch s of each new connection
    refresh_pushes: list[float] = field(default_factory=list)  # epoch s, listeners
    refreshed: int = 0
    speaker_refreshed: bool = False
    ended: int = 0
    alarms: list[str] = field(default_factory=list)

    def new_connection(self, at: float) -> None:
        self.connects.append(at)

    @property
    def joined(self) -> int:
        return len(self.join_ms)

    @property
    def passed(self) -> bool:
        return (
            not self.refused
            and not self.alarms
            and self.joined == self.listeners
            and self.refreshed == self.listeners
            and self.speaker_refreshed
            and self.ended == self.listeners
        )


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def peak_per_second(times: list[float]) -> int:
    return max(Counter(int(t) for t in times).values(), default=0)


def alarms_now(port: int) -> list[dict[str, Any]]:
    return fetch_alarms(port)


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def fired_since(
    before: list[dict[str, Any]], after: list[dict[str, Any]], since: float
) -> list[str]:
    """Every alarm that was in ALARM at the start, went to ALARM since ``since``, or is in
    ALARM now: "name (how)"."""
    fired: dict[str, str] = {}
    for alarm in before:
        if alarm.get("state") == ALARM:
            fired[alarm["name"]] = "already in ALARM when the rehearsal began"
    for alarm in after:
        for transition in alarm.get("transitions") or []:
            if transition.get("to") == ALARM and _epoch(transition["at"]) >= since:
                how = f"ALARM at {transition['at']}: {transition.get('reason', '')}"
                fired.setdefault(alarm["name"], how)
        if alarm.get("state") == ALARM:
            fired.setdefault(alarm["name"], f"in ALARM: {alarm.get('reason', '')}")
    return [f"{name} ({how})" for name, how in sorted(fired.items())]


def render(outcome: Outcome, info: dict[str, Any], port: int) -> str:
    o = outcome
    first, last = o.refresh_window_s
    pushes = o.refresh_pushes
    spread = f"{pushes[-1] - pushes[0]:.1f} s" if len(pushes) > 1 else "—"
    joins = [t for t in o.connects if t <= o.started_at + o.joins_took_s + 1]
    refreshes = [t for t in o.connects if t > o.started_at + o.joins_took_s + 1]
    codes = Counter(o.heartbeat_errors)
    lines = [
        f"rehearsal: 1 speaker + {o.listeners} listeners, all from 127.0.0.1, stack "
        f"'{info.get('stack')}' on :{port} (time ×{info.get('alarmTimeScale', 1):g}: refresh "
        f"due at {first:.0f}-{last:.0f} s of connection age)",
        f"  joined          {o.joined} of {o.listeners} in {o.joins_took_s:.1f} s, "
        f"refused {len(o.refused)}, transient failures tried again {o.retries}",
        f"  join latency    p50 {percentile(o.join_ms, 50):.0f} ms · "
        f"p95 {percentile(o.join_ms, 95):.0f} ms (client-side: handshake + join)",
        f"  heartbeats      {o.heartbeats} acknowledged"
        + (f", errors {dict(codes)}" if codes else ", no errors"),
        f"  refresh pushes  {len(pushes)} of {o.listeners} listeners, spread over {spread} "
        f"(peak {peak_per_second(pushes)}/s); refreshed {o.refreshed} of {o.listeners}, "
        f"speaker {'refreshed' if o.speaker_refreshed else 'NOT refreshed'}",
        f"  new connections peak {peak_per_second(o.connects)}/s overall: joining "
        f"{peak_per_second(joins)}/s, refreshing {peak_per_second(refreshes)}/s "
        f"({len(o.connects)} in all)",
        "  alarms fired    " + ("none" if not o.alarms else "; ".join(o.alarms)),
        f"  sessionEnded    {o.ended} of {o.listeners} listeners after the speaker left",
    ]
    for reason, n in Counter(o.refused).most_common(5):
        lines.append(f"  refused         {n}× {reason}")
    took = o.finished_at - o.started_at
    lines.append(f"result: {'PASS' if o.passed else 'FAIL'} ({took:.0f} s)")
    return "\n".join(lines)
