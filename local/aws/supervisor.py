"""Supervision of the embedded AWS process: death, restart, hang.

Every ``interval_s`` the supervisor looks at the moto process. If it has exited, stderr says
so (exit code or signal), and it is started again on the same port (the functions' endpoint)
and ``recreate`` makes its tables and topic anew, saying that everything it held is gone; if
that fails, ``on_fatal`` stops the stack with a non-zero exit. If it is alive but does not
answer, stderr says so once, and ``problem`` tells the gateway to refuse handshakes with 503 at once
instead of keeping clients waiting for a ``$connect`` that cannot succeed; when it answers
again, stderr says that too. (Requests already in a function get their 503 from the
runtime's time budget, ``runtime.budget``.)

"Stuck" is told from "busy": a process the kernel reports stopped (SIGSTOP: state ``T`` in
``/proc/<pid>/stat``) is declared not answering at its first missed probe; a running one only
after ``stuck_after_s`` without an answer *and* ``stuck_probes`` missed probes in a row. On a
busy 2-core machine a health answer can take over a second (moto's server thread waits for
the CPU), and refusing every handshake with 503 for that would be the stack's own outage.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable
from pathlib import Path

from local.aws.embedded import EmbeddedAws
from local.common import console
from local.common.background import cancel_and_wait

INTERVAL_S = 0.5
PROBE_TIMEOUT_S = 1.0
# A running (not stopped) process is stuck after this long without an answer, and this many
# missed probes in a row.
STUCK_AFTER_S = 5.0
STUCK_PROBES = 3


def process_stopped(pid: int | None) -> bool:
    """True when the kernel reports ``pid`` stopped (SIGSTOP, or traced): state T or t."""
    if pid is None:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # The state follows the command name, which is in parentheses and may hold spaces.
    fields = stat.rsplit(")", 1)[-1].split()
    return bool(fields) and fields[0] in ("T", "t")


def describe_exit(code: int) -> str:
    """``-9`` → ``killed by SIGKILL``; ``1`` → ``exited with code 1``."""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"


class AwsSupervisor:
    """Watches the embedded AWS process: restarts it when it dies, notices when it hangs."""

    def __init__(
        self,
        aws: EmbeddedAws,
        recreate: Callable[[], None],
        on_fatal: Callable[[str], None],
        interval_s: float = INTERVAL_S,
        probe_timeout_s: float = PROBE_TIMEOUT_S,
        stuck_after_s: float = STUCK_AFTER_S,
        stuck_probes: int = STUCK_PROBES,
        stopped: Callable[[int | None], bool] = process_stopped,
    ) -> None:
        self.aws = aws
        self.recreate = recreate
        self.on_fatal = on_fatal
        self.interval_s = interval_s
        self.probe_timeout_s = probe_timeout_s
        self.stuck_after_s = stuck_after_s
        self.stuck_probes = stuck_probes
        self.stopped = stopped
        self.missed = 0  # probes missed in a row
        self.last_answer = time.monotonic()
        self.busy_misses = 0  # probes missed by a running process that was not declared stuck
        self.restarts = 0
        self.state = "up"  # up | not answering | restarting | failed
        self._silent_since: float | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def problem(self) -> str | None:
        """Why the embedded AWS cannot serve now (None while it can)."""
        if self.state == "up":
            return None
        return f"the embedded AWS is {self.state}"

    def start(self) -> None:
        self._task = asyncio.create_task(self._watch())

    async def stop(self) -> None:
        await cancel_and_wait(self._task)

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        while self.state != "failed":
            await asyncio.sleep(self.interval_s)
            code = self.aws.exit_code()
            if code is not None:
                await self._restart(code)
                continue
            answered = await loop.run_in_executor(None, self.aws.answers, self.probe_timeout_s)
            self._note_health(answered)

    def _note_health(self, answered: bool, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        if answered:
            self.missed = 0
            self.last_answer = now
        else:
            self.missed += 1
        if not answered and self.state == "up" and not self._stuck(now):
            self.busy_misses += 1
            return
        if not answered and self.state == "up":
            self.state = "not answering"
            self._silent_since = self.last_answer
            console.say(
                f"! embedded AWS (pid {self.aws.pid}) is not answering (stopped or stuck?): "
                "requests get SERVICE_UNAVAILABLE and handshakes HTTP 503 until it does"
            )
        elif answered and self.state == "not answering":
            silent = now - (self._silent_since or now)
            self.state = "up"
            self._silent_since = None
            console.say(f"embedded AWS answers again (after {silent:.1f}s without an answer)")

    def _stuck(self, now: float) -> bool:
        """Stopped by the kernel, or silent for long enough over enough probes."""
        if self.stopped(self.aws.pid):
            return True
        return self.missed >= self.stuck_probes and now - self.last_answer >= self.stuck_after_s

    async def _restart(self, code: int) -> None:
        loop = asyncio.get_running_loop()
        old_pid = self.aws.pid
        self.state = "restarting"
        console.say(
            f"! embedded AWS (moto, pid {old_pid}) {describe_exit(code)}: restarting it on "
            f"{self.aws.endpoint}; everything it held (sessions, connections, rate limits, "
            "metrics) is lost"
        )
        try:
            await loop.run_in_executor(None, self.aws.restart)
            await loop.run_in_executor(None, self.recreate)
        except Exception as error:  # any failure here leaves the stack without AWS
            self.state = "failed"
            self.on_fatal(f"could not restart the embedded AWS: {error}")
            return
        self.restarts += 1
        self.missed, self.last_answer = 0, time.monotonic()
        self.state = "up"
        console.say(
            f"embedded AWS restarted (pid {self.aws.pid}) with empty tables; open WebSocket "
            "connections stay open, but their records and every session are gone"
        )
