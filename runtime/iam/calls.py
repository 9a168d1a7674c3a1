"""What each AWS call needs from IAM, and the botocore hook that refuses what is not allowed.

``required`` maps one botocore operation and its parameters to the IAM requests AWS
authorises it as — action, resource ARN and condition keys:

* DynamoDB: ``dynamodb:<Operation>`` on the table's ARN, or on ``…/table/T/index/I`` for a
  Query or Scan with ``IndexName``; ``BatchGetItem`` / ``BatchWriteItem`` on each table they
  touch; ``TransactWriteItems`` as each item's own action (``PutItem``, ``UpdateItem``,
  ``DeleteItem``, ``ConditionCheckItem``) on its table, ``TransactGetItems`` as ``GetItem``;
* the @connections API: ``execute-api:ManageConnections`` on
  ``arn:aws:execute-api:{region}:{account}:{apiId}/{stage}/{POST|GET|DELETE}/@connections/{id}``;
* SSM: ``ssm:GetParameter`` on the parameter's ARN;
* CloudWatch: ``cloudwatch:PutMetricData`` on ``*`` with ``cloudwatch:namespace``.

``Enforcer.attach(client)`` registers two botocore hooks on a client: ``before-parameter-build``
(sees the call's parameters; decides) and ``before-call`` (answers a denied call with AWS's
error response instead of sending it). botocore then raises the ``ClientError`` exactly as for
a real AccessDenied — same code, HTTP status and message shape, and not retried (retries
happen only around a sent request) — so the handler's own error path runs as on AWS.

Calls are checked only while a function runs: ``runtime.invocation`` sets ``RUNNING`` for the
duration of each invocation (fan-out threads inherit it through ``contextvars``); calls made
outside a function (a test seeding a table, the local stack's own calls) are not checked.
"""

from __future__ import annotations

import contextlib
import contextvars
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from botocore.awsrequest import AWSResponse

from runtime.iam.evaluate import is_allowed
from runtime.iam.policy import NAMESPACE_CONDITION, StackNames, function_policy
from runtime.routes import Function

# The route-table entry of the function running in this context (None: not a function).
RUNNING: contextvars.ContextVar[Function | None] = contextvars.ContextVar(
    "iam_running_function", default=None
)

# (HTTP status, error code) of AWS's answer to a call IAM denies, by botocore service name.
DENIED_AS: dict[str, tuple[int, str]] = {
    "dynamodb": (400, "AccessDeniedException"),
    "ssm": (400, "AccessDeniedException"),
    "cloudwatch": (403, "AccessDenied"),
    "apigatewaymanagementapi": (403, "AccessDeniedException"),
}
DEFAULT_DENIED_AS = (403, "AccessDeniedException")
# IAM service prefixes where they differ from botocore's service name.
SERVICE_PREFIX = {"apigatewaymanagementapi": "execute-api"}
CONNECTION_METHODS = {
    "PostToConnection": "POST",
    "GetConnection": "GET",
    "DeleteConnection": "DELETE",
}
TRANSACT_ACTIONS = {
    "Put": "dynamodb:PutItem",
    "Update": "dynamodb:UpdateItem",
    "Delete": "dynamodb:DeleteItem",
    "ConditionCheck": "dynamodb:ConditionCheckItem",
    "Get": "dynamodb:GetItem",
}
_DENIAL_KEY = "runtime_iam_denial"


@contextlib.contextmanager
def running(function: Function) -> Iterator[None]:
    """Mark this context as running ``function`` (its calls are checked against its policy)."""
    token = RUNNING.set(function)
    try:
        yield
    finally:
        RUNNING.reset(token)


@dataclass(frozen=True)
class Request:
    """One IAM authorisation request: what a call needs."""

    action: str
    resource: str
    context: Mapping[str, str] = field(default_factory=dict)


def _table_arn(names: StackNames, table: str) -> str:
    if table.startswith("arn:"):  # DynamoDB accepts a table ARN as TableName
        return table
    return f"arn:{names.partition}:dynamodb:{names.region}:{names.account}:table/{table}"


def _dynamodb(operation: str, params: Mapping[str, Any], names: StackNames) -> list[Request]:
    if operation in ("BatchGetItem", "BatchWriteItem"):
        tables = params.get("RequestItems") or {}
        return [Request(f"dynamodb:{operation}", _table_arn(names, t)) for t in tables]
    if operation in ("TransactWriteItems", "TransactGetItems"):
        requests: list[Request] = []
        for item in params.get("TransactItems") or []:
            for kind, part in item.items():
                action = TRANSACT_ACTIONS.get(kind, f"dynamodb:{kind}Item")
                requests.append(Request(action, _table_arn(names, part.get("TableName", ""))))
        return list({(r.action, r.resource): r for r in requests}.values())
    table = params.get("TableName")
    if not table:
        return [Request(f"dynamodb:{operation}", "*")]
    arn = _table_arn(names, table)
    if params.get("IndexName"):
        arn = f"{arn}/index/{params['IndexName']}"
    return [Request(f"dynamodb:{operation}", arn)]


