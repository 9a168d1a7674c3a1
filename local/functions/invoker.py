"""Runs the route table's handlers like Lambda does: off the event loop, with a context.

Each invocation runs on a bounded thread pool, so the event loop stays free to serve the
@connections API the handlers call back into. A handler that raises, times out or returns
something that is not a dict is reported on stderr and yields ``None``; the gateway then
behaves as API Gateway does for a failed integration, and keeps serving.
"""

from __future__ import annotations

import asyncio
import importlib
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from local.common import console
from local.drills.faults import FunctionCrash, running_function
from local.functions.events import LambdaContext, function_name, log_stream_name
from runtime.routes import Function

Handler = Callable[[dict[str, Any], Any], Any]
DEFAULT_WORKERS = 64


class Invoker(Protocol):
    """What the gateway and the scheduler need: run a function, get its result or None."""

    async def invoke(self, function: Function, event: dict[str, Any]) -> Any: ...


class LambdaInvoker:
    """Invokes the handlers named in the route table on a ThreadPoolExecutor."""

    def __init__(
        self,
        stage: str,
        region: str,
        workers: int = DEFAULT_WORKERS,
        resolve: Callable[[Function], Handler] | None = None,
        observe: Callable[[Function, float, bool], None] | None = None,
    ) -> None:
        self.stage = stage
        self.region = region
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lambda")
        self._resolve = resolve or resolve_handler
        # Told of every invocation: (function, duration in seconds, failed?), as Lambda's
        # Invocations / Errors / Duration metrics are.
        self.observe = observe
        # Told when an invocation's handler starts: (function, its invocations now running),
        # as Lambda's ConcurrentExecutions metric is.
        self.running: Callable[[Function, int], None] | None = None
        self._in_flight: dict[str, int] = {}
        self._streams: dict[str, str] = {}
        self._lock = threading.Lock()

    def _log_stream(self, function: Function) -> str:
        return self.log_stream_of(function.name)

    def log_stream_of(self, name: str) -> str:
        """The log stream the route table's function ``name`` writes to (one per function:
        all its invocations share this process, Lambda's one execution environment here)."""
        with self._lock:
            return self._streams.setdefault(name, log_stream_name())

    def _call(
        self,
        function: Function,
        event: dict[str, Any],
        started: asyncio.Future[None],
        loop: asyncio.AbstractEventLoop,
    ) -> Any:
        loop.call_soon_threadsafe(_resolve_future, started)
        handler = self._resolve(function)
        context = LambdaContext(function, self.stage, self.region, self._log_stream(function))
        with running_function(function.name):
            return handler(event, context)

    async def invoke(self, function: Function, event: dict[str, Any]) -> Any:
        """Run ``function`` on the pool; its return value, or None if it failed.

        Like Lambda's, the timeout counts from when the handler starts, not while the
        invocation waits for a free worker.
        """
        loop = asyncio.get_running_loop()
        started: asyncio.Future[None] = loop.create_future()
        began = time.monotonic()
        running = False
        try:
            future = loop.run_in_executor(self.executor, self._call, function, event, started, loop)
            await asyncio.wait({started, future}, return_when=asyncio.FIRST_COMPLETED)
            began = time.monotonic()
            if started.done() and not started.cancelled():
                running = True
                self._started(function)
            result = await asyncio.wait_for(asyncio.shield(future), timeout=function.timeout_s)
        except TimeoutError:
            self._observe(function, time.monotonic() - began, failed=True)
            console.say(
                f"! {function_name(self.stage, function)} timed out after {function.timeout_s}s "
                "(Lambda would have stopped it; its thread is left to finish)"
            )
        except FunctionCrash as crash:  # an injected runtime exit: no reply, one Error
            self._observe(function, time.monotonic() - began, failed=True)
            console.say(f"! {function_name(self.stage, function)} crashed: {crash}")
        except Exception as error:  # the handler's bug, reported like Lambda's Errors metric
            elapsed = time.monotonic() - began
            self._observe(function, elapsed, failed=True)
            console.say(
                f"! {function_name(self.stage, function)} raised {type(error).__name__}: "
                f"{error} after {elapsed:.2f}s"
            )
        else:
            self._observe(function, time.monotonic() - began, failed=False)
            return result
        finally:
            if not started.done():
                started.cancel()
            if running:  # a timed-out handler counts as ended, as Lambda stops it
                self._in_flight[function.name] -= 1
        return None

    def _started(self, function: Function) -> None:
        """Count one more running invocation (on the event loop: no lock needed)."""
        in_flight = self._in_flight.get(function.name, 0) + 1
        self._in_flight[function.name] = in_flight
        if self.running is not None:
            try:
                self.running(function, in_flight)
            except Exception as error:  # metrics must never fail an invocation
                console.say(f"! concurrency metrics failed: {error!r}")

    def _observe(self, function: Function, duration_s: float, failed: bool) -> None:
        if self.observe is not None:
            try:
                self.observe(function, duration_s, failed)
            except Exception as error:  # metrics must never fail an invocation
                console.say(f"! invocation metrics failed: {error!r}")

    def shutdown(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)


def _resolve_future(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


_handlers: dict[str, Handler] = {}
_handlers_lock = threading.Lock()


def resolve_handler(function: Function) -> Handler:
    """Import the handler at ``function.handler`` (``package.module.attribute``), once."""
    with _handlers_lock:
        handler = _handlers.get(function.handler)
        if handler is None:
            module_name, _, attribute = function.handler.rpartition(".")
            handler = getattr(importlib.import_module(module_name), attribute)
            _handlers[function.handler] = handler
        return handler


def missing_handlers(functions: tuple[Function, ...]) -> list[str]:
    """Handlers of the route table that cannot be imported (yet), with the reason."""
    missing = []
    for function in functions:
        try:
            resolve_handler(function)
        except Exception as error:
            missing.append(f"{function.handler} ({type(error).__name__}: {error})")
    return missing
