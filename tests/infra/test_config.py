"""Stack configuration: the files agree with the settings model, and edits reach the resources."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pulumi
import pytest
import yaml

from runtime.routes import ROUTES
from runtime.settings import (
    AWS_PROVIDER_KEYS,
    BY_KEY,
    PROJECT,
    SETTINGS,
    Setting,
    parse_settings,
)
from tests.infra.harness import ROOT, ProgramRun, policy_document, run_program, stack_file_config

PULUMI_TYPES = {int: "integer", bool: "boolean", str: "string", float: "string"}
STACK_FILES = sorted(ROOT.glob("Pulumi.*.yaml"))
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"


def project_file() -> dict:
    return yaml.safe_load((ROOT / "Pulumi.yaml").read_text())


# --- the files -----------------------------------------------------------------------------------


def test_project_file_runs_python_with_uv():
    project = project_file()
    assert project["name"] == PROJECT
    assert project["runtime"]["name"] == "python"
    assert project["runtime"]["options"]["toolchain"] == "uv"


def test_project_file_declares_every_setting_with_the_models_type_and_default():
    declared = project_file()["config"]
    assert list(declared) == [s.key for s in SETTINGS]
    for setting in SETTINGS:
        entry = declared[setting.key]
        assert entry["type"] == PULUMI_TYPES[setting.kind], setting.key
        assert "default" in entry, f"{setting.key}: without a default Pulumi requires it"
        # The CLI hands the program the default as a string; the model must read it back
        # as exactly its own default.
        raw = entry["default"]
        as_cli_string = str(raw).lower() if isinstance(raw, bool) else str(raw)
        parsed = setting.parse(as_cli_string) if as_cli_string != "" else setting.default
        assert parsed == setting.default, setting.key
        assert entry.get("description"), setting.key
        # Pulumi refuses a plaintext default for a `secret: true` key.
        assert not entry.get("secret"), setting.key


def test_there_are_dev_and_prod_stack_files():
    assert {p.name for p in STACK_FILES} >= {"Pulumi.dev.yaml", "Pulumi.prod.yaml"}


@pytest.mark.parametrize("path", STACK_FILES, ids=lambda p: p.name)
def test_stack_files_set_only_known_settings_with_valid_values(path: Path):
    stack = path.name.split(".")[1]
    config = stack_file_config(stack)
    assert "aws:region" in config
    namespaces = {key.split(":", 1)[0] for key in config}
    assert namespaces <= {PROJECT, "aws"}, namespaces
    raw = {k.split(":", 1)[1]: v for k, v in config.items() if k.startswith(f"{PROJECT}:")}
    assert set(raw) <= set(BY_KEY), set(raw) - set(BY_KEY)
    assert not any(BY_KEY[k].secret for k in raw), "secrets never go in plaintext stack files"
    parse_settings(stack, raw)  # raises on any invalid value


def test_prod_sets_an_alarm_email():
    assert stack_file_config("prod")[f"{PROJECT}:alarmEmail"]


def test_the_committed_prod_placeholder_is_refused_with_a_message_to_replace_it():
    # The stack file as committed: `pulumi up --stack prod` must stop until it is replaced.
    with pytest.raises(pulumi.RunError, match=r"alarmEmail' is .*placeholder.*replace it"):
        run_program("prod")


@pytest.mark.parametrize(
    "address",
    [
        "ops@example.com",
        "ops@EXAMPLE.org",
        "ops@example.net",
        "ops@mail.example.com",
        "ops@company.example",
        "ops@alarms.invalid",
        "ops@ci.test",
        "ops@box.localhost",
    ],
)
def test_a_reserved_example_domain_is_refused_when_protected(address: str):
    with pytest.raises(pulumi.RunError, match="reserved and receives no mail"):
        run_program("dev", {"protect": True, "alarmEmail": address})


def test_a_bare_localhost_address_is_refused_by_its_form():
    with pytest.raises(pulumi.RunError, match="alarmEmail' must be an email address"):
        run_program("dev", {"protect": True, "alarmEmail": "ops@localhost"})


def test_a_reserved_example_domain_is_fine_without_protect():
    run = run_program("dev", {"alarmEmail": "me@example.com"})
    assert run.one("aws:sns/topicSubscription:TopicSubscription")["endpoint"] == "me@example.com"


@pytest.mark.parametrize("address", ["ops@examples.com", "ops@testing.io", "ops@invalid.org"])
def test_real_domains_that_only_look_reserved_are_accepted(address: str):
    run_program("dev", {"protect": True, "alarmEmail": address})


def test_retention_shorter_than_a_sessions_life_between_refreshes_is_refused():
    # 2 h: a session created at 0 would expire at 120 min, before or as its speaker refreshes
    # (pushed from 100 min + up to 15 min of spread, answered by the 120-minute cutoff).
    with pytest.raises(pulumi.RunError, match=r"dataRetentionHours' must be ≥ 3"):
        run_program("dev", {"dataRetentionHours": 2})
    run_program("dev", {"dataRetentionHours": 3})


def test_refresh_plus_spread_beyond_the_warning_is_refused():
    with pytest.raises(pulumi.RunError, match=r"must be ≥ connectionRefreshMinutes \+ conn"):
        run_program("dev", {"connectionRefreshMinutes": 100, "connectionRefreshSpreadMinutes": 16})
    run_program("dev", {"connectionRefreshMinutes": 100, "connectionRefreshSpreadMinutes": 15})


def test_the_warning_must_come_before_the_two_hour_cutoff():
    with pytest.raises(
        pulumi.RunError, match="connectionWarningMinutes' must be an integer ≥ 1 and ≤ 119"
    ):
        run_program("dev", {"connectionWarningMinutes": 120})


# --- invalid values stop the program with the key and the allowed range --------------------------


def invalid_values(setting: Setting) -> list[str]:
    if setting.choices:
        return ["TRACE"]
    if setting.kind is bool:
        return ["maybe"]
    if setting.key == "alarmEmail":
        return ["not-an-email"]
    if setting.kind not in (int, float):
        return []
    values = ["many"]
    if setting.kind is int:
        values.append("2.5")
    if setting.minimum is not None:
        low = setting.minimum if setting.exclusive_minimum else setting.minimum - 1
        values.append(str(int(low) if setting.kind is int else low))
    if setting.maximum is not None:
        values.append(str(int(setting.maximum) + 1))
    return values


INVALID = [(s, v) for s in SETTINGS for v in invalid_values(s)]


@pytest.mark.parametrize(("setting", "value"), INVALID, ids=[f"{s.key}={v}" for s, v in INVALID])
def test_each_invalid_value_fails_with_a_clear_message(setting: Setting, value: str):
    with pytest.raises(pulumi.RunError) as failure:
        run_program("dev", {setting.key: value})
    message = str(failure.value)
    assert f"'{PROJECT}:{setting.key}'" in message
    assert setting.allowed in message
    assert value in message


def test_a_misspelt_key_is_rejected_by_name():
    with pytest.raises(pulumi.RunError, match=f"{PROJECT}:maxActiveSesions") as failure:
        run_program("dev", {"maxActiveSesions": "250"})
    assert f"(did you mean {PROJECT}:maxActiveSessions?)" in str(failure.value)


def test_a_key_in_the_wrong_case_gets_its_spelling():
    with pytest.raises(pulumi.RunError, match=f"{PROJECT}:loglevel") as failure:
        run_program("dev", {"loglevel": "INFO"})
    assert f"(did you mean {PROJECT}:logLevel?)" in str(failure.value)


def test_an_unknown_key_with_nothing_close_gets_no_guess():
    with pytest.raises(pulumi.RunError, match=f"{PROJECT}:zzqqxx") as failure:
        run_program("dev", {"zzqqxx": "1"})
    assert "did you mean" not in str(failure.value)


def test_a_misspelt_aws_key_is_rejected_by_name():
    with pytest.raises(pulumi.RunError, match="aws:regon") as failure:
        run_program("dev", {"aws:regon": "us-east-1"})
    assert "(did you mean aws:region?)" in str(failure.value)


def test_aws_keys_the_provider_reads_are_accepted():
    run = run_program("dev", {"aws:skipCredentialsValidation": "true", "aws:maxRetries": "5"})
    assert run.of_type("aws:lambda/function:Function")


def test_the_accepted_aws_keys_are_the_installed_providers():
    import pulumi_aws

    source = (Path(pulumi_aws.__file__).parent / "config" / "vars.py").read_text()
    assert set(re.findall(r"__config__\.get\w*\('(\w+)'\)", source)) == AWS_PROVIDER_KEYS


def test_log_level_in_any_case_reaches_the_functions_upper_case():
    run = run_program("dev", {"logLevel": "debug"})
    functions = run.of_type("aws:lambda/function:Function")
    assert {f["environment"]["variables"]["LOG_LEVEL"] for f in functions} == {"DEBUG"}


def test_the_retired_connection_errors_threshold_names_its_replacement():
    with pytest.raises(pulumi.RunError) as failure:
        run_program("dev", {"connectionErrorsPer5Min": "100"})
    message = str(failure.value)
    assert f"'{PROJECT}:connectionErrorsPer5Min' was retired" in message
    assert f"'{PROJECT}:serverErrorsPer5Min'" in message
    assert "ServerErrors" in message and "remove" in message


def test_server_errors_alarm_defaults_to_ten_per_five_minutes(dev):
    assert f"{PROJECT}:serverErrorsPer5Min" not in dev.config
    alarm = alarm_on(dev, "ServerErrors")
    assert (alarm["threshold"], alarm["statistic"], alarm["period"]) == (10, "Sum", 300)
    assert alarm["name"] == f"{PROJECT}-dev-server-errors"


def test_metrics_transport_reaches_every_function_and_defaults_to_emf(dev):
    assert f"{PROJECT}:metricsTransport" not in dev.config
    functions = dev.of_type("aws:lambda/function:Function")
    assert functions and {
        f["environment"]["variables"]["METRICS_TRANSPORT"] for f in functions
    } == {"emf"}
    api = run_program("dev", {"metricsTransport": "API"})
    assert {
        f["environment"]["variables"]["METRICS_TRANSPORT"]
        for f in api.of_type("aws:lambda/function:Function")
    } == {"api"}


def test_prod_without_an_alarm_email_is_rejected():
    with pytest.raises(pulumi.RunError, match=r"alarmEmail' is required when '.*protect' is on"):
        run_program("prod", remove=["alarmEmail"])


def test_warning_before_refresh_is_rejected():
    with pytest.raises(pulumi.RunError, match="connectionWarningMinutes' must be ≥"):
        run_program(
            "dev",
            {
                "connectionRefreshMinutes": 110,
                "connectionRefreshSpreadMinutes": 0,
                "connectionWarningMinutes": 105,
            },
        )


def test_a_plaintext_ip_hash_key_is_rejected():
    with pytest.raises(pulumi.RunError, match="--secret ipHashKey"):
        run_program("dev", {"ipHashKey": "not-so-secret"})


def test_an_issuer_without_audience_is_rejected():
    with pytest.raises(pulumi.RunError, match="authAudience' is required when authIssuer"):
        run_program("dev", {"authIssuer": "https://issuer.example.com"})


# --- edits reach the resources -------------------------------------------------------------------


def alarm_on(run: ProgramRun, metric: str):
    return run.one(ALARM, metricName=metric, namespace=run_namespace(run))


def run_namespace(run: ProgramRun) -> str:
    return run.config.get(f"{PROJECT}:metricsNamespace", BY_KEY["metricsNamespace"].default)


def test_active_sessions_threshold_follows_max_active_sessions():
    run = run_program("dev", {"maxActiveSessions": 250})
    assert alarm_on(run, "ActiveSessions")["threshold"] == 225
    assert (
        run.one("aws:lambda/function:Function", name=f"{PROJECT}-dev-connect")["environment"][
            "variables"
        ]["MAX_ACTIVE_SESSIONS"]
        == "250"
    )


def test_dependency_failures_alarm_defaults_to_twenty_per_five_minutes(dev):
    # The dev stack file leaves it unset: the default (the same in Pulumi.yaml) applies.
    assert f"{PROJECT}:dependencyFailuresPer5Min" not in dev.config
    assert alarm_on(dev, "DependencyFailures")["threshold"] == 20


def test_default_ratio_and_limit_give_a_whole_threshold(dev):
    # 0.9 × 100 is 90.00000000000001 in floating point; the alarm must still fire at 90.
    assert alarm_on(dev, "ActiveSessions")["threshold"] == 90


def test_alarm_thresholds_follow_config_edits():
    run = run_program(
        "dev",
        {
            "sessionCreationP95Ms": 1500,
            "listenerJoinP95Ms": 750,
            "serverErrorsPer5Min": 42,
            "functionErrorsPer5Min": 3,
            "dependencyFailuresPer5Min": 7,
            "activeSessionsAlarmRatio": 0.5,
            "metricsNamespace": "Sessions/Test",
            # The PutMetricData grant (and its namespace condition) exists only with api.
            "metricsTransport": "api",
        },
    )
    assert alarm_on(run, "SessionCreationLatency")["threshold"] == 1500
    assert alarm_on(run, "ListenerJoinLatency")["threshold"] == 750
    assert alarm_on(run, "ServerErrors")["threshold"] == 42
    assert alarm_on(run, "DependencyFailures")["threshold"] == 7
    dashboard = json.loads(run.one("aws:cloudwatch/dashboard:Dashboard")["dashboardBody"])
    degraded = next(
        w["properties"]
        for w in dashboard["widgets"]
        if w["properties"]["title"] == "DependencyFailures by Operation"
    )
    assert degraded["annotations"]["horizontal"][0]["value"] == 7
    assert "SEARCH('{Sessions/Test,Stage,Operation}" in degraded["metrics"][0][0]["expression"]
    assert alarm_on(run, "ActiveSessions")["threshold"] == 50
    lambda_alarms = [a for a in run.of_type(ALARM) if a["namespace"] == "AWS/Lambda"]
    assert len(lambda_alarms) == len(ROUTES)
    scheduled = {f"{PROJECT}-dev-{f.name}" for f in ROUTES if f.schedule}
    assert {
        a["threshold"] for a in lambda_alarms if a["dimensions"]["FunctionName"] not in scheduled
    } == {3}
    # A once-a-minute job makes 5 invocations a period: capped at 2 (3 failed runs page).
    assert {
        a["threshold"] for a in lambda_alarms if a["dimensions"]["FunctionName"] in scheduled
    } == {2}
    for policy in run.of_type("aws:iam/rolePolicy:RolePolicy"):
        statements = policy_document(policy)["Statement"]
        metrics = next(s for s in statements if s["Action"] == ["cloudwatch:PutMetricData"])
        assert metrics["Condition"]["StringEquals"]["cloudwatch:namespace"] == "Sessions/Test"


def test_alarm_email_adds_a_subscription_in_any_stack():
    run = run_program("dev", {"alarmEmail": "oncall@example.org"})
    subscription = run.one("aws:sns/topicSubscription:TopicSubscription")
    assert subscription["endpoint"] == "oncall@example.org"


def test_log_retention_reaches_every_log_group_and_no_longer_follows_data_retention():
    run = run_program(
        "dev", {"logRetentionDays": 90, "dataRetentionHours": 3, "apiGatewayAccountOwner": True}
    )
    groups = run.of_type("aws:cloudwatch/logGroup:LogGroup")
    assert len(groups) == len(ROUTES) + 1  # the functions' and the stage's access logs
    assert {g["retentionInDays"] for g in groups} == {90}


def test_the_emf_transport_grants_no_put_metric_data():
    run = run_program("dev", {"metricsTransport": "emf"})
    policies = run.of_type("aws:iam/rolePolicy:RolePolicy")
    assert policies
    for policy in policies:
        assert "cloudwatch:PutMetricData" not in json.dumps(policy_document(policy))


def test_tracing_off_removes_xray_everywhere():
    run = run_program("dev", {"tracing": False})
    for function in run.of_type("aws:lambda/function:Function"):
        assert function["tracingConfig"]["mode"] == "PassThrough"
    for policy in run.of_type("aws:iam/rolePolicy:RolePolicy"):
        actions = json.dumps(policy_document(policy))
        assert "xray:" not in actions


def _hash_key_parameter(run: ProgramRun):
    parameter = run.one("aws:ssm/parameter:Parameter")
    assert parameter["type"] == "SecureString"
    assert "value" in parameter.secret_inputs  # the key stays a secret in state
    return parameter


def test_a_configured_ip_hash_key_is_stored_in_ssm_and_none_is_generated():
    run = run_program(
        "dev", {"ipHashKey": "s3cr3t-hmac-key-from-config"}, secret_keys=["ipHashKey"]
    )
    assert run.of_type("random:index/randomPassword:RandomPassword") == []
    assert _hash_key_parameter(run)["value"] == "s3cr3t-hmac-key-from-config"
    for function in run.of_type("aws:lambda/function:Function"):
        assert "s3cr3t-hmac-key-from-config" not in json.dumps(function.inputs, default=str)


def test_an_unset_ip_hash_key_is_generated_once_per_stack_into_ssm(dev):
    password = dev.one("random:index/randomPassword:RandomPassword")
    assert password["length"] >= 32
    parameter = _hash_key_parameter(dev)
    assert parameter["value"] == password["result"]
    assert parameter["name"] == f"/{PROJECT}-dev/ip-hash-key"
    for function in dev.of_type("aws:lambda/function:Function"):
        variables = function["environment"]["variables"]
        assert "IP_HASH_KEY" not in variables
        assert variables["IP_HASH_KEY_PARAMETER"] == parameter["name"]
        assert password["result"] not in json.dumps(function.inputs, default=str)


def test_every_function_may_read_only_the_hash_key_parameter(dev):
    parameter = _hash_key_parameter(dev)
    for function in ROUTES:
        deployed = dev.one("aws:lambda/function:Function", name=f"{PROJECT}-dev-{function.name}")
        role = dev.one("aws:iam/role:Role", arn=deployed["role"])
        policy = dev.one("aws:iam/rolePolicy:RolePolicy", role=role.id)
        statements = policy_document(policy)["Statement"]
        ssm = [s for s in statements if any(a.startswith("ssm:") for a in s["Action"])]
        # The metrics reporter hashes nothing, so it may not read the key at all.
        expected = [
            {
                "Sid": "ReadHashKey",
                "Effect": "Allow",
                "Action": ["ssm:GetParameter"],
                "Resource": [parameter["arn"]],
            }
        ]
        assert ssm == (expected if function.name != "metrics-reporter" else []), function.name


def test_an_external_issuer_replaces_the_cognito_pool():
    run = run_program(
        "dev",
        {"authIssuer": "https://login.example.com/", "authAudience": "speaker-app"},
    )
    assert run.of_type("aws:cognito/userPool:UserPool") == []
    assert run.of_type("aws:cognito/userPoolClient:UserPoolClient") == []
    env = run.of_type("aws:lambda/function:Function")[0]["environment"]["variables"]
    assert env["AUTH_ISSUER"] == "https://login.example.com"
    assert env["AUTH_AUDIENCE"] == "speaker-app"
    assert env["AUTH_JWKS_URL"] == "https://login.example.com/.well-known/jwks.json"
    assert "userPoolId" not in run.outputs
    assert run.outputs["authIssuer"] == "https://login.example.com"


def test_stage_throttling_follows_the_capacity_limits():
    small = run_program("dev", {"maxActiveSessions": 1, "maxListenersPerSession": 1})
    large = run_program("dev", {"maxActiveSessions": 50, "maxListenersPerSession": 300})
    rate = {
        name: run.one("aws:apigatewayv2/stage:Stage")["defaultRouteSettings"]
        for name, run in (("small", small), ("large", large))
    }
    assert rate["small"]["throttlingRateLimit"] < rate["large"]["throttlingRateLimit"]
    assert rate["small"]["throttlingBurstLimit"] <= rate["large"]["throttlingBurstLimit"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"authAudience": "speaker-app"}, "apply only with authIssuer"),
        ({"authJwksUrl": "https://login.example.com/keys"}, "apply only with authIssuer"),
        (
            {"authIssuer": "http://login.example.com", "authAudience": "speaker-app"},
            "authIssuer' must be an https:// URL",
        ),
    ],
)
def test_inconsistent_auth_settings_are_rejected(overrides: dict[str, str], message: str):
    with pytest.raises(pulumi.RunError, match=message):
        run_program("dev", overrides)


def test_a_stack_name_too_long_for_lambda_names_is_rejected():
    stack = "a-very-long-stack-name-for-lambda"
    with pytest.raises(pulumi.RunError) as failure:
        run_program(stack, use_stack_file=False)
    message = str(failure.value)
    assert f"stack name '{stack}' cannot be deployed" in message
    assert "Lambda function name" in message and "(1-64 allowed)" in message
    assert "Use a stack name of at most 26 letters, digits, '-' and '_'" in message
