"""Runs the whole Pulumi program (``__main__.py``) under Pulumi mocks and records everything.

``run_program("dev")`` feeds the real ``Pulumi.dev.yaml`` (plus overrides) as the stack's
config, executes ``__main__.py`` with ``preview=False`` (so every ``apply`` runs), waits for
every registration, and returns what was registered: each resource's type, name, inputs,
mocked outputs, parent and dependencies, plus the resolved stack outputs. Tests assert on
that data after the program has finished, so no assertion can be skipped by an unresolved
Output.

Project-level defaults from ``Pulumi.yaml`` are applied by the CLI, not here: under mocks
the program's own defaults (the settings model's) apply, which a test keeps equal.
"""

from __future__ import annotations

import asyncio
import json
import runpy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import settings as pulumi_settings
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from runtime.settings import PROJECT

ROOT = Path(__file__).resolve().parents[2]
PROGRAM = ROOT / "__main__.py"
ACCOUNT = "123456789012"
# What an operator sets in place of Pulumi.prod.yaml's alarmEmail placeholder, which the
# program refuses (reserved domain): runs of the prod stack file set this as an operator must.
OPERATOR_ALARM_EMAIL = "oncall@events-ops.net"
PROD_OPERATOR = {"alarmEmail": OPERATOR_ALARM_EMAIL}
DEFAULT_REGION = "eu-west-1"


# How the mock monitor hands over a secret value: {SECRET_SIG: SECRET_VALUE_SIG, "value": …}.
SECRET_SIG = "4dabf18193072939515e22adb298388d"
SECRET_VALUE_SIG = "1b47061264138c4ac30d75fd1eb44270"


def is_secret(value: Any) -> bool:
    return isinstance(value, dict) and value.get(SECRET_SIG) == SECRET_VALUE_SIG


def reveal(value: Any) -> Any:
    """``value`` with every secret wrapper removed (tests assert on the plaintext)."""
    if is_secret(value):
        return reveal(value["value"])
    if isinstance(value, dict):
        return {k: reveal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [reveal(v) for v in value]
    return value


@dataclass
class Resource:
    """One registered resource (custom or component)."""

    type: str
    name: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    id: str | None
    urn: str
    parent_urn: str
    dependencies: list[str]
    custom: bool
    protect: bool = False
    retain_on_delete: bool = False
    # Top-level properties the program passed as secrets.
    secret_inputs: set[str] = field(default_factory=set)

    @property
    def parent_type(self) -> str:
        """The type of the parent (the URN's qualified type holds ``parent$child``)."""
        qualified = self.urn.split("::")[2]
        return qualified.split("$")[-2] if "$" in qualified else ""

    def __getitem__(self, key: str) -> Any:
        return self.outputs[key] if key in self.outputs else self.inputs[key]

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default


@dataclass
class ProgramRun:
    stack: str
    config: dict[str, str]
    resources: list[Resource] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)

    def of_type(self, type_: str) -> list[Resource]:
        return [r for r in self.resources if r.type == type_]

    def one(self, type_: str, **match: Any) -> Resource:
        found = [r for r in self.of_type(type_) if all(r.get(k) == v for k, v in match.items())]
        assert len(found) == 1, f"expected one {type_} matching {match}, found {len(found)}"
        return found[0]

    def by_urn(self, urn: str) -> Resource:
        return next(r for r in self.resources if r.urn == urn)

    def children(self, parent: Resource) -> list[Resource]:
        return [r for r in self.resources if r.parent_urn == parent.urn]


def _arn(service: str, region: str, rest: str) -> str:
    return f"arn:aws:{service}:{region}:{ACCOUNT}:{rest}"


