"""Properties of the whole program for the real dev and prod stacks, under Pulumi mocks.

Every assertion runs on data recorded after the program finished (see ``harness``).
"""

from __future__ import annotations

import base64
import dataclasses
import json
import math

import pytest

from runtime import metric_names
from runtime.iam.policy import StackNames, function_policy
from runtime.routes import ROUTES, SCHEDULED, WEBSOCKET_ROUTES, Function
from runtime.settings import BY_KEY, LOG_RETENTION_DAYS, PROJECT, parse_settings
from runtime.tables import TABLES
from tests.infra.harness import (
    ACCOUNT,
    OPERATOR_ALARM_EMAIL,
    ProgramRun,
    Resource,
    policy_document,
    run_program,
)
from tests.infra.policy_checks import least_privilege_violations

FUNCTION = "aws:lambda/function:Function"
PERMISSION = "aws:lambda/permission:Permission"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
ROLE = "aws:iam/role:Role"
TABLE = "aws:dynamodb/table:Table"
API = "aws:apigatewayv2/api:Api"
STAGE_TYPE = "aws:apigatewayv2/stage:Stage"
PARAMETER = "aws:ssm/parameter:Parameter"
COMPONENTS = {
    "session-management:components:MonitoredFunction",
    "session-management:components:SessionApi",
    "session-management:components:AlarmTopic",
    "session-management:components:Monitoring",
}


def settings_of(run: ProgramRun):
    prefix = f"{PROJECT}:"
    raw = {k[len(prefix) :]: v for k, v in run.config.items() if k.startswith(prefix)}
    return parse_settings(run.stack, raw)


def function_resource(run: ProgramRun, function: Function) -> Resource:
    return run.one(FUNCTION, name=f"{PROJECT}-{run.stack}-{function.name}")


def topic_arn(run: ProgramRun) -> str:
    return run.one("aws:sns/topic:Topic")["arn"]


# --- routes and triggers -------------------------------------------------------------------------


def test_every_route_reaches_its_function_through_integration_and_permission(stack_run):
    run = stack_run
    api = run.one(API)
    integrations = {r.id: r for r in run.of_type("aws:apigatewayv2/integration:Integration")}
    routes = {r["routeKey"]: r for r in run.of_type("aws:apigatewayv2/route:Route")}
    assert set(routes) == {f.route_key for f in WEBSOCKET_ROUTES}
    for function in WEBSOCKET_ROUTES:
        route = routes[function.route_key]
        assert route["apiId"] == api.id
        integration = integrations[route["target"].removeprefix("integrations/")]
        assert integration["integrationType"] == "AWS_PROXY"
        assert integration["apiId"] == api.id
        target = function_resource(run, function)
        assert integration["integrationUri"] == target["invokeArn"]
        assert target["handler"] == function.handler
        permissions = [
            p
            for p in run.of_type(PERMISSION)
            if p["function"] == target["name"] and p["principal"] == "apigateway.amazonaws.com"
        ]
        assert len(permissions) == 1, function.name
        assert permissions[0]["action"] == "lambda:InvokeFunction"
        assert permissions[0]["sourceArn"] == (
            f"{api['executionArn']}/{run.stack}/{function.route_key}"
        )


def test_two_way_routes_have_a_default_route_response(stack_run):
    run = stack_run
    routes = {r["routeKey"]: r for r in run.of_type("aws:apigatewayv2/route:Route")}
    responses = {
        r["routeId"]: r for r in run.of_type("aws:apigatewayv2/routeResponse:RouteResponse")
    }
    for function in WEBSOCKET_ROUTES:
        route = routes[function.route_key]
        if function.replies:
            assert route["routeResponseSelectionExpression"] == "$default"
            assert responses[route.id]["routeResponseKey"] == "$default"
        else:
            assert route.id not in responses
            assert not route.get("routeResponseSelectionExpression")
    assert len(responses) == sum(f.replies for f in WEBSOCKET_ROUTES)


