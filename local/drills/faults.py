"""Fault injection for the local stack: make the functions' AWS calls fail or slow down.

Faults are botocore ``before-send`` hooks on the runtime's own clients (``runtime.aws``), so
the handlers run unchanged and meet a failure exactly where a real one would reach them:

* ``error``: the call is answered with an HTTP error response (a DynamoDB 500
  ``InternalServerError`` by default), which botocore retries and then raises;
* ``slow``: the attempt takes ``delayMs`` longer; past the client's read timeout it fails
  with a ``ReadTimeoutError`` after that timeout, as a hung dependency does;
* ``crash``: the function dies during the call, as when Lambda's runtime exits (out of
  memory, a native crash): the handler gets no chance to answer and Lambda counts an Error.
  Only calls made on a function's own thread are affected.

The local stack's own calls (tables, TTL, metrics) are not affected. ``POST /_local/faults``
sets them (see ``parse_fault``); ``DELETE`` clears them, all or only an ``owner``'s.

A fault may carry a lease (``durationSeconds``): the stack removes it when the lease runs out
(``expire``, run every half second by the stack), unless its setter renews it first
(``renew``). The fire drills set their faults this way, under their own ``owner``, so a drill
that dies (even of SIGKILL) leaves nothing behind for long, and never removes a fault that a
developer set by hand.

A fault may be limited to some operations (``GetItem``…) and to some functions of the route
table (by name, ``join-session``): the invoker tells which function a worker thread runs.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import random
import threading
import time
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from botocore.awsrequest import AWSResponse
from botocore.exceptions import ReadTimeoutError

from local.common import console
from runtime.settings import did_you_mean

KINDS = ("error", "slow", "crash")
MAX_OWNER_CHARS = 100
SERVICES = ("dynamodb", "apigatewaymanagementapi", "cloudwatch")
MAX_DELAY_MS = 120_000
MAX_DURATION_S = 3600.0

_current = threading.local()


@contextlib.contextmanager
def running_function(name: str) -> Iterator[None]:
    """Mark the calling thread as running the route table's function ``name``."""
    previous = getattr(_current, "function", None)
    _current.function = name
    try:
        yield
    finally:
        _current.function = previous


@contextlib.contextmanager
def stack_call() -> Iterator[None]:
    """Mark the calling thread's AWS calls as the stack's own (the console reading the
    sessions): no fault reaches them, as none reaches the stack's tables, TTL or metrics."""
    previous = getattr(_current, "exempt", False)
    _current.exempt = True
    try:
        yield
    finally:
        _current.exempt = previous


def current_function() -> str | None:
    return getattr(_current, "function", None)


class FunctionCrash(BaseException):
    """The function's runtime died during a call (a BaseException: no handler catches it)."""


class FaultError(ValueError):
    """A fault request that cannot be applied (the message says why)."""


@dataclass
class Fault:
    id: int
    service: str
    kind: str
    operations: tuple[str, ...] = ()
    functions: tuple[str, ...] = ()
    delay_ms: int = 0
    status: int = 500
    error_code: str = "InternalServerError"
    probability: float = 1.0
    expires_at: float | None = None
    # Who set it (a drill names itself); DELETE ?owner= removes only theirs.
    owner: str | None = None
    hits: int = 0
    # Set when the fault is removed, so calls held by a ``slow`` fault go on at once.
    cleared: threading.Event = field(default_factory=threading.Event, repr=False)

    def matches(self, service: str, operation: str, function: str | None) -> bool:
        if service != self.service:
            return False
        if self.operations and operation not in self.operations:
            return False
        if self.functions and function not in self.functions:
            return False
        return self.probability >= 1.0 or random.random() < self.probability

    def describe(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "id": self.id,
            "service": self.service,
            "kind": self.kind,
            "operations": list(self.operations),
            "functions": list(self.functions),
            "probability": self.probability,
            "hits": self.hits,
        }
        if self.kind == "slow":
            doc["delayMs"] = self.delay_ms
        else:
            doc.update({"status": self.status, "errorCode": self.error_code})
        if self.expires_at is not None:
            doc["expiresInSeconds"] = round(max(0.0, self.expires_at - time.time()), 1)
        if self.owner is not None:
            doc["owner"] = self.owner
        return doc


