"""SessionApi: the tables, the WebSocket API, one MonitoredFunction per route and the auth.

Everything is rendered from the runtime's contracts: tables from ``runtime.tables.TABLES``,
routes and scheduled jobs from ``runtime.routes``, environment from the settings model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_aws as aws
import pulumi_random as random

from components import naming
from components.function import MonitoredFunction, MonitoredFunctionArgs
from components.packaging import LambdaArchive
from components.stack_settings import StackConfig
from runtime import hash_key
from runtime.iam.policy import StackNames
from runtime.routes import ROUTES, SCHEDULED, WEBSOCKET_ROUTES, Function
from runtime.settings import BY_KEY, PROJECT, StackSettings
from runtime.tables import TABLES, Table
from runtime.throttling import stage_throttling

COMPONENT_TYPE = "session-management:components:SessionApi"

ROUTE_SELECTION_EXPRESSION = "$request.body.action"
# Two-way routes answer with the handler's return body through this route response.
DEFAULT_ROUTE_RESPONSE_KEY = "$default"
API_GATEWAY_LOGS_POLICY = "iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs"
# API Gateway access-log fields. No source IP and no connection ID: like the functions'
# logs (docs/architecture.md#observability), access logs carry neither.
ACCESS_LOG_FIELDS = {
    "requestId": "$context.requestId",
    "extendedRequestId": "$context.extendedRequestId",
    "requestTime": "$context.requestTime",
    "requestTimeEpoch": "$context.requestTimeEpoch",
    "stage": "$context.stage",
    "eventType": "$context.eventType",
    "routeKey": "$context.routeKey",
    "status": "$context.status",
    "messageId": "$context.messageId",
    "integrationStatus": "$context.integration.status",
    "integrationLatency": "$context.integration.latency",
    "integrationError": "$context.integration.error",
    "errorMessage": "$context.error.message",
    "errorType": "$context.error.responseType",
}


def stateful_options(
    settings: StackSettings, parent: pulumi.Resource | None, old_name: str | None = None
) -> pulumi.ResourceOptions:
    """Options of a resource that holds state or a public identity (tables, the user pool,
    the API whose ID is the public URL): Pulumi ``protect`` when the stack's ``protect``
    setting is on, so ``pulumi destroy`` or a replacement cannot delete it by mistake."""
    return pulumi.ResourceOptions(
        parent=parent,
        protect=settings.protect,
        aliases=[pulumi.Alias(name=old_name)] if old_name else None,
    )


def serving_protect(settings: StackSettings) -> bool:
    """Whether the serving path (stage, routes, route responses, integrations, invoke
    permissions, functions and, through them, their roles, logs and alarms) is protected.

    The API is protected with the stack's ``protect`` (its ID is the public URL); if the rest
    were not, a ``pulumi destroy`` would delete them and then stop at the API, leaving a live
    URL that answers nothing. So they follow the same setting: a destroy or a replacement
    stops before any of them is deleted.
    """
    return settings.protect


def _stable_path(path: Path) -> str:
    """The archive's path relative to the project (Pulumi's working directory) if inside it.

    The file name is content-addressed, so the same archive has the same path on every
    machine and checkout, and the state never shows a path-only change.
    """
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return str(path)


@dataclass(frozen=True)
class AuthSettings:
    """Where speaker tokens come from: the stack's Cognito pool, or an external issuer."""

    issuer: pulumi.Output[str]
    audience: pulumi.Output[str]
    jwks_url: pulumi.Output[str]


@dataclass
class SessionApiArgs:
    """Inputs of a SessionApi."""

    config: StackConfig
    archive: LambdaArchive
    alarm_topic_arn: pulumi.Input[str]
    # What every physical name starts with; default ``session-management-<stack>``. A second
    # SessionApi in one program needs its own.
    name_prefix: str | None = None