def test_scheduled_functions_have_a_rule_target_and_permission(stack_run):
    run = stack_run
    for function in SCHEDULED:
        target = function_resource(run, function)
        rule = run.one("aws:cloudwatch/eventRule:EventRule", name=target["name"])
        assert rule["scheduleExpression"] == function.schedule
        event_target = run.one("aws:cloudwatch/eventTarget:EventTarget", rule=rule["name"])
        assert event_target["arn"] == target["arn"]
        permission = run.one(PERMISSION, function=target["name"], principal="events.amazonaws.com")
        assert permission["sourceArn"] == rule["arn"]
    assert len(run.of_type("aws:cloudwatch/eventRule:EventRule")) == len(SCHEDULED)


def test_websocket_api_selects_routes_on_the_action_field(stack_run):
    api = stack_run.one(API)
    assert api["protocolType"] == "WEBSOCKET"
    assert api["routeSelectionExpression"] == "$request.body.action"


def test_stage_is_named_after_the_stack_with_throttling(stack_run):
    run = stack_run
    stage = run.one(STAGE_TYPE)
    assert stage["name"] == run.stack
    assert stage["autoDeploy"] is True
    route_settings = stage["defaultRouteSettings"]
    assert route_settings["throttlingRateLimit"] > 0
    assert route_settings["throttlingBurstLimit"] > 0
    # Execution logging needs the account's CloudWatch role: never turned on.
    assert route_settings["loggingLevel"] == "OFF"
    assert route_settings["dataTraceEnabled"] is False
    routes = {r.urn for r in run.of_type("aws:apigatewayv2/route:Route")}
    assert routes <= set(stage.dependencies)


def test_the_account_owner_stage_has_json_access_logs(prod):
    run = prod
    stage = run.one(STAGE_TYPE)
    log_group = run.one(LOG_GROUP, arn=stage["accessLogSettings"]["destinationArn"])
    assert log_group["retentionInDays"] == settings_of(run).logRetentionDays
    fields = json.loads(stage["accessLogSettings"]["format"])
    assert {"requestId", "routeKey", "status", "eventType"} <= set(fields)
    # Same rule as the functions' logs: no raw IP, no raw connection ID.
    assert not any("sourceIp" in v or "connectionId" in v for v in fields.values())
    # The first automatic deployment must already have the account's logging role.
    assert run.one("aws:apigateway/account:Account").urn in stage.dependencies


# --- functions -----------------------------------------------------------------------------------


def test_every_function_of_the_route_table_is_deployed_as_configured(stack_run):
    run = stack_run
    assert len(run.of_type(FUNCTION)) == len(ROUTES)
    environments = []
    for function in ROUTES:
        resource = function_resource(run, function)
        assert resource["runtime"] == "python3.12"
        assert resource["architectures"] == ["arm64"]
        assert resource["handler"] == function.handler
        assert resource["memorySize"] == function.memory_mb
        assert resource["timeout"] == function.timeout_s
        assert resource["tracingConfig"]["mode"] == "Active"  # tracing is on in both stacks
        assert resource.parent_type == ("session-management:components:MonitoredFunction")
        environments.append(resource["environment"]["variables"])
    assert all(env == environments[0] for env in environments)


def test_every_function_deploys_the_one_content_addressed_archive(stack_run):
    run = stack_run
    sha = run.outputs["lambdaArchiveSha256"]
    for function in run.of_type(FUNCTION):
        path = function["code"].path
        # Relative to the project and named by content: the same on every checkout.
        assert path.startswith("build/lambda/aarch64-manylinux2014-py3.12-") and path.endswith(
            ".zip"
        )
        assert base64.b64decode(function["sourceCodeHash"]).hex() == sha


def test_function_environment_carries_settings_tables_endpoint_key_and_auth(stack_run):
    run = stack_run
    settings = settings_of(run)
    env = function_resource(run, ROUTES[0])["environment"]["variables"]
    expected = settings.runtime_environment()
    expected.pop("AUTH_ISSUER"), expected.pop("AUTH_AUDIENCE"), expected.pop("AUTH_JWKS_URL")
    assert expected.items() <= env.items()
    assert env["STAGE"] == run.stack
    for table in TABLES:
        assert env[table.env] == table.physical_name(run.stack)
    api = run.one(API)
    region = run.config["aws:region"]
    assert env["CONNECTIONS_ENDPOINT"] == (
        f"https://{api.id}.execute-api.{region}.amazonaws.com/{run.stack}"
    )
    # The HMAC key is in SSM, never in the environment: only the parameter's name is.
    assert BY_KEY["ipHashKey"].env not in env
    assert env["IP_HASH_KEY_PARAMETER"] == run.one(PARAMETER)["name"]
    pool = run.one("aws:cognito/userPool:UserPool")
    client = run.one("aws:cognito/userPoolClient:UserPoolClient")
    issuer = f"https://cognito-idp.{region}.amazonaws.com/{pool.id}"
    assert env["AUTH_ISSUER"] == issuer
    assert env["AUTH_AUDIENCE"] == client.id
    assert env["AUTH_JWKS_URL"] == f"{issuer}/.well-known/jwks.json"


