"""Fire drills: drive a running local stack until an alarm fires, then let it recover.

    python -m local drill --list
    python -m local drill NAME [--port 8080]

Each drill sends real traffic (WebSocket clients speaking the protocol) and injects a real
fault (``/_local/faults``) until its alarm reaches ALARM, then removes the fault, stops the
traffic and waits for OK, printing every alarm transition on the way. It exits 0 only if
both happened. Start the stack with ``--alarm-time-scale 60`` so a drill takes about a
minute (at scale 1 a 5-minute alarm takes minutes to move).

Clients connect from distinct loopback addresses (127.x.y.z, a fresh block per run), as
distinct users: the per-IP and per-user rate limits of the stack stay in force and are not
what the drill measures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from collections.abc import Sequence
from typing import Any

from client.connection import ClientError
from local.drills.base import ALARM, OK, POLL_S, Drill, DrillFailed, DrillRun, Stack, say
from local.drills.scenarios import DRILLS

__all__ = ["DRILLS", "DrillFailed", "find_alarm", "main", "run_drill", "runbook_link"]


# --- running one ---------------------------------------------------------------------------------


def runbook_link(alarm: dict[str, Any], stack: Stack) -> str:
    """The alarm's runbook address; the default (a path in the repository) with the copy the
    running stack serves."""
    address = str(alarm.get("runbook") or "")
    if address.startswith(("http://", "https://")) or "#" not in address:
        return address
    return f"{address}  ({stack.base}/_local/runbooks#{address.split('#', 1)[1]})"


def find_alarm(alarms: Sequence[dict[str, Any]], drill: Drill) -> dict[str, Any]:
    for slug in drill.targets:
        for alarm in alarms:
            if alarm["slug"] == slug or alarm["name"].endswith(f"-{slug}"):
                return alarm
    raise DrillFailed(f"the stack has no alarm {' or '.join(drill.targets)}")


class Watcher:
    """Polls ``/_local/alarms`` and prints every new transition (the drill's alarm marked)."""

    def __init__(self, stack: Stack, target: str) -> None:
        self.stack = stack
        self.target = target
        self.seen: set[tuple[str, str, str]] = set()
        self.state = ""
        self.changed = asyncio.Event()

    async def prime(self) -> None:
        for alarm in await self.stack.acall("GET", "/_local/alarms"):
            for t in alarm["transitions"]:
                self.seen.add((t["name"], t["at"], t["to"]))
            if alarm["name"] == self.target:
                self.state = alarm["state"]

    async def run(self) -> None:
        while True:
            await self.poll()
            await asyncio.sleep(POLL_S)

    async def poll(self) -> None:
        alarms = await self.stack.acall("GET", "/_local/alarms")
        for alarm in alarms:
            for t in alarm["transitions"]:
                key = (t["name"], t["at"], t["to"])
                if key in self.seen:
                    continue
                self.seen.add(key)
                mark = "*" if t["name"] == self.target else " "
                say(f"{mark} {t['name']}: {t['from']} -> {t['to']}  ({t['reason']})")
            if alarm["name"] == self.target and alarm["state"] != self.state:
                self.state = alarm["state"]
                self.changed.set()

    async def until(self, state: str, timeout_s: float) -> float | None:
        """Seconds until the target alarm is in ``state``, or None after ``timeout_s``."""
        began = time.monotonic()
        deadline = began + timeout_s
        while self.state != state:
            self.changed.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), left)
        return time.monotonic() - began


async def run_drill(name: str, port: int, host: str = "127.0.0.1") -> int:
    drill = DRILLS[name]
    stack = Stack(port, host)
    info = await stack.acall("GET", "/_local/info")
    alarm = find_alarm(await stack.acall("GET", "/_local/alarms"), drill)
    period = float(alarm["periodRealSeconds"])
    periods = int(alarm["evaluationPeriods"])
    say(
        f"drill {name}: {drill.summary}\n"
        f"  alarm {alarm['name']}: {alarm['statistic']} of {alarm['metricName']} "
        f"{alarm['comparison']} {alarm['threshold']:g} ({alarm['thresholdSetting']}), "
        f"{alarm['datapointsToAlarm']} of {periods} periods of {alarm['period']} s "
        f"(= {period:g} s at time ×{info.get('alarmTimeScale', 1):g})"
    )
    say(f"  runbook: {runbook_link(alarm, stack)}")
    if period > 60:
        say("  note: periods this long make a slow drill; start the stack with "
            "--alarm-time-scale 60")  # fmt: skip
    await stack.acall("DELETE", "/_local/faults")
    watcher = Watcher(stack, alarm["name"])
    await watcher.prime()
    if watcher.state == ALARM:
        say(f"  waiting for {alarm['name']} to leave ALARM first")
    watching = asyncio.create_task(watcher.run())
    run = DrillRun(stack, info, alarm)
    fire_budget = 45.0 + period * (periods + 2)
    clear_budget = 20.0 + period * (periods + 2)
    to_alarm = to_ok = None
    try:
        if await watcher.until(OK, clear_budget) is None:
            raise DrillFailed(f"{alarm['name']} is {watcher.state}, not OK: nothing to drill")
        pressure = asyncio.create_task(drill.pressure(run))
        fired = asyncio.create_task(watcher.until(ALARM, fire_budget))
        await asyncio.wait({pressure, fired}, return_when=asyncio.FIRST_COMPLETED)
        if pressure.done() and pressure.exception() is not None:
            fired.cancel()
            raise pressure.exception()  # type: ignore[misc]
        to_alarm = await fired
        pressure.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await pressure
        say("recovering: faults cleared, traffic stopped")
        await stack.acall("DELETE", "/_local/faults")
        await run.close_all()
        if to_alarm is not None:
            to_ok = await watcher.until(OK, clear_budget)
    except ClientError as error:
        raise DrillFailed(str(error)) from None
    finally:
        watching.cancel()
        await stack.acall("DELETE", "/_local/faults")
        await run.close_all()
    replies = ", ".join(f"{k} {v}" for k, v in sorted(run.replies.items())) or "none"
    say(f"replies seen: {replies}")
    fired_text = f"ALARM after {to_alarm:.1f}s" if to_alarm is not None else "never reached ALARM"
    ok_text = f"OK {to_ok:.1f}s after recovery began" if to_ok is not None else "never back to OK"
    passed = to_alarm is not None and to_ok is not None
    say(f"drill {name}: {'PASSED' if passed else 'FAILED'}: {fired_text}; {ok_text}")
    return 0 if passed else 1


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m local drill",
        description="Drive a running local stack until an alarm fires and clears "
        "(start it with --alarm-time-scale 60 for minute-long drills).",
    )
    parser.add_argument("name", nargs="?", choices=sorted(DRILLS), help="the drill to run")
    parser.add_argument("--list", action="store_true", help="list the drills")
    parser.add_argument("--port", type=int, default=8080, help="port of the running local stack")
    args = parser.parse_args(argv)
    if args.list or not args.name:
        for drill in DRILLS.values():
            print(f"{drill.name:<16} {drill.summary}")
        return 0 if args.list else 2
    try:
        return asyncio.run(run_drill(args.name, args.port))
    except DrillFailed as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
