"""Production hardening (issue 12): several stacks in one account, scheduled jobs, protection,
names AWS accepts, log retention. Every test runs the real program under Pulumi mocks, or
checks what the mocks cannot see (``protect``) where it is decided."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pulumi
import pytest

from components import api as api_component
from components import naming
from runtime.routes import ROUTES, SCHEDULED, WEBSOCKET_ROUTES
from runtime.settings import PROJECT, parse_settings
from runtime.tables import TABLES
from tests.infra.harness import PROD_OPERATOR, ProgramRun, run_program

ACCOUNT = "aws:apigateway/account:Account"
ROLE = "aws:iam/role:Role"
STAGE = "aws:apigatewayv2/stage:Stage"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
FUNCTION = "aws:lambda/function:Function"
INVOKE_CONFIG = "aws:lambda/functionEventInvokeConfig:FunctionEventInvokeConfig"
EVENT_TARGET = "aws:cloudwatch/eventTarget:EventTarget"
TABLE = "aws:dynamodb/table:Table"
TWO_SERVICES = Path(__file__).parent / "programs" / "two_services.py"


def access_log_groups(run: ProgramRun) -> list:
    return [g for g in run.of_type(LOG_GROUP) if g["name"].startswith("/aws/apigateway/")]


# --- 1. API Gateway's account-level CloudWatch role: one owner per account and region ------------


def test_only_the_owner_stack_manages_the_account_setting(dev, prod):
    owners = [run for run in (dev, prod) if run.of_type(ACCOUNT)]
    assert owners == [prod]
    account = prod.one(ACCOUNT)
    role = prod.by_urn(next(d for d in account.dependencies if "RolePolicyAttachment" in d))
    assert role.type == "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
    assert account["cloudwatchRoleArn"].startswith("arn:aws:iam::")
    assert [r for r in dev.of_type(ROLE) if "apigateway" in r.name] == []


def test_a_stack_that_does_not_own_the_account_role_enables_no_logging_that_needs_it(dev):
    stage = dev.one(STAGE)
    # Access logs and execution logging both fail without the account's role: neither is on.
    assert not stage.get("accessLogSettings")
    assert stage["defaultRouteSettings"]["loggingLevel"] == "OFF"
    assert stage["defaultRouteSettings"]["dataTraceEnabled"] is False
    assert access_log_groups(dev) == []
    assert not any(ACCOUNT.split(":")[1] in urn for urn in stage.dependencies)


def test_the_owner_setting_is_a_setting_not_the_stack_name():
    dev_owner = run_program("dev", {"apiGatewayAccountOwner": True})
    assert len(dev_owner.of_type(ACCOUNT)) == 1
    assert dev_owner.one(STAGE)["accessLogSettings"]["destinationArn"]
    prod_not_owner = run_program("prod", {**PROD_OPERATOR, "apiGatewayAccountOwner": False})
    assert prod_not_owner.of_type(ACCOUNT) == []
    assert not prod_not_owner.one(STAGE).get("accessLogSettings")


def test_the_owner_role_and_setting_outlive_the_owner_stack(monkeypatch):
    seen: dict[str, pulumi.ResourceOptions] = {}
    original = api_component.SessionApi._opts

    def recording(self, name, **options):
        opts = original(self, name, **options)
        seen[name] = opts
        return opts

    monkeypatch.setattr(api_component.SessionApi, "_opts", recording)
    run_program("prod", PROD_OPERATOR)
    for name in ("apigateway-logs-role", "apigateway-logs-policy", "apigateway-account"):
        assert seen[name].retain_on_delete is True, name


# --- 2. scheduled jobs: no overlap, no retry -----------------------------------------------------


def test_scheduled_jobs_run_one_at_a_time_without_retries(stack_run):
    run = stack_run
    configs = {c["functionName"]: c for c in run.of_type(INVOKE_CONFIG)}
    assert len(configs) == len(SCHEDULED)
    for job in SCHEDULED:
        period = job.schedule_seconds
        assert period is not None
        function = run.one(FUNCTION, name=f"{PROJECT}-{run.stack}-{job.name}")
        assert function["reservedConcurrentExecutions"] == 1
        assert function["timeout"] < period
        config = configs[function["name"]]
        assert config["maximumRetryAttempts"] == 0
        assert 60 <= config["maximumEventAgeInSeconds"] <= period
        target = run.one(EVENT_TARGET, arn=function["arn"])
        assert target["retryPolicy"]["maximumRetryAttempts"] == 0
        assert target["retryPolicy"]["maximumEventAgeInSeconds"] <= period
    for route in (f for f in ROUTES if not f.schedule):
        function = run.one(FUNCTION, name=f"{PROJECT}-{run.stack}-{route.name}")
        assert function.get("reservedConcurrentExecutions") is None


def test_every_scheduled_timeout_is_shorter_than_its_schedule():
    for job in SCHEDULED:
        assert job.schedule_seconds is not None
        assert job.timeout_s < job.schedule_seconds, job.name


# --- 3. protection is a setting ------------------------------------------------------------------


def _settings(stack: str, **raw: str):
    return parse_settings(stack, raw)


def test_stateful_options_protect_only_when_the_setting_is_on():
    on = _settings("production", protect="true", alarmEmail="ops@events-ops.net")
    off = _settings("prod")  # the name alone protects nothing
    assert api_component.stateful_options(on, None).protect is True
    assert api_component.stateful_options(off, None).protect is False


def test_every_stateful_resource_is_created_with_the_protect_decision(monkeypatch):
    decided: list[tuple[str, bool]] = []
    original = api_component.stateful_options

    def recording(settings, parent, old_name=None):
        opts = original(settings, parent, old_name)
        decided.append((old_name, opts.protect))
        return opts

    monkeypatch.setattr(api_component, "stateful_options", recording)
    run_program("prod", PROD_OPERATOR)
    expected = {*(t.logical_name for t in TABLES), "speakers", "websocket-api"}
    assert {name for name, _ in decided} == expected
    assert all(protect is True for _, protect in decided)
    decided.clear()
    run_program("dev")
    assert {name for name, _ in decided} == expected
    assert all(protect is False for _, protect in decided)


SERVING_TYPES = (
    STAGE,
    "aws:apigatewayv2/route:Route",
    "aws:apigatewayv2/routeResponse:RouteResponse",
    "aws:apigatewayv2/integration:Integration",
    "aws:lambda/permission:Permission",
    FUNCTION,
    "aws:apigatewayv2/api:Api",
)


def test_a_protected_stack_protects_its_whole_serving_path(prod):
    # The engine's registrations carry `protect` as the SDK resolved it (the functions'
    # inherit it from their MonitoredFunction component): a destroy stops before deleting
    # any part of what answers the public URL.
    scheduled = {f"session-api-{f.name}-invoke" for f in SCHEDULED}
    for kind in SERVING_TYPES:
        # The schedules' invoke permissions are not on the URL's path.
        resources = [r for r in prod.of_type(kind) if r.name not in scheduled]
        assert resources, kind
        unprotected = [r.name for r in resources if not r.protect]
        assert unprotected == [], (kind, unprotected)
    route_names = {f.name for f in WEBSOCKET_ROUTES}
    assert len(prod.of_type("aws:apigatewayv2/route:Route")) == len(route_names)


def test_an_unprotected_stack_protects_nothing(dev):
    assert [r.name for r in dev.resources if r.protect] == []


def test_serving_protect_follows_the_setting_not_the_name():
    assert api_component.serving_protect(_settings("prod")) is False
    on = _settings("production", protect="true", alarmEmail="ops@events-ops.net")
    assert api_component.serving_protect(on) is True


def test_a_protected_stack_of_any_name_gets_pitr_deletion_protection_and_needs_an_email():
    run = run_program(
        "prod-eu", {"protect": True, "alarmEmail": "ops@events-ops.net"}, use_stack_file=False
    )
    for table in run.of_type(TABLE):
        assert table["pointInTimeRecovery"]["enabled"] is True
        assert table["deletionProtectionEnabled"] is True
    assert run.one("aws:cognito/userPool:UserPool")["deletionProtection"] == "ACTIVE"
    with pytest.raises(pulumi.RunError, match="alarmEmail' is required when"):
        run_program("production", {"protect": True}, use_stack_file=False)


def test_prod_without_protect_is_not_protected():
    run = run_program("prod", {**PROD_OPERATOR, "protect": False})
    assert not any(t["pointInTimeRecovery"]["enabled"] for t in run.of_type(TABLE))
    assert run.one("aws:cognito/userPool:UserPool")["deletionProtection"] == "INACTIVE"


# --- 4. the stack name against every name it flows into ------------------------------------------


@pytest.mark.parametrize(
    ("stack", "rejected_by"),
    [
        ("dev.eu", ("Lambda function name", "SNS topic name", "CloudWatch dashboard name")),
        ("dev eu", ("API Gateway stage name", "DynamoDB table name")),
        ("dev+1", ("Lambda function name", "CloudWatch log group name")),
    ],
)
def test_a_stack_name_aws_would_refuse_stops_the_program_first(stack, rejected_by):
    with pytest.raises(pulumi.RunError) as failure:
        run_program(stack, use_stack_file=False)
    message = str(failure.value)
    assert f"stack name {stack!r} cannot be deployed" in message
    for what in rejected_by:
        assert what in message, what


def test_the_name_rules_cover_every_name_the_program_gives(dev):
    covered = {name for rule in naming.NAME_RULES for name in rule.names("dev")}
    # Names AWS takes as free text (any characters, long limits) need no rule.
    free_text = {"aws:apigatewayv2/api:Api", "aws:cloudwatch/queryDefinition:QueryDefinition"}
    named = [
        (r.type, r.inputs.get("name") or r.inputs.get("dashboardName"))
        for r in dev.resources
        if r.custom and r.type not in free_text
    ]
    with_stack = [(t, n) for t, n in named if isinstance(n, str) and "dev" in n]
    assert len(with_stack) > len(ROUTES)
    uncovered = [
        (t, n)
        for t, n in with_stack
        if n not in covered and t != "aws:cloudwatch/metricAlarm:MetricAlarm"
    ]
    assert uncovered == []


def test_a_valid_stack_name_passes():
    naming.check_stack_name("staging_2-eu")


# --- 6. log retention ----------------------------------------------------------------------------


def test_prod_keeps_logs_30_days_and_dev_14(dev, prod):
    assert {g["retentionInDays"] for g in prod.of_type(LOG_GROUP)} == {30}
    assert {g["retentionInDays"] for g in dev.of_type(LOG_GROUP)} == {14}


def test_a_retention_cloudwatch_does_not_offer_is_rejected():
    with pytest.raises(pulumi.RunError, match="logRetentionDays' must be one of 1, 3, 5"):
        run_program("dev", {"logRetentionDays": 15})


# --- 7. names that collide or fail ---------------------------------------------------------------


def test_table_names_carry_the_project_and_stack(stack_run):
    names = {t["name"] for t in stack_run.of_type(TABLE)}
    assert names == {f"{PROJECT}-{stack_run.stack}-{t.logical_name}" for t in TABLES}
    assert names == {t.physical_name(stack_run.stack) for t in TABLES}


@pytest.mark.parametrize(
    "namespace", ["AWS/Lambda", "AWS/SessionManagement", ":Sessions", "Sessions|Prod", "x" * 256]
)
def test_a_namespace_cloudwatch_refuses_is_rejected(namespace):
    with pytest.raises(pulumi.RunError, match="metricsNamespace' must be 1-255 of"):
        run_program("dev", {"metricsNamespace": namespace})


@pytest.mark.parametrize("namespace", ["Sessions/Prod", "Team.Sessions-1 #eu:west_1", "AWSome"])
def test_namespaces_cloudwatch_accepts_pass(namespace):
    assert _settings("dev", metricsNamespace=namespace).metricsNamespace == namespace


def test_two_services_in_one_program_do_not_collide():
    run = run_program("dev", program=TWO_SERVICES)
    urns = Counter(r.urn for r in run.resources)
    assert [urn for urn, n in urns.items() if n > 1] == []
    physical = Counter(
        (r.type, r.inputs.get("name") or r.inputs.get("dashboardName"))
        for r in run.resources
        if r.custom and (r.inputs.get("name") or r.inputs.get("dashboardName"))
    )
    assert [key for key, n in physical.items() if n > 1 and key[0] != STAGE] == []
    assert len(run.of_type("session-management:components:SessionApi")) == 2
    assert len(run.of_type("session-management:components:Monitoring")) == 2
    for component in ("blue", "green"):
        children = [r for r in run.resources if r.custom and r.parent_type.endswith("SessionApi")]
        assert any(r.name.startswith(f"{component}-") for r in children)
    assert all(
        r.name.startswith(("blue", "green"))
        for r in run.resources
        if r.parent_type.endswith(("SessionApi", "Monitoring", "AlarmTopic"))
    )