def test_every_function_has_its_log_group_with_the_stacks_retention(stack_run):
    run = stack_run
    days = settings_of(run).logRetentionDays
    assert days in LOG_RETENTION_DAYS
    for function in ROUTES:
        resource = function_resource(run, function)
        log_group = run.one(LOG_GROUP, name=f"/aws/lambda/{resource['name']}")
        assert log_group["retentionInDays"] == days
        # Created before the function, and the function logs there.
        assert log_group.urn in resource.dependencies
        assert resource["loggingConfig"]["logGroup"] == log_group["name"]


def test_every_function_has_an_errors_alarm_to_the_topic(stack_run):
    run = stack_run
    threshold = settings_of(run).functionErrorsPer5Min
    for function in ROUTES:
        name = function_resource(run, function)["name"]
        alarm = run.one(ALARM, namespace="AWS/Lambda", dimensions={"FunctionName": name})
        assert alarm["metricName"] == "Errors"
        assert alarm["statistic"] == "Sum"
        assert alarm["period"] == 300
        if function.schedule:
            # Once a minute, no retries: at most 5 invocations a period, so "more than 10"
            # could never fire; 3 failed runs of 5 page.
            assert function.schedule_seconds == 60
            assert alarm["threshold"] == 2
        else:
            assert alarm["threshold"] == threshold
        assert alarm["comparisonOperator"] == "GreaterThanThreshold"
        assert alarm["alarmActions"] == [topic_arn(run)]
        assert alarm["okActions"] == [topic_arn(run)]
        assert alarm["treatMissingData"] == "notBreaching"


def policy_violations(run: ProgramRun, function: Function) -> list[str]:
    settings = settings_of(run)
    resource = function_resource(run, function)
    role = run.one(ROLE, arn=resource["role"])
    policies = [p for p in run.of_type(ROLE_POLICY) if p["role"] == role.id]
    assert len(policies) == 1, f"{function.name} should have exactly one inline policy"
    # The function waits for its policy, so its first invocation has its permissions.
    assert policies[0].urn in resource.dependencies
    api = run.one(API)
    return least_privilege_violations(
        policy_document(policies[0]),
        function,
        table_arns={
            t.logical_name: run.one(TABLE, name=t.physical_name(run.stack))["arn"] for t in TABLES
        },
        log_group_arn=run.one(LOG_GROUP, name=f"/aws/lambda/{resource['name']}")["arn"],
        connections_arn=f"{api['executionArn']}/{run.stack}",
        hash_key_parameter_arn=run.one(PARAMETER)["arn"],
        namespace=settings.metricsNamespace,
        tracing=settings.tracing,
        metrics_transport=settings.metricsTransport,
    )


@pytest.mark.parametrize("function", ROUTES, ids=lambda f: f.name)
def test_every_function_policy_is_least_privilege(stack_run, function):
    assert policy_violations(stack_run, function) == []


def _names(run: ProgramRun, **overrides: object) -> StackNames:
    """The stack's names written out from the mocks' account and region (not from the program)."""
    settings = settings_of(run)
    region = run.config["aws:region"]
    names = StackNames(
        account=ACCOUNT,
        region=region,
        api_id="a1b2c3d4e5",
        stage=run.stack,
        prefix=f"{PROJECT}-{run.stack}",
        namespace=settings.metricsNamespace,
        metrics_transport=settings.metricsTransport,
        tracing=settings.tracing,
    )
    return dataclasses.replace(names, **overrides)  # type: ignore[arg-type]