def required(
    service: str, operation: str, params: Mapping[str, Any], names: StackNames
) -> list[Request]:
    """The IAM requests AWS authorises the call ``service.operation(**params)`` as."""
    if service == "dynamodb":
        return _dynamodb(operation, params, names)
    if service == "apigatewaymanagementapi":
        method = CONNECTION_METHODS.get(operation, "POST")
        arn = names.connection_arn(method, str(params.get("ConnectionId", "")))
        return [Request("execute-api:ManageConnections", arn)]
    if service == "ssm" and operation in ("GetParameter", "GetParameters"):
        parameters = [params["Name"]] if "Name" in params else list(params.get("Names") or [])
        return [
            Request(
                "ssm:GetParameter",
                f"arn:{names.partition}:ssm:{names.region}:{names.account}:parameter/"
                + str(name).lstrip("/"),
            )
            for name in parameters
        ]
    if service == "cloudwatch" and operation == "PutMetricData":
        namespace = str(params.get("Namespace", ""))
        return [Request("cloudwatch:PutMetricData", "*", {NAMESPACE_CONDITION: namespace})]
    return [Request(f"{SERVICE_PREFIX.get(service, service)}:{operation}", "*")]


@dataclass(frozen=True)
class Denial:
    """A call IAM refused: who, what, on what, and AWS's answer."""

    function: str
    service: str
    operation: str
    action: str
    resource: str
    status: int
    code: str
    message: str


def denial_message(principal: str, action: str, resource: str) -> str:
    """AWS's AccessDenied message for an action no identity-based policy allows."""
    on = "" if resource == "*" else f" on resource: {resource}"
    return (
        f"User: {principal} is not authorized to perform: {action}{on} "
        f"because no identity-based policy allows the {action} action"
    )


def _response(denial: Denial, url: str) -> tuple[AWSResponse, dict[str, Any]]:
    request_id = str(uuid.uuid4())
    headers = {"x-amzn-RequestId": request_id, "x-amzn-ErrorType": denial.code}
    http = AWSResponse(url, denial.status, headers, None)
    parsed = {
        "Error": {"Code": denial.code, "Message": denial.message},
        "message": denial.message,
        "ResponseMetadata": {
            "RequestId": request_id,
            "HTTPStatusCode": denial.status,
            "HTTPHeaders": {k.lower(): v for k, v in headers.items()},
            "RetryAttempts": 0,
        },
    }
    return http, parsed


class Enforcer:
    """Checks every call of a function's clients against that function's policy.

    ``names`` gives the stack's names (called for each check, so a test's environment may
    change them); ``on_request`` is told of every checked request and whether it was allowed
    (recording), ``on_denied`` of every denial (the local stack's stderr line and metrics).
    ``overrides`` replaces a function's route-table entry when its policy is built (the
    mutation test's narrowed grants); ``revoked`` denies (action, resource) patterns to a
    function whatever its policy grants (the local stack's ``--iam-deny``: try how a missing
    grant shows).
    """

    def __init__(
        self,
        names: Callable[[], StackNames],
        *,
        on_denied: Callable[[Denial], None] | None = None,
        on_request: Callable[[Function, Request, bool], None] | None = None,
    ) -> None:
        self.names = names
        self.on_denied = on_denied
        self.on_request = on_request
        self.overrides: dict[str, Function] = {}
        self.revoked: dict[str, tuple[tuple[str, str], ...]] = {}
        self._id = f"runtime-iam-{uuid.uuid4().hex}"

    def policy(self, function: Function, names: StackNames) -> dict[str, Any]:
        policy = function_policy(self.overrides.get(function.name, function), names)
        for action, resource in self.revoked.get(function.name, ()):
            deny = {"Sid": "Revoked", "Effect": "Deny", "Action": action, "Resource": resource}
            policy["Statement"].append(deny)
        return policy

    def check(
        self, function: Function, service: str, operation: str, params: Mapping[str, Any]
    ) -> Denial | None:
        """The denial of this call by ``function``'s policy, or None when allowed."""
        names = self.names()
        policy = self.policy(function, names)
        denial: Denial | None = None
        for request in required(service, operation, params, names):
            allowed = is_allowed(policy, request.action, request.resource, request.context)
            if self.on_request is not None:
                self.on_request(function, request, allowed)
            if not allowed and denial is None:
                status, code = DENIED_AS.get(service, DEFAULT_DENIED_AS)
                message = denial_message(
                    names.assumed_role_arn(function), request.action, request.resource
                )
                denial = Denial(
                    function.name, service, operation, request.action, request.resource,
                    status, code, message,
                )  # fmt: skip
        return denial

    def attach(self, client: Any) -> Any:
        """Check every call ``client`` makes while a function runs; returns the client."""
        service = client.meta.service_model.service_name
        events = client.meta.events
        events.register(
            "before-parameter-build", self._decide(service), unique_id=f"{self._id}-decide"
        )
        events.register("before-call", self._answer, unique_id=f"{self._id}-answer")
        return client

    def _decide(self, service: str) -> Callable[..., None]:
        def decide(
            params: Mapping[str, Any], model: Any, context: dict[str, Any], **_: Any
        ) -> None:
            function = RUNNING.get()
            if function is None:
                return
            denial = self.check(function, service, model.name, params)
            if denial is not None:
                context[_DENIAL_KEY] = denial

        return decide

    def _answer(
        self, params: Mapping[str, Any], context: dict[str, Any], **_: Any
    ) -> tuple[AWSResponse, dict[str, Any]] | None:
        denial: Denial | None = context.get(_DENIAL_KEY)
        if denial is None:
            return None
        if self.on_denied is not None:
            self.on_denied(denial)
        return _response(denial, str(params.get("url", "")))