class RecordingMocks(pulumi.runtime.Mocks):
    """Returns plausible provider outputs (ARNs, endpoints, IDs) for every resource type."""

    def __init__(self, region: str) -> None:
        self.region = region
        # (type, name) → the inputs the program gave, before any mocked output is added.
        self.inputs: dict[tuple[str, str], dict[str, Any]] = {}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict]:
        inputs = dict(args.inputs)
        self.inputs[(args.typ, args.name)] = inputs
        name = inputs.get("name") or args.name
        region = self.region
        outputs: dict[str, Any] = dict(inputs)
        rid = f"{args.name}-id"
        t = args.typ
        if t == "aws:dynamodb/table:Table":
            outputs["arn"] = _arn("dynamodb", region, f"table/{name}")
        elif t == "aws:cloudwatch/logGroup:LogGroup":
            outputs["arn"] = _arn("logs", region, f"log-group:{name}")
        elif t == "aws:apigatewayv2/api:Api":
            rid = "a1b2c3d4e5"
            outputs["apiEndpoint"] = f"wss://{rid}.execute-api.{region}.amazonaws.com"
            outputs["executionArn"] = _arn("execute-api", region, rid)
        elif t == "aws:apigatewayv2/stage:Stage":
            api = inputs["apiId"]
            outputs["invokeUrl"] = f"wss://{api}.execute-api.{region}.amazonaws.com/{name}"
            outputs["arn"] = f"arn:aws:apigateway:{region}::/apis/{api}/stages/{name}"
        elif t == "aws:lambda/function:Function":
            arn = _arn("lambda", region, f"function:{name}")
            outputs["arn"] = arn
            outputs["invokeArn"] = (
                f"arn:aws:apigateway:{region}:lambda:path/2015-03-31/functions/{arn}/invocations"
            )
        elif t == "aws:iam/role:Role":
            outputs["name"] = name
            outputs["arn"] = f"arn:aws:iam::{ACCOUNT}:role/{name}"
            rid = name
        elif t == "aws:cognito/userPool:UserPool":
            rid = f"{region}_AbCdEf123"
            outputs["endpoint"] = f"cognito-idp.{region}.amazonaws.com/{rid}"
            outputs["arn"] = _arn("cognito-idp", region, f"userpool/{rid}")
        elif t == "aws:cognito/userPoolClient:UserPoolClient":
            rid = "4example0client0id0abc"
        elif t == "aws:ssm/parameter:Parameter":
            # Parameter ARNs drop the name's leading slash: …:parameter/a/b for "/a/b".
            outputs["arn"] = _arn("ssm", region, f"parameter/{str(name).lstrip('/')}")
        elif t == "random:index/randomPassword:RandomPassword":
            outputs["result"] = "generated-" + "k" * (int(inputs.get("length", 16)) - 10)
        elif t.startswith("aws:"):
            service = t.split(":")[1].split("/")[0]
            outputs.setdefault("arn", _arn(service, region, f"{service}/{name}"))
        if t.startswith("aws:"):
            outputs.setdefault("arn", _arn(t.split(":")[1].split("/")[0], region, str(name)))
        return rid, outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict:  # type: ignore[override]
        if args.token == "aws:index/getRegion:getRegion":
            return {"name": self.region, "region": self.region, "id": self.region}
        if args.token == "aws:index/getPartition:getPartition":
            return {"partition": "aws", "dnsSuffix": "amazonaws.com", "id": "aws"}
        if args.token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {
                "accountId": ACCOUNT,
                "arn": f"arn:aws:iam::{ACCOUNT}:user/test",
                "userId": "AIDTEST",
                "id": ACCOUNT,
            }
        raise AssertionError(f"unexpected invoke {args.token}")


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """A MockMonitor that also keeps each registration's parent and dependencies."""

    def __init__(self, mocks: pulumi.runtime.Mocks) -> None:
        super().__init__(mocks)
        self.registrations: list[dict[str, Any]] = []

    def RegisterResource(self, request: Any) -> Any:
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            self.registrations.append(
                {
                    "type": request.type,
                    "name": request.name,
                    "urn": response.urn,
                    "parent": request.parent,
                    "dependencies": list(request.dependencies),
                    "custom": request.custom,
                    # The engine's view of the resource's options: what `pulumi destroy`
                    # will refuse to delete (the SDK resolves inheritance from the parent).
                    "protect": request.protect,
                    "retain_on_delete": request.retainOnDelete,
                }
            )
        return response


