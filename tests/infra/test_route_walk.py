"""Every route, walked from its key to everything derived from it.

A route's name is written once, in ``runtime.routes``. This walk follows each entry through
what is rendered from it — the deployed route, integration and function (Pulumi mocks), the
function's IAM grants, the handler that runs and the operation it logs, the local gateway's
dispatch and scheduler, and the actions the protocol advertises — so forgetting any of them
fails here by name.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from moto import mock_aws

from local.functions.events import LambdaContext, scheduled_event
from local.functions.invoker import resolve_handler
from local.functions.scheduler import Scheduler
from local.gateway.connection import DEFAULT_ROUTE, GatewayOptions, select_route
from local.gateway.websocket import Gateway
from runtime import aws as runtime_aws
from runtime import protocol, routes
from runtime.config import config
from runtime.routes import ROUTES, Function
from runtime.settings import PROJECT
from runtime.tables import TABLES
from tests.infra.harness import ProgramRun, policy_document
from tests.support import lambda_events
from tests.support.runtime_env import ENV, STAGE, create_tables

ROUTE = "aws:apigatewayv2/route:Route"
INTEGRATION = "aws:apigatewayv2/integration:Integration"
FUNCTION = "aws:lambda/function:Function"
ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
TABLE = "aws:dynamodb/table:Table"
RULE = "aws:cloudwatch/eventRule:EventRule"


class _NoInvoker:
    """The walk checks dispatch tables only; nothing is invoked through the gateway."""

    async def invoke(self, function: Function, event: dict[str, Any]) -> Any:
        raise AssertionError("not invoked in the route walk")


_NO_INVOKER = _NoInvoker()


@pytest.fixture
def mocked_aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The functions' environment and an in-process moto account with the tables."""
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    config.cache_clear()
    runtime_aws.reset_clients()
    with mock_aws():
        create_tables()
        yield
    config.cache_clear()
    runtime_aws.reset_clients()


def _deployed_function(dev: ProgramRun, function: Function) -> Any:
    """The Lambda function the stack deploys for this entry, reached from its trigger."""
    if function.route_key is not None:
        route = dev.one(ROUTE, routeKey=function.route_key)
        target = route["target"].removeprefix("integrations/")
        integration = next(i for i in dev.of_type(INTEGRATION) if i.id == target)
        uri = integration["integrationUri"]
        return next(f for f in dev.of_type(FUNCTION) if f["invokeArn"] == uri)
    rule = dev.one(RULE, name=f"{PROJECT}-dev-{function.name}")
    assert rule["scheduleExpression"] == function.schedule
    return dev.one(FUNCTION, name=rule["name"])


def _granted(dev: ProgramRun, deployed: Any) -> dict[tuple[str, bool], set[str]]:
    """DynamoDB actions the function's policy grants, by (table logical name, on its indexes)."""
    role = dev.one(ROLE, arn=deployed["role"])
    document = policy_document(dev.one(ROLE_POLICY, role=role.id))
    by_name = {t.physical_name(dev.stack): t.logical_name for t in TABLES}
    table_of = {t["arn"]: by_name[t["name"]] for t in dev.of_type(TABLE)}
    granted: dict[tuple[str, bool], set[str]] = {}
    for statement in document["Statement"]:
        for resource in statement["Resource"]:
            table_arn, _, index = resource.partition("/index/")
            if table_arn in table_of:
                key = (table_of[table_arn], bool(index))
                granted.setdefault(key, set()).update(statement["Action"])
    return granted


def _event(function: Function, connection_id: str) -> dict[str, Any]:
    if function.route_key == "$connect":
        return lambda_events.connect_event(connection_id)
    if function.route_key == "$disconnect":
        return lambda_events.disconnect_event(connection_id)
    if function.route_key is not None:
        # A frame the handler must refuse before touching AWS: one reply, no state.
        return lambda_events.message_event(connection_id, "{not json", route_key=function.route_key)
    return scheduled_event(lambda_events.API, function)


@pytest.mark.parametrize("function", ROUTES, ids=lambda f: f.name)
def test_route_walk_from_key_to_every_rendering(
    dev: ProgramRun, function: Function, mocked_aws: None, capsys: pytest.CaptureFixture[str]
) -> None:
    # The table itself: one entry per key and per name, names derived consistently.
    assert routes.BY_NAME[function.name] is function
    assert routes.for_module(function.module) is function
    if function.route_key is not None:
        assert routes.BY_ROUTE_KEY[function.route_key] is function
        assert function.operation == function.route_key.removeprefix("$")

    # AWS: the trigger reaches a function deployed with this handler, named after the entry.
    deployed = _deployed_function(dev, function)
    assert deployed["name"] == f"{PROJECT}-dev-{function.name}"
    assert deployed["handler"] == function.handler

    # IAM: exactly the table and index actions the entry declares, each where it declares it.
    granted = _granted(dev, deployed)
    declared = {(t, False): set(a) for t, a in function.tables.items()}
    declared.update({(t, True): set(a) for t, a in function.indexes.items()})
    assert granted == declared, function.name

    # The handler: importable where the entry says, and it logs the entry's operation.
    handler = resolve_handler(function)
    capsys.readouterr()
    connection_id = lambda_events.new_connection_id()
    context = LambdaContext(function, dev.stack, "us-east-1", "walk")
    response = handler(_event(function, connection_id), context)
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]
    assert lines, f"{function.name} logged nothing"
    assert {line["operation"] for line in lines} == {function.operation}
    assert {line["function"] for line in lines} == {deployed["name"]}
    if function.replies:
        reply = json.loads(response["body"])
        assert reply["type"] == "error" and reply["code"] == "INVALID_MESSAGE"

    # Locally: the gateway dispatches the key to this entry; the scheduler runs the job.
    if function.route_key is not None:
        gateway = Gateway(GatewayOptions(stage=STAGE, announce=False), invoker=_NO_INVOKER)
        assert gateway.routes[function.route_key] is function
        if function.is_action:
            frame = json.dumps({"action": function.route_key})
            assert select_route(frame, gateway.routes) == function.route_key
    else:
        scheduler = Scheduler(lambda_events.API, _NO_INVOKER, interval_s=60)
        assert function in scheduler.functions

    # Advertised: clients are offered exactly the action routes.
    assert (function.route_key in protocol.ACTIONS) == function.is_action


def test_default_route_advertises_every_action_route(mocked_aws: None) -> None:
    handler = resolve_handler(routes.BY_ROUTE_KEY[DEFAULT_ROUTE])
    event = lambda_events.message_event(lambda_events.new_connection_id(), {"action": "dance"})
    reply = json.loads(handler(event, lambda_events.LambdaContext())["body"])
    assert reply["code"] == "INVALID_ACTION"
    actions = [f.route_key for f in ROUTES if f.route_key and not f.route_key.startswith("$")]
    assert reply["details"]["supportedActions"] == actions
    assert list(protocol.ACTIONS) == actions


def test_a_handler_outside_the_route_table_fails_at_import() -> None:
    with pytest.raises(LookupError, match=r"no entry in runtime\.routes\.ROUTES"):
        routes.for_module("runtime.handlers.not_routed")


def test_names_derive_from_the_route_key() -> None:
    function = Function(route_key="startRecording", replies=True)
    assert function.operation == "startRecording"
    assert function.name == "start-recording"
    assert function.handler == "runtime.handlers.start_recording.handler"
    with pytest.raises(ValueError):
        Function(schedule="rate(1 minute)")  # a scheduled job must name its operation
