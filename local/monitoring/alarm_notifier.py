"""What an alarm transition does locally: one line on stderr and a message to the SNS topic.

At start-up every alarm leaves INSUFFICIENT_DATA; those that go to OK are summarised in one
stderr line (they would push the banner out of view) but still published, as CloudWatch does.

The message is the JSON document CloudWatch publishes to an alarm's SNS actions, so whatever
a subscriber does with real notifications (a chat bot, a pager integration) can be tried
against the local stack's alarm topic.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from local.common import console
from local.monitoring.alarm_evaluator import ALARM, INSUFFICIENT_DATA, OK, STATES, Transition
from runtime.alarms import LOW_SAMPLE_PERCENTILES, StackAlarm

# moto's account; the local stack has no other.
ACCOUNT_ID = "123456789012"
_STATISTIC_NAMES = {
    "SampleCount": "SAMPLE_COUNT",
    "Sum": "SUM",
    "Average": "AVERAGE",
    "Minimum": "MINIMUM",
    "Maximum": "MAXIMUM",
}


# CloudWatch names the region in words in a notification's Region and Subject
# ("Region": "EU (Ireland)", Subject: 'ALARM: "x" in EU (Ireland)'); an unlisted region keeps
# its code.
REGION_NAMES = {
    "us-east-1": "US East (N. Virginia)",
    "us-east-2": "US East (Ohio)",
    "us-west-1": "US West (N. California)",
    "us-west-2": "US West (Oregon)",
    "ca-central-1": "Canada (Central)",
    "eu-west-1": "EU (Ireland)",
    "eu-west-2": "EU (London)",
    "eu-west-3": "EU (Paris)",
    "eu-central-1": "EU (Frankfurt)",
    "eu-north-1": "EU (Stockholm)",
    "eu-south-1": "EU (Milan)",
    "ap-northeast-1": "Asia Pacific (Tokyo)",
    "ap-northeast-2": "Asia Pacific (Seoul)",
    "ap-northeast-3": "Asia Pacific (Osaka)",
    "ap-southeast-1": "Asia Pacific (Singapore)",
    "ap-southeast-2": "Asia Pacific (Sydney)",
    "ap-south-1": "Asia Pacific (Mumbai)",
    "sa-east-1": "South America (Sao Paulo)",
}


def region_name(region: str) -> str:
    return REGION_NAMES.get(region, region)


def alarm_arn(alarm: StackAlarm, region: str) -> str:
    return f"arn:aws:cloudwatch:{region}:{ACCOUNT_ID}:alarm:{alarm.name}"


def _sns_time(timestamp: float) -> str:
    """CloudWatch's StateChangeTime: ``2026-12-01T15:30:00.123+0000``."""
    moment = datetime.fromtimestamp(timestamp, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


def sns_message(
    transition: Transition, region: str, topic_arn: str, configured_at: float
) -> dict[str, Any]:
    """The notification CloudWatch sends to SNS for ``transition``."""
    alarm = transition.alarm
    statistic: dict[str, Any] = (
        {"StatisticType": "ExtendedStatistic", "ExtendedStatistic": alarm.statistic}
        if alarm.is_percentile
        else {"StatisticType": "Statistic", "Statistic": _STATISTIC_NAMES[alarm.statistic]}
    )
    # The keys in CloudWatch's order.
    trigger: dict[str, Any] = {
        "MetricName": alarm.metric_name,
        "Namespace": alarm.namespace,
        **statistic,
        "Unit": alarm.unit,
        "Dimensions": [{"value": v, "name": n} for n, v in alarm.dimensions],
        "Period": alarm.period,
        "EvaluationPeriods": alarm.evaluation_periods,
        "DatapointsToAlarm": alarm.datapoints_to_alarm,
        "ComparisonOperator": alarm.comparison,
        "Threshold": float(alarm.threshold),
        "TreatMissingData": alarm.treat_missing_data,
        "EvaluateLowSampleCountPercentile": (LOW_SAMPLE_PERCENTILES if alarm.is_percentile else ""),
    }
    return {
        "AlarmName": alarm.name,
        "AlarmDescription": alarm.description,
        "AWSAccountId": ACCOUNT_ID,
        "AlarmConfigurationUpdatedTimestamp": _sns_time(configured_at),
        "NewStateValue": transition.new_state,
        "NewStateReason": transition.reason,
        "StateChangeTime": _sns_time(transition.at),
        "Region": region_name(region),
        "AlarmArn": alarm_arn(alarm, region),
        "OldStateValue": transition.old_state,
        "OKActions": [topic_arn],
        "AlarmActions": [topic_arn],
        "InsufficientDataActions": [],
        "Trigger": trigger,
    }


def subject(transition: Transition, region: str) -> str:
    """CloudWatch's subject line, e.g. ``ALARM: "…-active-sessions" in EU (Ireland)``."""
    text = f'{transition.new_state}: "{transition.alarm.name}" in {region_name(region)}'
    return text[:100]  # SNS subjects are limited to 100 characters


def transition_line(transition: Transition, time_scale: float) -> str:
    """The stderr line of a transition."""
    mark = {ALARM: "!!", OK: "ok"}.get(transition.new_state, "..")
    scale = f" (time ×{time_scale:g})" if time_scale != 1 else ""
    return (
        f"alarm {mark} {transition.alarm.name}: {transition.old_state} -> "
        f"{transition.new_state}{scale}: {transition.reason}"
    )


def is_settling(transition: Transition) -> bool:
    """An alarm leaving its initial INSUFFICIENT_DATA for OK: news to nobody at start-up."""
    return transition.old_state == INSUFFICIENT_DATA and transition.new_state == OK


def settled_line(states: list[str], alarms_url: str) -> str:
    """The one stderr line for the first evaluation, e.g. ``alarms  14 evaluated: 14 OK  URL``."""
    counts = ", ".join(f"{states.count(s)} {s}" for s in STATES if states.count(s))
    return f"alarms  {len(states)} evaluated: {counts or 'none'}  {alarms_url}"


@dataclass
class AlarmNotifier:
    """Publishes transitions to the alarm topic (``sns_publish`` is a boto3 ``sns.publish``)."""

    region: str
    topic_arn: str
    sns_publish: Callable[..., Any] = field(repr=False)
    time_scale: float = 1.0
    configured_at: float = 0.0
    published: int = field(default=0, init=False)

    def announce(self, transition: Transition) -> None:
        """The stderr line (cheap: call it on the event loop)."""
        console.say(transition_line(transition, self.time_scale))

    def publish(self, transition: Transition) -> None:
        """The SNS message (a network call: run it off the event loop)."""
        message = sns_message(transition, self.region, self.topic_arn, self.configured_at)
        try:
            self.sns_publish(
                TopicArn=self.topic_arn,
                Subject=subject(transition, self.region),
                Message=json.dumps(message),
            )
        except Exception as error:  # embedded AWS trouble must not stop the evaluator
            console.say(f"! could not publish alarm {transition.alarm.name} to SNS: {error!r}")
        else:
            self.published += 1
