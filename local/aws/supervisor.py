"""Supervision of the embedded AWS process: death, restart, hang.

Every ``interval_s`` the supervisor looks at the moto process. If it has exited, stderr says
so (exit code or signal), and it is started again on the same port (the functions' endpoint)
and ``recreate`` makes its tables and topic anew, saying that everything it held is gone; if
that fails, ``on_fatal`` stops the stack with a non-zero exit. If it is alive but does not
answer a health request within ``probe_timeout_s`` (stopped with SIGSTOP, or stuck), stderr
says so once, and ``problem`` tells the gateway to refuse handshakes with 503 at once
instead of keeping clients waiting for a ``$connect`` that cannot succeed; when it answers
again, stderr says that too. (Requests already in a function get their 503 from the
runtime's time budget, ``runtime.budget``.)
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable

from local.aws.embedded import EmbeddedAws
from local.common import console
from local.common.background import cancel_and_wait

INTERVAL_S = 0.5
PROBE_TIMEOUT_S = 1.0


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
    ) -> None:
        self.aws = aws
        self.recreate = recreate
        self.on_fatal = on_fatal
        self.interval_s = interval_s
        self.probe_timeout_s = probe_timeout_s
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

    def _note_health(self, answered: bool) -> None:
        now = time.monotonic()
        if not answered and self.state == "up":
            self.state = "not answering"
            self._silent_since = now
            console.say(
                f"! embedded AWS (pid {self.aws.pid}) is not answering (stopped or stuck?): "
                "requests get SERVICE_UNAVAILABLE and handshakes HTTP 503 until it does"
            )
        elif answered and self.state == "not answering":
            silent = now - (self._silent_since or now)
            self.state = "up"
            self._silent_since = None
            console.say(f"embedded AWS answers again (after {silent:.1f}s without an answer)")

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
        self.state = "up"
        console.say(
            f"embedded AWS restarted (pid {self.aws.pid}) with empty tables; open WebSocket "
            "connections stay open, but their records and every session are gone"
        )
