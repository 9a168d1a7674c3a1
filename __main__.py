"""The session-management Pulumi program: settings → SessionApi → monitoring → exports.

Composition only; every resource is defined in ``components/`` from the runtime's contracts.
"""

import pulumi

from components.api import SessionApi, SessionApiArgs
from components.monitoring import AlarmTopic, AlarmTopicArgs, Monitoring, MonitoringArgs
from components.packaging import build_lambda_archive
from components.stack_settings import load_stack_settings

config = load_stack_settings()
settings = config.settings

alarm_topic = AlarmTopic("alarms", AlarmTopicArgs(settings=settings))
api = SessionApi(
    "session-api",
    SessionApiArgs(config=config, archive=build_lambda_archive(), alarm_topic_arn=alarm_topic.arn),
)
monitoring = Monitoring(
    "monitoring", MonitoringArgs(settings=settings, api=api, alarm_topic_arn=alarm_topic.arn)
)

pulumi.export("websocketUrl", api.websocket_url)
pulumi.export("connectionsUrl", api.connections_url)
pulumi.export("dashboardUrl", monitoring.dashboard_url)
pulumi.export("alarmTopicArn", alarm_topic.arn)
pulumi.export("tableNames", {name: table.name for name, table in api.tables.items()})
pulumi.export("functionNames", {name: f.function.name for name, f in api.functions.items()})
pulumi.export("authIssuer", api.auth.issuer)
pulumi.export("authAudience", api.auth.audience)
pulumi.export("authJwksUrl", api.auth.jwks_url)
if api.user_pool is not None and api.user_pool_client is not None:
    pulumi.export("userPoolId", api.user_pool.id)
    pulumi.export("userPoolClientId", api.user_pool_client.id)
pulumi.export("lambdaArchiveSha256", api.archive_sha256)
