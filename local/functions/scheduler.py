"""The EventBridge rules of the route table and DynamoDB TTL, on a local timer.

Every ``interval_s`` (``rate(1 minute)`` → 60 s by default) each scheduled function gets an
EventBridge scheduled event, and expired items are deleted from the tables (moto keeps them
forever). Like EventBridge, the first run is one interval after start. A run that is still
going when the next is due is not started twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from local.common import console
from local.functions.events import ApiInfo, scheduled_event
from local.functions.invoker import Invoker
from runtime.routes import SCHEDULED, Function


class Scheduler:
    def __init__(
        self,
        api: ApiInfo,
        invoker: Invoker,
        interval_s: float,
        expire: Callable[[], int] | None = None,
        functions: Sequence[Function] = SCHEDULED,
    ) -> None:
        self.api = api
        self.invoker = invoker
        self.interval_s = interval_s
        self.expire = expire
        self.functions = tuple(functions)
        self._task: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()
        self.runs = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if self._running:
            await asyncio.wait(self._running, timeout=65)

    async def _loop(self) -> None:
        # Fixed rate, like EventBridge's rate(): ticks stay one interval apart however long
        # each run takes, so a gauge reported every tick lands once in every alarm period.
        loop = asyncio.get_running_loop()
        first = loop.time()
        ticks = 0
        while True:
            ticks += 1
            await asyncio.sleep(max(0.0, first + ticks * self.interval_s - loop.time()))
            if not self._running:
                task = asyncio.create_task(self.run_once())
                self._running.add(task)
                task.add_done_callback(self._running.discard)

    async def run_once(self) -> None:
        """One tick: every scheduled function (concurrently), then TTL expiry."""
        self.runs += 1
        await asyncio.gather(
            *(self.invoker.invoke(f, scheduled_event(self.api, f)) for f in self.functions)
        )
        if self.expire is not None:
            loop = asyncio.get_running_loop()
            try:
                deleted = await loop.run_in_executor(None, self.expire)
            except Exception as error:  # embedded AWS trouble must not stop the stack
                console.say(f"! TTL expiry pass failed: {error!r}")
            else:
                if deleted:
                    console.say(f"ttl        deleted {deleted} expired item(s)")