@pytest.mark.parametrize("function", ROUTES, ids=lambda f: f.name)
def test_the_rendered_policy_is_the_document_the_runtime_enforces(stack_run, function):
    """components renders exactly runtime.iam.policy's document: the one the local stack and
    the runtime tests evaluate every call against."""
    resource = function_resource(stack_run, function)
    role = stack_run.one(ROLE, arn=resource["role"])
    rendered = policy_document(stack_run.one(ROLE_POLICY, role=role.id))
    assert rendered == function_policy(function, _names(stack_run))
    # And those names are the deployed resources' (the table, log group and parameter ARNs).
    assert policy_violations(stack_run, function) == []


def test_the_rendered_policies_follow_the_metrics_transport_and_tracing():
    run = run_program("dev", {"metricsTransport": "api", "tracing": False})
    for function in ROUTES:
        role = run.one(ROLE, arn=function_resource(run, function)["role"])
        rendered = policy_document(run.one(ROLE_POLICY, role=role.id))
        expected = function_policy(function, _names(run, metrics_transport="api", tracing=False))
        assert rendered == expected
        assert "cloudwatch:PutMetricData" in json.dumps(rendered)
        assert "xray:" not in json.dumps(rendered)


def test_connection_managers_may_post_and_delete_only_on_their_own_stage(dev):
    api = dev.one(API)
    for function in ROUTES:
        resource = function_resource(dev, function)
        role = dev.one(ROLE, arn=resource["role"])
        document = policy_document(dev.one(ROLE_POLICY, role=role.id))
        grants = [
            r
            for s in document["Statement"]
            if "execute-api:ManageConnections" in s["Action"]
            for r in s["Resource"]
        ]
        if function.closes_connections:
            assert grants == [
                f"{api['executionArn']}/dev/POST/@connections/*",
                f"{api['executionArn']}/dev/DELETE/@connections/*",
            ]
        elif function.manages_connections:
            assert grants == [f"{api['executionArn']}/dev/POST/@connections/*"]
        else:
            assert grants == []


# --- data ----------------------------------------------------------------------------------------


def test_tables_are_rendered_from_the_table_definitions(stack_run):
    run = stack_run
    production = settings_of(run).protect
    assert len(run.of_type(TABLE)) == len(TABLES)
    for table in TABLES:
        resource = run.one(TABLE, name=table.physical_name(run.stack))
        assert resource["billingMode"] == "PAY_PER_REQUEST"
        assert resource["hashKey"] == table.hash_key
        assert {a["name"]: a["type"] for a in resource["attributes"]} == table.key_attributes
        assert resource["ttl"] == {"attributeName": table.ttl_attribute, "enabled": True}
        indexes = {i["name"]: i for i in resource.get("globalSecondaryIndexes") or []}
        assert set(indexes) == {i.name for i in table.indexes}
        for index in table.indexes:
            keys = {k["keyType"]: k["attributeName"] for k in indexes[index.name]["keySchemas"]}
            assert keys.get("HASH") == index.hash_key
            assert keys.get("RANGE") == index.range_key
        assert resource["pointInTimeRecovery"]["enabled"] is production
        assert resource["deletionProtectionEnabled"] is production


def test_point_in_time_recovery_only_in_prod(dev, prod):
    assert not any(t["pointInTimeRecovery"]["enabled"] for t in dev.of_type(TABLE))
    assert all(t["pointInTimeRecovery"]["enabled"] for t in prod.of_type(TABLE))


# --- monitoring ----------------------------------------------------------------------------------


def custom_alarms(run: ProgramRun) -> dict[str, Resource]:
    namespace = settings_of(run).metricsNamespace
    return {a["metricName"]: a for a in run.of_type(ALARM) if a["namespace"] == namespace}


def test_custom_metric_alarms_name_an_emitted_dimension_set(stack_run):
    run = stack_run
    alarms = custom_alarms(run)
    assert set(alarms) == {
        "SessionCreationLatency",
        "ListenerJoinLatency",
        "ServerErrors",
        "DependencyFailures",
        "ActiveSessions",
    }
    for name, alarm in alarms.items():
        spec = metric_names.BY_NAME[name]
        dimensions = alarm["dimensions"]
        assert tuple(sorted(dimensions)) in {tuple(sorted(d)) for d in spec.dimension_sets}
        assert dimensions[metric_names.STAGE] == run.stack
        assert alarm.get("unit") in (None, spec.unit)


