"""A program with two SessionApi + Monitoring instances (tests: their names never collide)."""

import pulumi

from components.api import SessionApi, SessionApiArgs
from components.monitoring import AlarmTopic, AlarmTopicArgs, Monitoring, MonitoringArgs
from components.packaging import build_lambda_archive
from components.stack_settings import load_stack_settings

config = load_stack_settings()
archive = build_lambda_archive()
for name, prefix in (("blue", "session-management-dev-blue"), ("green", None)):
    topic = AlarmTopic(
        f"{name}-alarms", AlarmTopicArgs(settings=config.settings, name_prefix=prefix)
    )
    api = SessionApi(
        name,
        SessionApiArgs(
            config=config, archive=archive, alarm_topic_arn=topic.arn, name_prefix=prefix
        ),
    )
    Monitoring(
        f"{name}-monitoring",
        MonitoringArgs(settings=config.settings, api=api, alarm_topic_arn=topic.arn),
    )
    pulumi.export(f"{name}WebsocketUrl", api.websocket_url)
