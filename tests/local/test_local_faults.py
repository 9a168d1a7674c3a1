"""Fault injection on a real botocore client, and the invoker's Lambda Errors accounting."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ReadTimeoutError
from moto.server import ThreadedMotoServer

from local.drills.faults import (
    FaultError,
    FaultInjector,
    FunctionCrash,
    parse_fault,
    running_function,
    stack_call,
)
from local.functions.invoker import LambdaInvoker
from runtime.routes import ROUTES

HEARTBEAT = next(f for f in ROUTES if f.route_key == "heartbeat")


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def dynamodb(endpoint: str) -> Any:
    client = boto3.client(
        "dynamodb",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
        config=Config(retries={"mode": "standard", "total_max_attempts": 3}),  # type: ignore[arg-type]
    )
    injector = FaultInjector()
    injector.install(client)
    client.injector = injector
    return client


def test_an_error_fault_fails_every_attempt_with_the_given_code(dynamodb):
    dynamodb.list_tables()  # healthy first
    (fault,) = dynamodb.injector.add({"service": "dynamodb", "kind": "error"})
    with pytest.raises(ClientError) as failed:
        dynamodb.list_tables()
    assert failed.value.response["Error"]["Code"] == "InternalServerError"
    assert failed.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert fault.hits == 3  # botocore retried: every attempt met the fault
    assert dynamodb.injector.clear() == 1
    dynamodb.list_tables()


def test_the_stacks_own_calls_are_never_faulted(dynamodb):
    """The console's session list read during a drill's DynamoDB outage: it answered 503, so
    the page said "unavailable" while the drill ran (and a screenshot showed no session)."""
    (fault,) = dynamodb.injector.add({"service": "dynamodb", "kind": "error"})
    with stack_call():
        dynamodb.list_tables()
    assert fault.hits == 0
    with pytest.raises(ClientError):
        dynamodb.list_tables()  # the same thread, outside: faulted again


def test_faults_limited_to_operations_and_functions(dynamodb):
    dynamodb.injector.add(
        {"service": "dynamodb", "kind": "error", "operations": ["DescribeLimits"]},
        {"service": "dynamodb", "kind": "error", "functions": ["heartbeat"],
         "errorCode": "ServiceUnavailable", "status": 503},
    )  # fmt: skip
    dynamodb.list_tables()  # neither the operation nor a function thread
    with pytest.raises(ClientError):
        dynamodb.describe_limits()
    with running_function("heartbeat"), pytest.raises(ClientError) as failed:
        dynamodb.list_tables()
    assert failed.value.response["Error"]["Code"] == "ServiceUnavailable"
    with running_function("join-session"):
        dynamodb.list_tables()
    dynamodb.injector.clear()


def test_a_slow_fault_holds_calls_until_it_is_cleared(dynamodb):
    dynamodb.injector.add({"service": "dynamodb", "kind": "slow", "delayMs": 60_000})
    took: list[float] = []

    def call() -> None:
        began = time.monotonic()
        dynamodb.list_tables()
        took.append(time.monotonic() - began)

    worker = threading.Thread(target=call)
    worker.start()
    time.sleep(0.5)
    assert worker.is_alive() and not took  # held
    dynamodb.injector.clear()
    worker.join(10)
    assert took and 0.4 < took[0] < 10


def test_a_call_slower_than_the_read_timeout_times_out_after_it(endpoint):
    client = boto3.client(
        "dynamodb",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
        config=Config(read_timeout=0.3, retries={"total_max_attempts": 2}),  # type: ignore[arg-type]
    )
    injector = FaultInjector()
    injector.install(client)
    (fault,) = injector.add({"service": "dynamodb", "kind": "slow", "delayMs": 5000})
    with pytest.raises(ReadTimeoutError):  # each attempt cut at 0.3 s: the 5 s never ran out
        client.list_tables()
    assert fault.hits == 2


def test_a_crash_kills_only_a_functions_call(dynamodb):
    dynamodb.injector.add({"service": "dynamodb", "kind": "crash"})
    dynamodb.list_tables()  # not a function's thread: the stack's own calls go on
    with running_function("heartbeat"), pytest.raises(FunctionCrash):
        dynamodb.list_tables()
    dynamodb.injector.clear()


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ([], "a fault is a JSON object"),
        ({"service": "s3", "kind": "error"}, "'service' must be one of"),
        ({"service": "dynamodb", "kind": "slow"}, "'delayMs' is required"),
        ({"service": "dynamodb", "kind": "error", "probability": 0}, "'probability'"),
        ({"service": "dynamodb", "kind": "error", "functions": "heartbeat"}, "list of names"),
        ({"service": "dynamodb", "kind": "error", "colour": "red"}, "unknown field(s) colour"),
        ({"service": "dynamodb", "kind": "error", "owner": ""}, "'owner' must be a string"),
    ],
)
def test_bad_faults_say_what_is_wrong(doc, message):
    with pytest.raises(FaultError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_fault(doc, 1)


FUNCTION_NAMES = [f.name for f in ROUTES]


def test_a_fault_naming_a_function_that_does_not_exist_is_refused_with_the_names():
    doc = {"service": "dynamodb", "kind": "error", "functions": ["join-sesion"]}
    with pytest.raises(FaultError) as refused:
        parse_fault(doc, 1, FUNCTION_NAMES)
    message = str(refused.value)
    assert "no function 'join-sesion' (did you mean join-session?)" in message
    assert all(name in message for name in FUNCTION_NAMES)
    assert parse_fault({**doc, "functions": ["join-session"]}, 1, FUNCTION_NAMES).functions == (
        "join-session",
    )


def test_faults_are_removed_by_owner_or_id_and_others_stay():
    injector = FaultInjector(FUNCTION_NAMES)
    by_hand, *drill = injector.add(
        {"service": "dynamodb", "kind": "error"},
        {"service": "dynamodb", "kind": "slow", "delayMs": 10, "owner": "drill x"},
        {"service": "cloudwatch", "kind": "error", "owner": "drill x"},
    )
    assert injector.remove(owner="drill y") == []
    assert injector.remove(owner="drill x") == [f.id for f in drill]
    assert [f["id"] for f in injector.describe()] == [by_hand.id]
    assert "owner" not in injector.describe()[0]
    assert injector.remove(fault_id=by_hand.id) == [by_hand.id]
    assert injector.describe() == []


def test_a_lease_expires_unless_renewed_and_frees_the_calls_it_holds(dynamodb):
    injector = dynamodb.injector
    (fault,) = injector.add(
        {"service": "dynamodb", "kind": "slow", "delayMs": 60_000, "durationSeconds": 0.5}
    )
    assert injector.renew(fault.id, 60) is fault  # renewed: the lease now ends in a minute
    assert injector.expire() == []
    done = threading.Event()
    worker = threading.Thread(target=lambda: (dynamodb.list_tables(), done.set()))
    worker.start()
    assert not done.wait(0.5)  # held by the fault
    assert injector.renew(fault.id, 0.1) is fault
    time.sleep(0.2)
    assert injector.expire() == [fault.id]  # what the stack runs every half second
    assert done.wait(10)  # the held call went on
    assert injector.describe() == [] and injector.renew(fault.id, 10) is None
    worker.join(10)


def test_the_invoker_counts_exceptions_timeouts_and_crashes_as_errors():
    seen: list[tuple[str, bool]] = []

    def handler_for(function: Any) -> Any:
        def handler(event: dict[str, Any], context: Any) -> Any:
            if event["do"] == "raise":
                raise RuntimeError("boom")
            if event["do"] == "hang":
                time.sleep(1.5)
            if event["do"] == "crash":
                raise FunctionCrash("runtime exited")
            return {"statusCode": 200}

        return handler

    quick = dataclasses.replace(HEARTBEAT, timeout_s=1)
    invoker = LambdaInvoker(
        "dev", "us-east-1", 4, resolve=handler_for, observe=lambda f, s, e: seen.append((f.name, e))
    )

    async def run() -> list[Any]:
        return [await invoker.invoke(quick, {"do": d}) for d in ("ok", "raise", "hang", "crash")]

    try:
        results = asyncio.run(run())
    finally:
        invoker.shutdown()
    assert results == [{"statusCode": 200}, None, None, None]
    assert seen == [("heartbeat", False)] + [("heartbeat", True)] * 3