def test_custom_alarms_follow_design_thresholds_and_notify_both_ways(stack_run):
    run = stack_run
    settings = settings_of(run)
    alarms = custom_alarms(run)
    creation = alarms["SessionCreationLatency"]
    assert creation["extendedStatistic"] == "p95"
    assert creation["threshold"] == settings.sessionCreationP95Ms
    assert creation["comparisonOperator"] == "GreaterThanThreshold"
    assert (creation["period"], creation["evaluationPeriods"], creation["datapointsToAlarm"]) == (
        300,
        2,
        2,
    )
    join = alarms["ListenerJoinLatency"]
    assert join["extendedStatistic"] == "p95"
    assert join["threshold"] == settings.listenerJoinP95Ms
    for percentile in (creation, join):
        assert percentile["evaluateLowSampleCountPercentiles"] == "evaluate"
        assert not percentile.get("statistic")
    errors = alarms["ServerErrors"]
    assert (errors["statistic"], errors["threshold"], errors["period"]) == (
        "Sum",
        settings.serverErrorsPer5Min,
        300,
    )
    assert errors["dimensions"] == {metric_names.STAGE: run.stack}
    # What a client can cause alone pages no one: no alarm on ConnectionErrors or rate limits.
    assert not {"ConnectionErrors", "RateLimitExceeded"} & set(alarms)
    assert not [
        a for a in run.of_type(ALARM) if a["name"] == f"{PROJECT}-{run.stack}-connection-errors"
    ]
    degraded = alarms["DependencyFailures"]
    assert (degraded["statistic"], degraded["threshold"], degraded["period"]) == (
        "Sum",
        settings.dependencyFailuresPer5Min,
        300,
    )
    assert degraded["comparisonOperator"] == "GreaterThanThreshold"
    assert degraded["dimensions"] == {metric_names.STAGE: run.stack}
    assert degraded["name"] == f"{PROJECT}-{run.stack}-dependency-failures"
    active = alarms["ActiveSessions"]
    assert active["statistic"] == "Maximum"
    assert active["comparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert active["threshold"] == math.ceil(
        round(settings.activeSessionsAlarmRatio * settings.maxActiveSessions, 6)
    )
    for alarm in run.of_type(ALARM):
        assert alarm["treatMissingData"] == "notBreaching"
        assert alarm["alarmActions"] == [topic_arn(run)]
        assert alarm["okActions"] == [topic_arn(run)]


def test_email_subscription_only_where_alarm_email_is_set(dev, prod):
    assert dev.of_type("aws:sns/topicSubscription:TopicSubscription") == []
    subscription = prod.one("aws:sns/topicSubscription:TopicSubscription")
    assert subscription["protocol"] == "email"
    assert subscription["endpoint"] == OPERATOR_ALARM_EMAIL
    assert subscription["topic"] == topic_arn(prod)