def parse_fault(doc: Any, fault_id: int, function_names: Collection[str] = ()) -> Fault:
    """A fault from its JSON description, e.g.

    ``{"service": "dynamodb", "kind": "error"}``,
    ``{"service": "dynamodb", "kind": "slow", "delayMs": 1500, "functions": ["join-session"]}``;
    optional: ``operations``, ``status`` (500), ``errorCode``, ``probability`` (1),
    ``durationSeconds`` (until cleared), ``owner``. ``functions`` must name functions of
    ``function_names`` when it is given (the route table's).
    """
    if not isinstance(doc, Mapping):
        raise FaultError("a fault is a JSON object")
    known = {"service", "kind", "operations", "functions", "delayMs", "status", "errorCode",
             "probability", "durationSeconds", "owner"}  # fmt: skip
    unknown = sorted(set(doc) - known)
    if unknown:
        raise FaultError(
            f"unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    service, kind = doc.get("service"), doc.get("kind")
    if service not in SERVICES:
        raise FaultError(f"'service' must be one of {', '.join(SERVICES)}")
    if kind not in KINDS:
        raise FaultError(f"'kind' must be one of {', '.join(KINDS)}")
    fault = Fault(fault_id, service, kind)
    fault.operations = _names(doc, "operations")
    fault.functions = _names(doc, "functions")
    unknown_functions = [f for f in fault.functions if function_names and f not in function_names]
    if unknown_functions:
        raise FaultError(
            f"no function {', '.join(map(repr, unknown_functions))}"
            f"{did_you_mean(unknown_functions, function_names)}; the functions are: "
            f"{', '.join(function_names)}"
        )
    if kind == "slow":
        fault.delay_ms = _number(doc, "delayMs", 1, MAX_DELAY_MS, required=True)
    fault.status = _number(doc, "status", 400, 599, default=500)
    code = doc.get("errorCode", "InternalServerError")
    if not isinstance(code, str) or not code.isidentifier():
        raise FaultError("'errorCode' must be an identifier such as ServiceUnavailable")
    fault.error_code = code
    probability = doc.get("probability", 1.0)
    if not isinstance(probability, int | float) or not 0 < probability <= 1:
        raise FaultError("'probability' must be a number in (0, 1]")
    fault.probability = float(probability)
    if "durationSeconds" in doc:
        fault.expires_at = time.time() + lease_seconds(doc)
    owner = doc.get("owner")
    if owner is not None and (not isinstance(owner, str) or not 0 < len(owner) <= MAX_OWNER_CHARS):
        raise FaultError(f"'owner' must be a string of 1 to {MAX_OWNER_CHARS} characters")
    fault.owner = owner
    return fault


def lease_seconds(doc: Mapping[str, Any]) -> float:
    """A fault's (or a renewal's) ``durationSeconds``, checked."""
    return float(_number(doc, "durationSeconds", 0.1, MAX_DURATION_S, required=True))


def _names(doc: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = doc.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise FaultError(f"'{key}' must be a list of names")
    return tuple(value)


def _number(
    doc: Mapping[str, Any],
    key: str,
    low: float,
    high: float,
    *,
    required: bool = False,
    default: Any = None,
) -> Any:
    if key not in doc:
        if required:
            raise FaultError(f"'{key}' is required")
        return default
    value = doc[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise FaultError(f"'{key}' must be a number from {low:g} to {high:g}")
    return value


class FaultInjector:
    """The active faults, and the hook that applies them to a botocore client."""

    def __init__(self, function_names: Collection[str] = ()) -> None:
        self._faults: list[Fault] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        # A fault's ``functions`` must be among these (when given): a typo would never match.
        self.function_names = tuple(function_names)

    def install(self, client: Any) -> None:
        """Apply the faults to every request ``client`` sends from now on."""
        read_timeout = float(client.meta.config.read_timeout or 60)
        client.meta.events.register(
            "before-send", functools.partial(self._before_send, read_timeout_s=read_timeout)
        )

    def add(self, *docs: Any) -> list[Fault]:
        """Add the faults described by ``docs`` (all or none: FaultError names the bad one)."""
        faults = [parse_fault(doc, next(self._ids), self.function_names) for doc in docs]
        with self._lock:
            self._faults.extend(faults)
        for fault in faults:
            console.say(f"fault +   {json.dumps(fault.describe())}")
        return faults

    def clear(self) -> int:
        """Remove every fault; returns how many there were."""
        return len(self.remove())

    def remove(self, owner: str | None = None, fault_id: int | None = None) -> list[int]:
        """Remove every fault, or only ``owner``'s, or only fault ``fault_id``; returns the IDs
        removed (calls a ``slow`` one holds go on at once)."""
        with self._lock:
            gone = [
                f
                for f in self._faults
                if (owner is None or f.owner == owner) and (fault_id is None or f.id == fault_id)
            ]
            self._faults = [f for f in self._faults if f not in gone]
        for fault in gone:
            fault.cleared.set()
        if gone:
            whose = f" of {owner}" if owner is not None else ""
            ids = ", ".join(str(f.id) for f in gone)
            console.say(f"fault -   removed {len(gone)} fault(s){whose}: {ids}")
        return [f.id for f in gone]

    def renew(self, fault_id: int, duration_s: float) -> Fault | None:
        """Extend fault ``fault_id``'s lease to ``duration_s`` from now; None if it is gone."""
        with self._lock:
            for fault in self._faults:
                if fault.id == fault_id:
                    fault.expires_at = time.time() + duration_s
                    return fault
        return None

    def describe(self) -> list[dict[str, Any]]:
        self.expire()
        with self._lock:
            return [f.describe() for f in self._faults]

    def expire(self) -> list[int]:
        """Remove the faults whose lease has run out (the stack calls this every half second,
        so a lease is kept even when no call meets the fault); returns their IDs."""
        now = time.time()
        with self._lock:
            due = [f for f in self._faults if f.expires_at is not None and f.expires_at <= now]
            self._faults = [f for f in self._faults if f not in due]
        for fault in due:
            fault.cleared.set()
            whose = f" (set by {fault.owner})" if fault.owner else ""
            console.say(f"fault -   fault {fault.id}{whose} expired: its lease ran out")
        return [f.id for f in due]

    def _matching(self, service: str, operation: str) -> list[Fault]:
        if getattr(_current, "exempt", False):
            return []
        function = current_function()
        self.expire()
        with self._lock:
            found = [f for f in self._faults if f.matches(service, operation, function)]
            for fault in found:
                fault.hits += 1
            return found

    def _before_send(
        self, request: Any, event_name: str = "", read_timeout_s: float = 60.0, **_: Any
    ) -> AWSResponse | None:
        # event_name: before-send.<service>.<Operation>
        parts = event_name.split(".")
        if len(parts) < 3:
            return None
        service, operation = parts[1], parts[2]
        for fault in self._matching(service, operation):
            if fault.kind == "slow":
                delay_s = fault.delay_ms / 1000
                if fault.cleared.wait(min(delay_s, read_timeout_s)):
                    continue  # removed or expired meanwhile: the call goes on
                if delay_s > read_timeout_s:
                    raise ReadTimeoutError(endpoint_url=request.url)
            elif fault.kind == "crash":
                if current_function() is not None:
                    raise FunctionCrash(f"injected by the local stack (fault {fault.id})")
            else:
                return _error_response(request, fault)
        return None


class _Body:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body


def _error_response(request: Any, fault: Fault) -> AWSResponse:
    """An AWS JSON-protocol error response (botocore reads the code from the header)."""
    message = f"injected by the local stack (fault {fault.id})"
    body = json.dumps({"__type": fault.error_code, "message": message}).encode()
    headers = {
        "x-amzn-ErrorType": fault.error_code,
        "Content-Type": "application/x-amz-json-1.0",
        "Content-Length": str(len(body)),
    }
    return AWSResponse(request.url, fault.status, headers, _Body(body))
