"""IAM in the local stack: every AWS call a function makes is checked against its policy.

The policy is the one ``pulumi up`` deploys (``runtime.iam.policy``, rendered from the route
table for this stack's names: moto's account, the region, the gateway's API ID, the stage);
the check is ``runtime.iam.calls.Enforcer``, attached to every client the runtime creates, so
a call no statement allows fails inside the handler exactly as on AWS (AccessDenied through
botocore, not retried) and the handler's own error path runs: a fail-open limit counts a
DependencyFailure, anything else becomes the reply's INTERNAL_ERROR (ServerErrors) or, for a
scheduled job, a Lambda Error — the metrics the local stack extracts as CloudWatch does.

Each denial is also one stderr line naming the function, the action and the resource
(terminal-safe; an @connections resource shows the connection's keyed hash, never its ID),
and ``/_local/info`` → ``iam`` says IAM is enforced and counts denials. ``--iam-deny
FUNCTION=ACTION`` denies an action to a function whatever its policy says, to see how a
missing grant shows (``FUNCTION=ACTION@RESOURCE`` narrows it to matching resources). Not
emulated: resource-based policies, SCPs, permission boundaries,
session policies, KMS key policies.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from local.common import console
from runtime import aws as runtime_aws
from runtime.iam.calls import RUNNING, Denial, Enforcer
from runtime.iam.policy import StackNames
from runtime.routes import BY_NAME
from runtime.settings import PROJECT, StackSettings

# moto's account: every ARN of the embedded AWS is in it.
LOCAL_ACCOUNT = "123456789012"
NOT_EMULATED = (
    "resource-based policies",
    "service control policies (SCPs)",
    "permission boundaries",
    "session policies",
    "KMS key policies",
    "the Lambda runtime's own log writes",
)


class DenyError(ValueError):
    """A ``--iam-deny`` value that names no function or no action."""


def parse_denies(values: list[str]) -> dict[str, tuple[tuple[str, str], ...]]:
    """``["refresh-connection=dynamodb:GetItem@*-RateLimits", …]`` → function name →
    (action, resource) IAM patterns; the resource defaults to ``*``."""
    denies: dict[str, list[tuple[str, str]]] = {}
    for value in values:
        function, _, rest = value.partition("=")
        action, _, resource = rest.partition("@")
        if function not in BY_NAME:
            raise DenyError(
                f"--iam-deny {value!r}: no function {function!r}; one of {', '.join(BY_NAME)}"
            )
        if ":" not in action:
            raise DenyError(
                f"--iam-deny {value!r}: the action is service:Action, e.g. dynamodb:GetItem"
            )
        denies.setdefault(function, []).append((action, resource or "*"))
    return {f: tuple(d) for f, d in denies.items()}


def terminal_safe(text: str) -> str:
    """``text`` with every control or non-ASCII character escaped (one line, no escapes)."""
    return "".join(
        c if " " <= c <= "~" else f"\\x{ord(c):02x}" if ord(c) < 256 else f"\\u{ord(c):04x}"
        for c in text
    )


def _without_connection_id(resource: str, label: Callable[[str], str]) -> str:
    head, marker, connection_id = resource.partition("/@connections/")
    if not marker:
        return resource
    token = RUNNING.set(None)  # the label's key read is the stack's, not the function's
    try:
        return f"{head}{marker}<{label(connection_id)}>"
    finally:
        RUNNING.reset(token)


class LocalIam:
    """The local stack's enforcer: its names, its stderr line, its counts."""

    def __init__(
        self,
        stage: str,
        region: str,
        settings: StackSettings,
        api_id: Callable[[], str],
        revoked: Mapping[str, tuple[tuple[str, str], ...]] | None = None,
        label: Callable[[str], str] = lambda _cid: "connection",
    ) -> None:
        self.stage = stage
        self.region = region
        self.settings = settings
        self.api_id = api_id
        self.label = label
        self.enforcer = Enforcer(self.names, on_denied=self._denied)
        self.enforcer.revoked.update(revoked or {})
        self.denials: Counter[str] = Counter()
        self._lock = threading.Lock()

    def names(self) -> StackNames:
        return StackNames(
            account=LOCAL_ACCOUNT,
            region=self.region,
            api_id=self.api_id(),
            stage=self.stage,
            prefix=f"{PROJECT}-{self.stage}",
            namespace=self.settings.metricsNamespace,
            metrics_transport=self.settings.metricsTransport,
            tracing=self.settings.tracing,
        )

    def install(self) -> None:
        """Check every runtime client from now on (clients made earlier are dropped)."""
        runtime_aws.add_client_hook(self.enforcer.attach)
        runtime_aws.reset_clients()

    def uninstall(self) -> None:
        runtime_aws.remove_client_hook(self.enforcer.attach)

    def _denied(self, denial: Denial) -> None:
        with self._lock:
            self.denials[denial.function] += 1
        function = self.names().function_name(BY_NAME[denial.function])
        resource = _without_connection_id(denial.resource, self.label)
        console.say(
            terminal_safe(
                f"! IAM AccessDenied: {function} may not {denial.action} on {resource} "
                f"({denial.service} {denial.operation}: no statement of its policy allows it)"
            )
        )

    def info(self) -> dict[str, Any]:
        with self._lock:
            denials = dict(self.denials)
        return {
            "enforced": True,
            "policies": "runtime.iam.policy (the documents pulumi up deploys)",
            "denials": sum(denials.values()),
            "denialsByFunction": denials,
            "denied": {
                f: [f"{action}@{resource}" for action, resource in denies]
                for f, denies in self.enforcer.revoked.items()
            },
            "notEmulated": list(NOT_EMULATED),
        }