def test_dashboard_shows_latency_errors_capacity_lambda_and_api_gateway(stack_run):
    run = stack_run
    settings = settings_of(run)
    body = json.loads(run.one("aws:cloudwatch/dashboard:Dashboard")["dashboardBody"])
    widgets = {w["properties"].get("title"): w for w in body["widgets"]}
    for metric in metric_names.METRICS:
        if metric.unit == "Milliseconds":
            lines = widgets[f"{metric.name} (ms)"]["properties"]["metrics"]
            assert [line[-1]["stat"] for line in lines] == ["p50", "p95", "p99"]
    search = widgets["ConnectionErrors by ErrorCode"]["properties"]["metrics"][0][0]["expression"]
    assert "ErrorCode" in search and 'MetricName="ConnectionErrors"' in search
    assert f'Stage="{run.stack}"' in search
    # Degradations by the dependency or step that degraded, next to the server errors, each
    # with its alarm line on the total; the client-caused errors on the row below, no alarm.
    errors = widgets["ServerErrors by ErrorCode"]
    degraded = widgets["DependencyFailures by Operation"]
    assert (degraded["y"], degraded["x"]) == (errors["y"], errors["x"] + errors["width"])
    assert errors["properties"]["annotations"]["horizontal"][0]["value"] == (
        settings.serverErrorsPer5Min
    )
    client_errors = widgets["ConnectionErrors by ErrorCode"]
    rate_limited = widgets["RateLimitExceeded by Operation"]
    assert client_errors["y"] == rate_limited["y"] == errors["y"] + errors["height"]
    for widget in (client_errors, rate_limited):
        assert "annotations" not in widget["properties"]
    lines = degraded["properties"]["metrics"]
    search = lines[0][0]["expression"]
    assert search.startswith("SEARCH('{" + f"{settings.metricsNamespace},Stage,Operation" + "}")
    assert 'MetricName="DependencyFailures"' in search and f'Stage="{run.stack}"' in search
    assert lines[1][:4] == [settings.metricsNamespace, "DependencyFailures", "Stage", run.stack]
    assert lines[1][4]["stat"] == "Sum"
    assert degraded["properties"]["annotations"]["horizontal"][0]["value"] == (
        settings.dependencyFailuresPer5Min
    )
    capacity = widgets["Active sessions and listeners vs limits"]["properties"]
    assert {"value": settings.maxActiveSessions, "label": "maxActiveSessions"} in capacity[
        "annotations"
    ]["horizontal"]
    names = {function_resource(run, f)["name"] for f in ROUTES}
    for title, metric in (
        ("Lambda errors", "Errors"),
        ("Lambda throttles", "Throttles"),
        ("Lambda duration p95 (ms)", "Duration"),
    ):
        lines = widgets[title]["properties"]["metrics"]
        assert {line[3] for line in lines} == names
        assert {line[1] for line in lines} == {metric}
    api_id = run.one(API).id
    traffic = widgets["API Gateway connections and messages"]["properties"]["metrics"]
    assert {(line[1], line[3], line[5]) for line in traffic} == {
        ("ConnectCount", api_id, run.stack),
        ("MessageCount", api_id, run.stack),
    }
    alarms = widgets["Alarms"]["properties"]["alarms"]
    assert sorted(alarms) == sorted(a["arn"] for a in run.of_type(ALARM))


def test_saved_queries_cover_every_function_log_group(stack_run):
    run = stack_run
    queries = {
        q["name"].rsplit("/", 1)[-1]: q
        for q in run.of_type("aws:cloudwatch/queryDefinition:QueryDefinition")
    }
    assert set(queries) == {"errors-last-hour", "session-lifecycle", "latency-by-operation"}
    groups = {f"/aws/lambda/{function_resource(run, f)['name']}" for f in ROUTES}
    for query in queries.values():
        assert set(query["logGroupNames"]) == groups
        assert query["name"].startswith(f"{PROJECT}-{run.stack}/")
    assert 'level = "ERROR"' in queries["errors-last-hour"]["queryString"]
    assert "correlationId" in queries["session-lifecycle"]["queryString"]
    latency = queries["latency-by-operation"]["queryString"]
    assert "pct(durationMs, 95)" in latency and "by function, operation" in latency


# --- structure and outputs -----------------------------------------------------------------------


def test_every_resource_is_a_child_of_a_component(stack_run):
    for resource in stack_run.resources:
        if resource.type in COMPONENTS:
            assert resource.parent_type in ("pulumi:pulumi:Stack", *COMPONENTS)
        else:
            assert resource.parent_type in COMPONENTS, resource.urn


def test_stack_outputs(stack_run):
    run = stack_run
    outputs = run.outputs
    api = run.one(API)
    region = run.config["aws:region"]
    assert (
        outputs["websocketUrl"] == f"wss://{api.id}.execute-api.{region}.amazonaws.com/{run.stack}"
    )
    assert outputs["connectionsUrl"] == (
        f"https://{api.id}.execute-api.{region}.amazonaws.com/{run.stack}"
    )
    assert outputs["dashboardUrl"].startswith(f"https://{region}.console.aws.amazon.com/cloudwatch")
    assert outputs["dashboardUrl"].endswith(f"{PROJECT}-{run.stack}")
    assert outputs["alarmTopicArn"] == topic_arn(run)
    assert outputs["tableNames"] == {t.logical_name: t.physical_name(run.stack) for t in TABLES}
    assert outputs["userPoolId"] == run.one("aws:cognito/userPool:UserPool").id
    assert outputs["userPoolClientId"] == run.one("aws:cognito/userPoolClient:UserPoolClient").id
    assert len(outputs["lambdaArchiveSha256"]) == 64