class SessionApi(pulumi.ComponentResource):
    """The deployed service: DynamoDB tables, the WebSocket API, its functions and auth."""

    tables: dict[str, aws.dynamodb.Table]
    functions: dict[str, MonitoredFunction]
    api: aws.apigatewayv2.Api
    stage: aws.apigatewayv2.Stage
    user_pool: aws.cognito.UserPool | None
    user_pool_client: aws.cognito.UserPoolClient | None

    def __init__(
        self, name: str, args: SessionApiArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(COMPONENT_TYPE, name, None, opts)
        self._name = name
        self._args = args
        self.settings = args.config.settings
        self.stage_name = self.settings.stack
        self.prefix = args.name_prefix or naming.name_prefix(self.stage_name)
        self.tags = {"project": PROJECT, "stack": self.stage_name}
        self.log_retention_days = self.settings.logRetentionDays
        self.archive_sha256 = args.archive.sha256

        self.tables = self._tables()
        self.ip_hash_key = self._ip_hash_key()
        self.ip_hash_key_parameter = self._ip_hash_key_parameter()
        self.user_pool, self.user_pool_client, self.auth = self._auth()
        self.api = self._api()
        # https://{api_id}.execute-api.{region}.amazonaws.com/{stage}, for the @connections API.
        self.connections_url = self.api.api_endpoint.apply(
            lambda endpoint: "https://" + endpoint.split("://", 1)[-1] + f"/{self.stage_name}"
        )
        self.functions = self._functions()
        self.integrations, self.routes, self.route_responses, self.route_permissions = (
            self._websocket_routes()
        )
        self.schedules, self.schedule_targets, self.schedule_permissions = self._schedules()
        self.logging_role, self.logging_account = self._account_logging()
        self.access_log_group, self.stage = self._stage()
        self.websocket_url = self.stage.invoke_url

        self.register_outputs(
            {
                "websocketUrl": self.websocket_url,
                "connectionsUrl": self.connections_url,
                "tableNames": {k: t.name for k, t in self.tables.items()},
                "functionNames": {k: f.function.name for k, f in self.functions.items()},
            }
        )

    # --- names -----------------------------------------------------------------------------------

    def _child_name(self, name: str) -> str:
        """A child's logical name, prefixed with this component's so two instances never
        collide in one program."""
        return f"{self._name}-{name}"

    def _opts(self, name: str, **options: object) -> pulumi.ResourceOptions:
        """A child's options; the alias keeps stacks deployed before the prefix in place."""
        return pulumi.ResourceOptions(
            parent=self,
            aliases=[pulumi.Alias(name=name)],
            **options,  # type: ignore[arg-type]
        )

    def _serving_opts(self, name: str, **options: object) -> pulumi.ResourceOptions:
        """A serving-path child's options: ``_opts`` plus ``protect`` (``serving_protect``)."""
        return self._opts(name, protect=serving_protect(self.settings), **options)

    # --- data ------------------------------------------------------------------------------------

    def _tables(self) -> dict[str, aws.dynamodb.Table]:
        return {table.logical_name: self._table(table) for table in TABLES}

    def _table(self, table: Table) -> aws.dynamodb.Table:
        protect = self.settings.protect
        return aws.dynamodb.Table(
            self._child_name(table.logical_name),
            name=naming.table_name(self.prefix, table.logical_name),
            billing_mode="PAY_PER_REQUEST",
            hash_key=table.hash_key,
            attributes=[
                aws.dynamodb.TableAttributeArgs(name=name, type=kind)
                for name, kind in table.key_attributes.items()
            ],
            global_secondary_indexes=[
                aws.dynamodb.TableGlobalSecondaryIndexArgs(
                    name=index.name,
                    key_schemas=[
                        aws.dynamodb.TableGlobalSecondaryIndexKeySchemaArgs(
                            attribute_name=attribute, key_type=key_type
                        )
                        for attribute, key_type in (
                            (index.hash_key, "HASH"),
                            (index.range_key, "RANGE"),
                        )
                        if attribute
                    ],
                    projection_type="INCLUDE" if index.projected else "ALL",
                    non_key_attributes=list(index.projected) or None,
                )
                for index in table.indexes
            ]
            or None,
            ttl=aws.dynamodb.TableTtlArgs(attribute_name=table.ttl_attribute, enabled=True),
            point_in_time_recovery=aws.dynamodb.TablePointInTimeRecoveryArgs(enabled=protect),
            deletion_protection_enabled=protect,
            tags=self.tags,
            opts=stateful_options(self.settings, self, table.logical_name),
        )

    def _ip_hash_key(self) -> pulumi.Output[str]:
        """The configured HMAC key, or one generated once for this stack and kept in state."""
        configured = self._args.config.ip_hash_key
        if configured is not None:
            return pulumi.Output.secret(configured)
        generated = random.RandomPassword(
            self._child_name("ip-hash-key"),
            length=64,
            special=False,
            opts=self._opts("ip-hash-key"),
        )
        # The provider marks `result` secret; say so here too, so it never depends on that.
        return pulumi.Output.secret(generated.result)

    def _ip_hash_key_parameter(self) -> aws.ssm.Parameter:
        """The key as an SSM SecureString (the AWS-managed ``aws/ssm`` key): the functions read
        it once per cold start, so it is in no function's environment."""
        return aws.ssm.Parameter(
            self._child_name("ip-hash-key-parameter"),
            name=naming.ip_hash_key_parameter(self.prefix),
            type="SecureString",
            value=self.ip_hash_key,
            description=f"HMAC key for IP and connection hashes ({self.stage_name})",
            tags=self.tags,
            opts=self._opts("ip-hash-key-parameter"),
        )

    # --- auth ------------------------------------------------------------------------------------

    def _auth(
        self,
    ) -> tuple[aws.cognito.UserPool | None, aws.cognito.UserPoolClient | None, AuthSettings]:
        settings = self.settings
        if settings.authIssuer:
            issuer = settings.authIssuer.rstrip("/")
            return (
                None,
                None,
                AuthSettings(
                    issuer=pulumi.Output.from_input(issuer),
                    audience=pulumi.Output.from_input(settings.authAudience),
                    jwks_url=pulumi.Output.from_input(
                        settings.authJwksUrl or f"{issuer}/.well-known/jwks.json"
                    ),
                ),
            )
        pool, client = self._cognito()
        # UserPool.endpoint is "cognito-idp.{region}.amazonaws.com/{pool_id}".
        pool_issuer = pulumi.Output.concat("https://", pool.endpoint)
        return (
            pool,
            client,
            AuthSettings(
                issuer=pool_issuer,
                # Speakers send Cognito ID tokens, whose `aud` is the app client ID.
                audience=client.id,
                jwks_url=pulumi.Output.concat(pool_issuer, "/.well-known/jwks.json"),
            ),
        )

    def _cognito(self) -> tuple[aws.cognito.UserPool, aws.cognito.UserPoolClient]:
        pool = aws.cognito.UserPool(
            self._child_name("speakers"),
            name=naming.user_pool_name(self.prefix),
            username_attributes=["email"],
            auto_verified_attributes=["email"],
            admin_create_user_config=aws.cognito.UserPoolAdminCreateUserConfigArgs(
                allow_admin_create_user_only=True
            ),
            password_policy=aws.cognito.UserPoolPasswordPolicyArgs(
                minimum_length=12,
                require_lowercase=True,
                require_uppercase=True,
                require_numbers=True,
                require_symbols=False,
                temporary_password_validity_days=7,
            ),
            account_recovery_setting=aws.cognito.UserPoolAccountRecoverySettingArgs(
                recovery_mechanisms=[
                    aws.cognito.UserPoolAccountRecoverySettingRecoveryMechanismArgs(
                        name="verified_email", priority=1
                    )
                ]
            ),
            deletion_protection="ACTIVE" if self.settings.protect else "INACTIVE",
            tags=self.tags,
            opts=stateful_options(self.settings, self, "speakers"),
        )
        client = aws.cognito.UserPoolClient(
            self._child_name("speakers-client"),
            name=naming.user_pool_client_name(self.prefix),
            user_pool_id=pool.id,
            generate_secret=False,
            explicit_auth_flows=[
                "ALLOW_USER_SRP_AUTH",
                "ALLOW_USER_PASSWORD_AUTH",
                "ALLOW_REFRESH_TOKEN_AUTH",
            ],
            prevent_user_existence_errors="ENABLED",
            enable_token_revocation=True,
            id_token_validity=60,
            access_token_validity=60,
            refresh_token_validity=30,
            token_validity_units=aws.cognito.UserPoolClientTokenValidityUnitsArgs(
                id_token="minutes",  # noqa: S106 - units, not secrets
                access_token="minutes",  # noqa: S106
                refresh_token="days",  # noqa: S106
            ),
            opts=self._opts("speakers-client"),
        )
        return pool, client

    # --- functions -------------------------------------------------------------------------------

    def _api(self) -> aws.apigatewayv2.Api:
        return aws.apigatewayv2.Api(
            self._child_name("websocket-api"),
            name=self.prefix,
            description=f"Session management WebSocket API ({self.stage_name})",
            protocol_type="WEBSOCKET",
            route_selection_expression=ROUTE_SELECTION_EXPRESSION,
            tags=self.tags,
            # Its ID is in the public URL every client has: replacing it breaks them all.
            opts=stateful_options(self.settings, self, "websocket-api"),
        )

    def environment(self) -> dict[str, pulumi.Input[str]]:
        """Every function's environment: the settings plus where its resources are."""
        env: dict[str, pulumi.Input[str]] = dict(self.settings.runtime_environment())
        env.update({table.env: self.tables[table.logical_name].name for table in TABLES})
        env["CONNECTIONS_ENDPOINT"] = self.connections_url
        env[hash_key.PARAMETER_ENV] = self.ip_hash_key_parameter.name
        env[BY_KEY["authIssuer"].env] = self.auth.issuer
        env[BY_KEY["authAudience"].env] = self.auth.audience
        env[BY_KEY["authJwksUrl"].env] = self.auth.jwks_url
        return env

    def stack_names(self) -> pulumi.Output[StackNames]:
        """The names the functions' IAM policies refer to (``runtime.iam.policy``): partition,
        region, account and API ID from the API's execution ARN
        (``arn:aws:execute-api:{region}:{account}:{api_id}``), the rest from the settings."""

        def from_arn(execution_arn: str) -> StackNames:
            _, partition, _, region, account, api_id = execution_arn.split(":", 5)
            return StackNames(
                account=account,
                region=region,
                api_id=api_id,
                stage=self.stage_name,
                prefix=self.prefix,
                namespace=self.settings.metricsNamespace,
                metrics_transport=self.settings.metricsTransport,
                tracing=self.settings.tracing,
                partition=partition,
            )

        names: pulumi.Output[StackNames] = self.api.execution_arn.apply(from_arn)
        return names

    def function_name(self, function: Function) -> str:
        # The stack name was checked against every name it flows into (naming.check_stack_name).
        return naming.function_name(self.prefix, function.name)

    def _functions(self) -> dict[str, MonitoredFunction]:
        archive = self._args.archive
        code = pulumi.FileArchive(_stable_path(archive.path))
        environment = self.environment()
        names = self.stack_names()
        return {
            function.name: MonitoredFunction(
                self._child_name(function.name),
                MonitoredFunctionArgs(
                    function=function,
                    function_name=self.function_name(function),
                    code=code,
                    source_code_hash=archive.source_code_hash,
                    environment=environment,
                    names=names,
                    log_retention_days=self.log_retention_days,
                    tracing=self.settings.tracing,
                    alarm_topic_arn=self._args.alarm_topic_arn,
                    errors_threshold=self.settings.functionErrorsPer5Min,
                    runbook_base_url=self.settings.runbookBaseUrl,
                    tags=self.tags,
                ),
                opts=self._serving_opts(function.name),
            )
            for function in ROUTES
        }

    # --- triggers --------------------------------------------------------------------------------

    def _websocket_routes(
        self,
    ) -> tuple[
        dict[str, aws.apigatewayv2.Integration],
        dict[str, aws.apigatewayv2.Route],
        dict[str, aws.apigatewayv2.RouteResponse],
        dict[str, aws.lambda_.Permission],
    ]:
        integrations, routes, responses, permissions = {}, {}, {}, {}
        for function in WEBSOCKET_ROUTES:
            assert function.route_key  # WEBSOCKET_ROUTES only holds routed functions
            target = self.functions[function.name].function
            integration = aws.apigatewayv2.Integration(
                self._child_name(f"{function.name}-integration"),
                api_id=self.api.id,
                integration_type="AWS_PROXY",
                integration_method="POST",
                integration_uri=target.invoke_arn,
                description=f"{function.route_key} → {function.handler}",
                opts=self._serving_opts(f"{function.name}-integration"),
            )
            route = aws.apigatewayv2.Route(
                self._child_name(f"{function.name}-route"),
                api_id=self.api.id,
                route_key=function.route_key,
                operation_name=function.operation,
                target=pulumi.Output.concat("integrations/", integration.id),
                route_response_selection_expression=(
                    DEFAULT_ROUTE_RESPONSE_KEY if function.replies else None
                ),
                opts=self._serving_opts(f"{function.name}-route"),
            )
            if function.replies:
                responses[function.name] = aws.apigatewayv2.RouteResponse(
                    self._child_name(f"{function.name}-route-response"),
                    api_id=self.api.id,
                    route_id=route.id,
                    route_response_key=DEFAULT_ROUTE_RESPONSE_KEY,
                    opts=self._serving_opts(f"{function.name}-route-response"),
                )
            # Only this API's stage, only this route, may invoke the function.
            permissions[function.name] = aws.lambda_.Permission(
                self._child_name(f"{function.name}-invoke"),
                action="lambda:InvokeFunction",
                function=target.name,
                principal="apigateway.amazonaws.com",
                source_arn=pulumi.Output.concat(
                    self.api.execution_arn, "/", self.stage_name, "/", function.route_key
                ),
                opts=self._serving_opts(f"{function.name}-invoke"),
            )
            integrations[function.name] = integration
            routes[function.name] = route
        return integrations, routes, responses, permissions

    def _schedules(
        self,
    ) -> tuple[
        dict[str, aws.cloudwatch.EventRule],
        dict[str, aws.cloudwatch.EventTarget],
        dict[str, aws.lambda_.Permission],
    ]:
        rules, targets, permissions = {}, {}, {}
        for function in SCHEDULED:
            target = self.functions[function.name].function
            rule = aws.cloudwatch.EventRule(
                self._child_name(f"{function.name}-schedule"),
                name=self.function_name(function),
                description=f"Runs {function.handler} {function.schedule}",
                schedule_expression=function.schedule,
                tags=self.tags,
                opts=self._opts(f"{function.name}-schedule"),
            )
            targets[function.name] = aws.cloudwatch.EventTarget(
                self._child_name(f"{function.name}-target"),
                rule=rule.name,
                arn=target.arn,
                target_id=function.name,
                # A missed run is not redelivered: the next scheduled run does its work.
                retry_policy=aws.cloudwatch.EventTargetRetryPolicyArgs(
                    maximum_retry_attempts=0,
                    maximum_event_age_in_seconds=function.schedule_seconds,
                ),
                opts=self._opts(f"{function.name}-target"),
            )
            permissions[function.name] = aws.lambda_.Permission(
                self._child_name(f"{function.name}-invoke"),
                action="lambda:InvokeFunction",
                function=target.name,
                principal="events.amazonaws.com",
                source_arn=rule.arn,
                opts=self._opts(f"{function.name}-invoke"),
            )
            rules[function.name] = rule
        return rules, targets, permissions

    # --- stage -----------------------------------------------------------------------------------

    def _account_logging(self) -> tuple[aws.iam.Role | None, aws.apigateway.Account | None]:
        """The region-wide role API Gateway needs to write any CloudWatch logs.

        There is one such setting per account and region, so exactly one stack manages it:
        the one with ``apiGatewayAccountOwner`` on. Its role and the setting are retained on
        destroy, so tearing the owner down never breaks another stack's logging.
        """
        if not self.settings.apiGatewayAccountOwner:
            return None, None
        retained = {"retain_on_delete": True}
        role = aws.iam.Role(
            self._child_name("apigateway-logs-role"),
            assume_role_policy=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "apigateway.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                        }
                    ],
                }
            ),
            description="Lets API Gateway write logs to CloudWatch Logs (account setting)",
            tags=self.tags,
            opts=self._opts("apigateway-logs-role", **retained),
        )
        partition = aws.get_partition_output(opts=pulumi.InvokeOutputOptions(parent=self))
        attachment = aws.iam.RolePolicyAttachment(
            self._child_name("apigateway-logs-policy"),
            role=role.name,
            policy_arn=pulumi.Output.concat(
                "arn:", partition.partition, ":", API_GATEWAY_LOGS_POLICY
            ),
            opts=self._opts("apigateway-logs-policy", **retained),
        )
        account = aws.apigateway.Account(
            self._child_name("apigateway-account"),
            cloudwatch_role_arn=role.arn,
            opts=self._opts("apigateway-account", depends_on=[attachment], **retained),
        )
        return role, account

    def _stage(self) -> tuple[aws.cloudwatch.LogGroup | None, aws.apigatewayv2.Stage]:
        """The stage, with JSON access logs when this stack owns the account's logging role.

        A WebSocket stage with access logs (or execution logging) fails to deploy while the
        account has no CloudWatch role, and a stack that does not own that setting cannot
        know it is set; so only the owner logs access, and nobody turns on execution logging.
        """
        access_logs = None
        access_log_settings = None
        if self.logging_account is not None:
            access_logs = aws.cloudwatch.LogGroup(
                self._child_name("access-logs"),
                name=naming.access_log_group(self.prefix),
                retention_in_days=self.log_retention_days,
                tags=self.tags,
                opts=self._opts("access-logs"),
            )
            access_log_settings = aws.apigatewayv2.StageAccessLogSettingsArgs(
                destination_arn=access_logs.arn,
                format=json.dumps(ACCESS_LOG_FIELDS, separators=(",", ":")),
            )
        rate, burst = stage_throttling(self.settings)
        stage = aws.apigatewayv2.Stage(
            self._child_name("stage"),
            api_id=self.api.id,
            name=self.stage_name,
            description=f"{self.stage_name} stage, redeployed on every route change",
            auto_deploy=True,
            access_log_settings=access_log_settings,
            default_route_settings=aws.apigatewayv2.StageDefaultRouteSettingsArgs(
                throttling_rate_limit=rate,
                throttling_burst_limit=burst,
                data_trace_enabled=False,
                detailed_metrics_enabled=False,
                logging_level="OFF",
            ),
            tags=self.tags,
            # The first automatic deployment should already contain every route.
            opts=self._serving_opts(
                "stage",
                depends_on=[
                    *([self.logging_account] if self.logging_account is not None else []),
                    *self.routes.values(),
                    *self.route_responses.values(),
                    *self.integrations.values(),
                ],
            ),
        )
        return access_logs, stage