def stack_file_config(stack: str) -> dict[str, str]:
    """The stack's ``Pulumi.<stack>.yaml`` config as Pulumi passes it: strings."""
    path = ROOT / f"Pulumi.{stack}.yaml"
    if not path.exists():
        return {}
    document = yaml.safe_load(path.read_text()) or {}
    return {key: _as_config_string(value) for key, value in (document.get("config") or {}).items()}


def _as_config_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def project_key(key: str) -> str:
    return key if ":" in key else f"{PROJECT}:{key}"


def _ensure_event_loop() -> None:
    """Pulumi's mocks need a current event loop; an earlier test's ``asyncio.run`` in the
    same worker leaves none (it unsets the loop when it finishes)."""
    try:
        asyncio.get_event_loop_policy().get_event_loop()
    except RuntimeError:
        asyncio.set_event_loop(asyncio.new_event_loop())


def run_program(
    stack: str,
    overrides: Mapping[str, Any] | None = None,
    *,
    remove: Iterable[str] = (),
    secret_keys: Iterable[str] = (),
    use_stack_file: bool = True,
    program: Path = PROGRAM,
) -> ProgramRun:
    """Run ``__main__.py`` for ``stack`` under mocks; raise whatever the program raises.

    ``overrides`` keys without a namespace are project keys (``maxActiveSessions``);
    ``remove`` drops keys from the stack file's config; ``program`` runs another file than
    ``__main__.py`` (a test composition of the components).
    """
    config = stack_file_config(stack) if use_stack_file else {}
    for key in remove:
        config.pop(project_key(key), None)
    for key, value in (overrides or {}).items():
        config[project_key(key)] = _as_config_string(value)
    region = config.setdefault("aws:region", DEFAULT_REGION)

    mocks = RecordingMocks(region)
    monitor = RecordingMonitor(mocks)
    _ensure_event_loop()
    # A fresh root stack, config and mocked engine for every run.
    pulumi_settings.ROOT.set(None)
    pulumi.runtime.set_all_config(dict(config), [project_key(k) for k in secret_keys])
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=False, monitor=monitor)
    root = pulumi_settings.get_root_resource()
    assert root is not None

    def run_file() -> None:
        runpy.run_path(str(program), run_name="__main__")

    try:
        _sync_await(run_pulumi_func(run_file))
        outputs = _sync_await(pulumi.Output.from_input(dict(root.outputs)).future())  # type: ignore[attr-defined]
    finally:
        pulumi_settings.ROOT.set(None)

    registered = monitor.get_registered_resources()
    run = ProgramRun(stack=stack, config=config, outputs=outputs or {})
    for reg in monitor.registrations:
        state = registered.get(reg["urn"])
        inputs = mocks.inputs.get((reg["type"], reg["name"]), {})
        run.resources.append(
            Resource(
                type=reg["type"],
                name=reg["name"],
                inputs=reveal(inputs),
                outputs=reveal(dict(state.state)) if state else {},
                id=state.id if state else None,
                urn=reg["urn"],
                parent_urn=reg["parent"],
                dependencies=reg["dependencies"],
                custom=reg["custom"],
                protect=bool(reg["protect"]),
                retain_on_delete=bool(reg["retain_on_delete"]),
                secret_inputs={k for k, v in inputs.items() if is_secret(v)},
            )
        )
    return run


def policy_document(resource: Resource) -> dict[str, Any]:
    """The parsed policy of an ``aws:iam/rolePolicy:RolePolicy``."""
    policy = resource["policy"]
    return json.loads(policy) if isinstance(policy, str) else policy
