"""The rehearsal of a live event (``python -m local rehearse``) as a section of ``make bench``.

Starts its own local stack with the committed dev settings and ``--alarm-time-scale 60``
(connections age 60 times faster, so the refresh due at 100 minutes comes after 100 s),
plays the event through it (``client.rehearsal``: one speaker, 300 listeners from
127.0.0.1 joining within a minute, heartbeats, everyone refreshing, the speaker leaving),
stops the stack and reports the rehearsal's numbers as rows.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from bench.report import Section, fmt_ms
from client.rehearsal import Plan, Rehearsal
from client.rehearsal_report import Outcome, peak_per_second, percentile

TIME_SCALE = 60
READY_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 60.0


def run_rehearsal(listeners: int = 300) -> tuple[Outcome, list[str]]:
    """The rehearsal's outcome against a stack of its own, and notes on the stack."""
    from local.process import StackFailed, StackProcess

    notes: list[str] = []
    logs = Path(tempfile.mkdtemp(prefix="bench-rehearsal-"))
    stack = StackProcess(
        ["--stack", "dev", "--quiet", "--alarm-time-scale", str(TIME_SCALE)], logs, "rehearsal"
    )
    stack.start(timeout_s=READY_TIMEOUT_S)
    try:
        rehearsal = Rehearsal(Plan(port=stack.port, listeners=listeners), stack.info)
        outcome = asyncio.run(rehearsal.run())
    finally:
        try:
            code = stack.stop(timeout_s=STOP_TIMEOUT_S)
        except StackFailed as error:
            notes.append(f"the rehearsal's stack had to be killed: {error}")
        else:
            if code != 0:
                notes.append(f"the rehearsal's stack exited with {code}")
    notes.append(f"rehearsal stack logs kept in {logs}")
    return outcome, notes


def rehearsal_section(outcome: Outcome, notes: list[str]) -> Section:
    o = outcome
    section = Section(
        f"Rehearsal of an event through the local stack (1 speaker + {o.listeners} listeners "
        f"from 127.0.0.1, committed dev settings, time ×{TIME_SCALE})"
    )
    section.add(
        "listeners joined within the minute / refused",
        f"{o.joined} / {len(o.refused)}",
        f"all {o.listeners}, 0 refused",
        "OK" if o.joined == o.listeners and not o.refused else "FAIL",
    )
    section.add(
        "join p50 / p95 (client-side: handshake + joinSession)",
        f"{fmt_ms(percentile(o.join_ms, 50) / 1000)} / {fmt_ms(percentile(o.join_ms, 95) / 1000)}",
        "through the local stack on this machine",
    )
    pushes = o.refresh_pushes
    spread = pushes[-1] - pushes[0] if len(pushes) > 1 else 0.0
    section.add(
        "refresh pushes: listeners told / spread / peak",
        f"{len(pushes)} / {spread:.1f} s / {peak_per_second(pushes)}/s",
        f"due at {o.refresh_window_s[0]:.0f}-{o.refresh_window_s[1]:.0f} s of age (100 min "
        f"+ [0, 15) min at ×{TIME_SCALE}), plus the wait for the next heartbeat",
        "OK" if len(pushes) == o.listeners else "FAIL",
    )
    section.add(
        "refreshed (listeners + speaker)",
        f"{o.refreshed} + {1 if o.speaker_refreshed else 0}",
        f"{o.listeners} + 1",
        "OK" if o.refreshed == o.listeners and o.speaker_refreshed else "FAIL",
    )
    section.add(
        "peak new connections per second",
        f"{peak_per_second(o.connects)}/s",
        f"{len(o.connects)} connections in all; API Gateway's account quota is 500/s",
    )
    section.add(
        "alarms fired",
        "none" if not o.alarms else f"{len(o.alarms)}",
        "none expected",
        "OK" if not o.alarms else "FAIL",
    )
    section.add(
        "listeners told sessionEnded when the speaker left",
        f"{o.ended} of {o.listeners}",
        "all",
        "OK" if o.ended == o.listeners else "FAIL",
    )
    section.notes += notes + [f"alarm: {a}" for a in o.alarms]
    return section


def measured_section(listeners: int = 300) -> Section:
    outcome, notes = run_rehearsal(listeners)
    return rehearsal_section(outcome, notes)
