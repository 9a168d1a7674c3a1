"""``python -m local rehearse`` through a real local stack (issue 18).

At ``--alarm-time-scale 600`` connections age 600 times faster, so the refresh due at 100
minutes (+ up to 15 of spread) comes after 10-11.5 s: a small event plays in about a minute.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from client.rehearsal import Plan, Rehearsal
from client.rehearsal_report import render
from tests.local.local_support import launch

ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    # The committed dev settings; only the clock is faster.
    yield from launch(
        tmp_path_factory.mktemp("rehearsal"), "rehearsal", "--quiet", "--alarm-time-scale", "600"
    )


def test_a_small_event_plays_through_refresh_and_ends_for_everyone(stack):
    rehearsal = Rehearsal(Plan(port=stack.port, listeners=20, join_window_s=10), stack.info)
    assert rehearsal.refresh_window_s == (10.0, 11.5)
    outcome = asyncio.run(asyncio.wait_for(rehearsal.run(), 300))
    report = render(outcome, stack.info, stack.port)
    assert outcome.refused == [], report
    assert outcome.joined == 20 and len(outcome.refresh_pushes) == 20, report
    assert outcome.refreshed == 20 and outcome.speaker_refreshed, report
    assert outcome.ended == 20, report
    assert outcome.alarms == [], report
    assert outcome.passed and report.endswith(tuple(f"({n} s)" for n in range(1000)))
    # Each listener connected twice (join, refresh), the speaker twice.
    assert len(outcome.connects) == 2 * 20 + 2


def test_the_command_prints_the_rehearsal_and_exits_0(stack):
    done = subprocess.run(
        [sys.executable, "-m", "local", "rehearse", "--port", str(stack.port),
         "--listeners", "5", "--join-window", "4"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "joined          5 of 5" in done.stdout
    assert "alarms fired    none" in done.stdout
    assert "sessionEnded    5 of 5" in done.stdout
    assert done.stdout.rstrip().splitlines()[-1].startswith("result: PASS")
