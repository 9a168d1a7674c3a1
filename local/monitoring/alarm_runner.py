"""Runs the alarm evaluator on the local stack's event loop and acts on its transitions.

Every ``tick`` the evaluator recomputes the alarms from the metric store (in memory, cheap);
each transition is announced on stderr at once and published to the SNS alarm topic by one
worker thread, so notifications leave in the order the transitions happened. The first
evaluation's INSUFFICIENT_DATA -> OK transitions share one summary line on stderr.

The runner starts evaluating only once ``after`` is set: the stack sets it when its start-up
banner is out, so the user always reads the banner first, however slow the start-up was
(the first tick used to count from the runner's start, and a start-up slower than a tick
printed the alarms' summary line above the banner).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from local.common import console
from local.common.background import cancel_and_wait
from local.monitoring.alarm_evaluator import AlarmEvaluator, Transition
from local.monitoring.alarm_notifier import AlarmNotifier, is_settling, settled_line


class AlarmRunner:
    def __init__(
        self,
        evaluator: AlarmEvaluator,
        notifier: AlarmNotifier,
        alarms_url: str,
        after: asyncio.Event | None = None,
        mirror: Callable[[Transition], None] | None = None,
    ) -> None:
        self.evaluator = evaluator
        self.notifier = notifier
        self.alarms_url = alarms_url
        self.after = after  # set when the runner may start (None: at once)
        # Told each transition before it is published (the embedded CloudWatch alarm's state).
        self.mirror = mirror
        self._evaluated = False
        self._publisher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="alarm-sns")
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._publisher.shutdown, True)

    def evaluate_now(self) -> None:
        loop = asyncio.get_running_loop()
        transitions = self.evaluator.evaluate()
        first, self._evaluated = not self._evaluated, True
        if first:
            states = [alarm["state"] for alarm in self.evaluator.states()]
            console.say(settled_line(states, self.alarms_url))
        for transition in transitions:
            if not (first and is_settling(transition)):
                self.notifier.announce(transition)
            loop.run_in_executor(self._publisher, self._deliver, transition)

    def _deliver(self, transition: Transition) -> None:
        """On the publishing thread, in transition order: the alarm's state, then SNS."""
        if self.mirror is not None:
            self.mirror(transition)
        self.notifier.publish(transition)

    async def _loop(self) -> None:
        if self.after is not None:
            await self.after.wait()  # the start-up banner is out: nothing is printed above it
        tick = self.evaluator.tick_s()
        while True:
            await asyncio.sleep(tick)
            try:
                self.evaluate_now()
            except Exception as error:  # a bug here must not stop the stack
                console.say(f"! alarm evaluation failed: {error!r}")
