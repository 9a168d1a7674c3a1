"""The stack settings model: every config key, its type, default and allowed range.

One model serves both renderers: ``components`` feeds it ``pulumi.Config`` values and
``local`` feeds it the stack YAML files, so neither can disagree about a default or a
limit. Settings reach the functions as environment variables named after the keys
(``maxActiveSessions`` → ``MAX_ACTIVE_SESSIONS``); ``runtime.config`` reads them back.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

PROJECT = "session-management"

LOG_LEVELS = ("DEBUG", "INFO", "WARN", "ERROR")
# Keys the Pulumi AWS provider (pulumi-aws 7.x, as locked) reads from the `aws:` namespace; a
# stack config key outside this set is a typo (`aws:regon`) and is rejected by name. A test
# keeps this equal to the installed provider's own list (pulumi_aws/config/vars.py).
AWS_PROVIDER_KEYS = frozenset(
    {
        "accessKey",
        "allowedAccountIds",
        "assumeRoleWithWebIdentity",
        "assumeRoles",
        "customCaBundle",
        "defaultTags",
        "ec2MetadataServiceEndpoint",
        "ec2MetadataServiceEndpointMode",
        "endpoints",
        "forbiddenAccountIds",
        "httpProxy",
        "httpsProxy",
        "ignoreTags",
        "insecure",
        "maxRetries",
        "noProxy",
        "profile",
        "region",
        "retryMode",
        "s3UsEast1RegionalEndpoint",
        "s3UsePathStyle",
        "secretKey",
        "sharedConfigFiles",
        "sharedCredentialsFiles",
        "skipCredentialsValidation",
        "skipMetadataApiCheck",
        "skipRegionValidation",
        "skipRequestingAccountId",
        "stsRegion",
        "tagPolicyCompliance",
        "token",
        "tokenBucketRateLimiterCapacity",
        "useDualstackEndpoint",
        "useFipsEndpoint",
        "userAgents",
    }
)
# The retention values CloudWatch Logs accepts, in days.
LOG_RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557,
    2922, 3288, 3653,
)  # fmt: skip
# CloudWatch namespaces: 1-255 of these characters, not starting with ':' and not in the
# reserved AWS/ prefix (metrics there are refused, so every alarm would stay silent).
METRICS_NAMESPACE_PATTERN = r"(?!AWS/)(?!:)[0-9A-Za-z._/#: -]{1,255}"
METRICS_TRANSPORTS = ("emf", "api")
# API Gateway closes every WebSocket connection after two hours.
CONNECTION_CUTOFF_MINUTES = 120
# How often the sweeper runs: a record's TTL must also outlast one more pass.
SWEEP_MINUTES = 1
# Email domains reserved for documentation and testing (RFC 2606, RFC 6761): mail to them
# goes nowhere, so a protected stack with one would page nobody.
RESERVED_EMAIL_DOMAINS = ("example.com", "example.org", "example.net", "localhost")
RESERVED_EMAIL_SUFFIXES = (".example", ".invalid", ".test", ".localhost")
# Where the runbooks are: every alarm's description ends with this address and the alarm's
# anchor (``docs/runbooks.md#server-errors``). The default is the path inside this repository;
# a stack sets its repository's web address (``https://…/blob/main/docs/runbooks.md``) so the
# link in an alarm email opens. At most 900 characters: with the anchor and the text before
# it, an AlarmDescription stays within CloudWatch's 1,024.
RUNBOOK_BASE_URL_DEFAULT = "docs/runbooks.md"
RUNBOOK_BASE_URL_PATTERN = r"[^\s#]{1,900}"
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# Set in every function's environment beside the settings. Loguru installs a stderr handler
# when it is imported unless LOGURU_AUTOINIT is false; the functions replace every handler
# with their JSON sink on the first invocation (runtime.observability.logs.configure), so
# building that one costs each cold start about a third of loguru's import for nothing.
FUNCTION_ENVIRONMENT = {"LOGURU_AUTOINIT": "False"}


class SettingsError(ValueError):
    """A config value is missing, of the wrong type or out of range; the message names the key."""


@dataclass(frozen=True)
class Setting:
    """One stack config key (docs/architecture.md#configuration)."""

    key: str
    kind: type
    default: Any
    description: str
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    choices: tuple[Any, ...] = ()
    # A regular expression the whole (string) value must match, and how to say it.
    pattern: str | None = None
    pattern_description: str = ""
    secret: bool = False
    # False for keys that only shape infrastructure (alarm thresholds, email).
    runtime: bool = True

    @property
    def env(self) -> str:
        """The environment variable a function reads this setting from."""
        return re.sub(r"(?<!^)(?=[A-Z])", "_", self.key).upper()

    @property
    def allowed(self) -> str:
        """Human description of the allowed values, used in error messages and docs."""
        if self.choices:
            listed = ", ".join(str(choice) for choice in self.choices)
            return f"one of {listed}" + (" (any case)" if self.kind is str else "")
        if self.pattern:
            return self.pattern_description
        if self.kind is bool:
            return "true or false"
        if self.kind is str:
            return "an email address" if self.key == "alarmEmail" else "a string"
        noun = "an integer" if self.kind is int else "a number"
        low = (
            ""
            if self.minimum is None
            else f"{'>' if self.exclusive_minimum else '≥'} {_num(self.minimum)}"
        )
        high = "" if self.maximum is None else f"≤ {_num(self.maximum)}"
        bounds = " and ".join(b for b in (low, high) if b)
        return f"{noun} {bounds}".strip()

    def parse(self, raw: Any) -> Any:
        """Convert a raw config value (YAML scalar, CLI string or Pulumi string) and validate it."""
        value = self._convert(raw)
        if self.choices and value not in self.choices:
            raise self._error(raw)
        if self.kind in (int, float):
            if self.minimum is not None and (
                value <= self.minimum if self.exclusive_minimum else value < self.minimum
            ):
                raise self._error(raw)
            if self.maximum is not None and value > self.maximum:
                raise self._error(raw)
        if self.key == "alarmEmail" and value and not _EMAIL.match(value):
            raise self._error(raw)
        if self.pattern and not re.fullmatch(self.pattern, value):
            raise self._error(raw)
        return value

    def _convert(self, raw: Any) -> Any:
        try:
            if self.kind is bool:
                if isinstance(raw, bool):
                    return raw
                text = str(raw).strip().lower()
                if text in ("true", "1", "yes"):
                    return True
                if text in ("false", "0", "no"):
                    return False
                raise ValueError(raw)
            if self.kind is int:
                if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
                    raise ValueError(raw)
                return int(str(raw).strip()) if not isinstance(raw, float) else int(raw)
            if self.kind is float:
                if isinstance(raw, bool):
                    raise ValueError(raw)
                return float(str(raw).strip())
            text = str(raw).strip()
            # Choices match whatever the case; the value is the choice as declared.
            return next((c for c in self.choices if c.lower() == text.lower()), text)
        except (TypeError, ValueError):
            raise self._error(raw) from None

    def _error(self, raw: Any) -> SettingsError:
        shown = "<secret>" if self.secret else repr(raw)
        return SettingsError(
            f"config key '{PROJECT}:{self.key}' must be {self.allowed}; got {shown}"
        )


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "alarmEmail",
        str,
        "",
        "Email address subscribed to the alarm topic (required when protect is on).",
        runtime=False,
    ),
    Setting(
        "protect",
        bool,
        False,
        "Production protection: table PITR and deletion protection, user pool deletion "
        "protection, Pulumi protect on tables, user pool, WebSocket API and its serving path "
        "(stage, routes, integrations, functions); alarmEmail required, not a reserved "
        "example domain.",
        runtime=False,
    ),
    Setting(
        "apiGatewayAccountOwner",
        bool,
        False,
        "This stack manages API Gateway's account-level CloudWatch role (one stack per account "
        "and region); stage access logs only where the role is known to be set.",
        runtime=False,
    ),
    Setting("maxActiveSessions", int, 100, "Active sessions allowed at once.", minimum=1),
    Setting(
        "maxActiveSessionsPerUser",
        int,
        5,
        "Active sessions one speaker (user) may hold at once.",
        minimum=1,
    ),
    Setting("maxListenersPerSession", int, 500, "Listeners allowed in one session.", minimum=1),
    Setting(
        "dataRetentionHours",
        int,
        12,
        "DynamoDB TTL of session, connection and rate-limit records; at least what a session "
        "lives between two speaker refreshes (the 120-minute cutoff, plus a sweep).",
        minimum=1,
        maximum=8760,
    ),
    Setting(
        "logRetentionDays",
        int,
        14,
        "Days CloudWatch keeps the functions' and the stage's logs (they hold no raw identifiers).",
        choices=LOG_RETENTION_DAYS,
        runtime=False,
    ),
    Setting("logLevel", str, "INFO", "Lowest level the functions log.", choices=LOG_LEVELS),
    Setting(
        "sessionsPerHour", int, 50, "createSession calls allowed per user per hour.", minimum=1
    ),
    Setting(
        "listenerJoinsPerMinute",
        int,
        600,
        "joinSession and listener refreshConnection calls allowed per client IP per minute "
        "(a venue's audience shares one address: 300 joining and refreshing within two minutes "
        "fit the default).",
        minimum=1,
    ),
    Setting(
        "sessionLookupFailuresPerMinute",
        int,
        5,
        "Lookups of a session ID that does not exist or has ended (joinSession, "
        "refreshConnection) allowed per client IP per minute; then RATE_LIMIT_EXCEEDED.",
        minimum=1,
    ),
    Setting(
        "connectionAttemptsPerMinute",
        int,
        20,
        "Refill rate of each client IP's handshake bucket: handshakes per minute sustained "
        "once connectionBurstPerAddress is spent.",
        minimum=1,
    ),
    Setting(
        "connectionBurstPerAddress",
        int,
        600,
        "WebSocket handshakes one client IP may make at once (its token bucket's size): a "
        "venue's audience behind one address connecting and then refreshing.",
        minimum=1,
    ),
    Setting(
        "heartbeatsPerMinute",
        int,
        4,
        "heartbeat messages allowed per connection per minute.",
        minimum=1,
    ),
    Setting(
        "sessionCreationP95Ms",
        int,
        2000,
        "Alarm threshold: SessionCreationLatency p95 (ms).",
        minimum=1,
        runtime=False,
    ),
    Setting(
        "listenerJoinP95Ms",
        int,
        1000,
        "Alarm threshold: ListenerJoinLatency p95 (ms).",
        minimum=1,
        runtime=False,
    ),
    Setting(
        "serverErrorsPer5Min",
        int,
        10,
        "Alarm threshold: ServerErrors (INTERNAL_ERROR and SERVICE_UNAVAILABLE replies) "
        "per 5 minutes.",
        minimum=1,
        runtime=False,
    ),
    Setting(
        "functionErrorsPer5Min",
        int,
        10,
        "Alarm threshold: Lambda Errors per function per 5 minutes.",
        minimum=1,
        runtime=False,
    ),
    Setting(
        "dependencyFailuresPer5Min",
        int,
        20,
        "Alarm threshold: DependencyFailures (degradations survived) per 5 minutes.",
        minimum=1,
        runtime=False,
    ),
    Setting(
        "activeSessionsAlarmRatio",
        float,
        0.9,
        "Alarm when ActiveSessions ≥ ratio × maxActiveSessions.",
        minimum=0,
        maximum=1,
        exclusive_minimum=True,
        runtime=False,
    ),
    Setting(
        "connectionRefreshMinutes",
        int,
        100,
        "Connection age at which connectionRefreshRequired is pushed.",
        minimum=1,
        maximum=120,
    ),
    Setting(
        "connectionRefreshSpreadMinutes",
        int,
        15,
        "Each connection is told connectionRefreshRequired at connectionRefreshMinutes plus "
        "its own stable offset in [0, spread), so an audience that joined together does not "
        "reconnect together.",
        minimum=0,
        maximum=119,
    ),
    Setting(
        "connectionWarningMinutes",
        int,
        115,
        "Connection age from which connectionWarning is pushed (≥ refresh + spread, below the "
        "120-minute cutoff).",
        minimum=1,
        maximum=CONNECTION_CUTOFF_MINUTES - 1,
    ),
    Setting(
        "heartbeatTimeoutSeconds",
        int,
        90,
        "Silence after which the sweeper closes a connection.",
        minimum=10,
    ),
    Setting(
        "metricsNamespace",
        str,
        "SessionManagement",
        "CloudWatch namespace of the custom metrics.",
        pattern=METRICS_NAMESPACE_PATTERN,
        pattern_description=(
            "1-255 of A-Z a-z 0-9 . - _ / # : and space, not starting with 'AWS/' or ':'"
        ),
    ),
    Setting(
        "metricsTransport",
        str,
        "emf",
        "How functions publish metrics: emf = Embedded Metric Format in their log lines "
        "(no API call); api = one PutMetricData per invocation.",
        choices=METRICS_TRANSPORTS,
    ),
    Setting(
        "runbookBaseUrl",
        str,
        RUNBOOK_BASE_URL_DEFAULT,
        "Address of the runbooks (docs/runbooks.md of this repository by default): every "
        "alarm's description ends with it and the alarm's anchor (#server-errors).",
        pattern=RUNBOOK_BASE_URL_PATTERN,
        pattern_description="1-900 characters without spaces or '#' (the anchor is added)",
        runtime=False,
    ),
    Setting("tracing", bool, True, "X-Ray active tracing on every function.", runtime=False),
    Setting(
        "ipHashKey",
        str,
        "",
        "HMAC key for IP and connection hashes; generated once per stack if unset. Held in an "
        "SSM SecureString parameter, never in a function's environment.",
        secret=True,
    ),
    Setting(
        "authIssuer",
        str,
        "",
        "JWT issuer of speaker tokens; empty = the stack's Cognito user pool.",
    ),
    Setting(
        "authAudience",
        str,
        "",
        "JWT audience (client ID) of speaker tokens; empty = the stack's Cognito app client.",
    ),
    Setting(
        "authJwksUrl", str, "", "JWKS URL of the token issuer; empty = derived from the issuer."
    ),
)

BY_KEY: dict[str, Setting] = {s.key: s for s in SETTINGS}

# Keys that existed once and were retired: a stack file still setting one is told what
# replaced it, rather than getting a bare "unknown key".
RETIRED: dict[str, str] = {
    "connectionErrorsPer5Min": (
        "it alarmed on every error reply, including those a client causes alone (bad frames, "
        "unknown actions, rate limits), so anyone could page the on-call. The alarm now "
        f"watches ServerErrors (INTERNAL_ERROR and SERVICE_UNAVAILABLE replies): remove "
        f"'{PROJECT}:connectionErrorsPer5Min' from Pulumi.<stack>.yaml and set "
        f"'{PROJECT}:serverErrorsPer5Min' (default 10) if the default does not suit. "
        "Client-caused errors stay on the dashboard (ConnectionErrors by ErrorCode, "
        "RateLimitExceeded by Operation)"
    ),
}


@dataclass(frozen=True)
class RuntimeSettings:
    """The settings the functions read, typed: one attribute per runtime key of ``SETTINGS``
    (a test keeps the two equal, names and types)."""

    maxActiveSessions: int
    maxActiveSessionsPerUser: int
    maxListenersPerSession: int
    dataRetentionHours: int
    logLevel: str
    sessionsPerHour: int
    listenerJoinsPerMinute: int
    connectionAttemptsPerMinute: int
    connectionBurstPerAddress: int
    heartbeatsPerMinute: int
    sessionLookupFailuresPerMinute: int
    connectionRefreshMinutes: int
    connectionRefreshSpreadMinutes: int
    connectionWarningMinutes: int
    heartbeatTimeoutSeconds: int
    metricsNamespace: str
    metricsTransport: str
    ipHashKey: str
    authIssuer: str
    authAudience: str
    authJwksUrl: str


@dataclass(frozen=True)
class SettingValues(RuntimeSettings):
    """Every setting of a stack, typed: the runtime ones and those that only shape
    infrastructure (alarm thresholds, the alarm email, tracing)."""

    alarmEmail: str
    sessionCreationP95Ms: int
    listenerJoinP95Ms: int
    serverErrorsPer5Min: int
    functionErrorsPer5Min: int
    dependencyFailuresPer5Min: int
    activeSessionsAlarmRatio: float
    runbookBaseUrl: str
    tracing: bool
    protect: bool
    apiGatewayAccountOwner: bool
    logRetentionDays: int


@dataclass(frozen=True)
class StackSettings(SettingValues):
    """Validated settings of one stack: ``settings.maxActiveSessions``, typed."""

    stack: str

    def __getitem__(self, key: str) -> Any:
        """A setting by its key, for code that holds keys as data (alarm thresholds)."""
        if key not in BY_KEY:
            raise KeyError(key)
        return getattr(self, key)

    @property
    def values(self) -> dict[str, Any]:
        """Every setting by key."""
        return {s.key: getattr(self, s.key) for s in SETTINGS}

    def runtime_environment(self) -> dict[str, str]:
        """The functions' environment variables for every runtime setting (secrets excluded),
        plus ``FUNCTION_ENVIRONMENT``."""
        env: dict[str, str] = {"STAGE": self.stack, **FUNCTION_ENVIRONMENT}
        for s in SETTINGS:
            if s.runtime and not s.secret:
                value = getattr(self, s.key)
                env[s.env] = str(value).lower() if isinstance(value, bool) else str(value)
        return env


def minimum_retention_hours(values: Mapping[str, Any]) -> int:
    """The shortest ``dataRetentionHours`` under which no session or connection record can
    expire while it is still in use.

    A session's TTL is renewed when its speaker refreshes: pushed at connectionRefreshMinutes
    plus the connection's offset (< spread), answered at the latest at the 120-minute cutoff,
    so up to ``max(refresh + spread, cutoff)`` minutes pass between two renewals; a connection
    record (renewed when it takes a role) lives as long as its connection. One more sweep
    must find the record still there.
    """
    latest_refresh = int(values["connectionRefreshMinutes"]) + int(
        values["connectionRefreshSpreadMinutes"]
    )
    longest = max(latest_refresh, CONNECTION_CUTOFF_MINUTES)
    return math.ceil((longest + SWEEP_MINUTES) / 60)


def _check_connection_clock(values: Mapping[str, Any]) -> None:
    refresh, spread = values["connectionRefreshMinutes"], values["connectionRefreshSpreadMinutes"]
    warning = values["connectionWarningMinutes"]
    if refresh + spread > warning:
        raise SettingsError(
            f"config key '{PROJECT}:connectionWarningMinutes' must be ≥ connectionRefreshMinutes "
            f"+ connectionRefreshSpreadMinutes ({refresh} + {spread} = {refresh + spread}): a "
            f"connection is told to refresh before it is warned; got {warning}"
        )
    minimum = minimum_retention_hours(values)
    if values["dataRetentionHours"] < minimum:
        raise SettingsError(
            f"config key '{PROJECT}:dataRetentionHours' must be ≥ {minimum} with these refresh "
            f"settings: a session's records are renewed only when its speaker refreshes "
            f"(at connectionRefreshMinutes + spread, at the latest at the "
            f"{CONNECTION_CUTOFF_MINUTES}-minute cutoff), and a shorter TTL ends every session "
            f"as expired; got {values['dataRetentionHours']}"
        )


def reserved_email_domain(address: str) -> str | None:
    """The reserved domain of ``address`` (example.com, *.invalid, …), or None."""
    domain = address.rsplit("@", 1)[-1].strip().lower().rstrip(".")
    if domain in RESERVED_EMAIL_DOMAINS or domain.endswith(RESERVED_EMAIL_SUFFIXES):
        return domain
    for reserved in RESERVED_EMAIL_DOMAINS:
        if domain.endswith("." + reserved):
            return domain
    return None


def check_deployable(settings: StackSettings) -> None:
    """What a deployment needs beyond valid values: a protected stack pages a real mailbox.

    Only ``pulumi up`` calls this; the local stack delivers no email and runs any stack file.
    """
    if not settings.protect:
        return
    domain = reserved_email_domain(settings.alarmEmail)
    if domain is not None:
        raise SettingsError(
            f"config key '{PROJECT}:alarmEmail' is {settings.alarmEmail!r}, a placeholder "
            f"({domain} is reserved and receives no mail), and '{PROJECT}:protect' is on: "
            f"replace it with the on-call mailbox in Pulumi.{settings.stack}.yaml "
            f"(pulumi config set {PROJECT}:alarmEmail <address> --stack {settings.stack})"
        )


def check_aws_keys(keys: Iterable[str]) -> None:
    """Reject ``aws:`` config keys the AWS provider does not read (keys without the prefix)."""
    unknown = sorted(set(keys) - AWS_PROVIDER_KEYS)
    if unknown:
        hint = did_you_mean(unknown, AWS_PROVIDER_KEYS, prefix="aws:")
        raise SettingsError(
            f"unknown config key(s) {', '.join(f'aws:{k}' for k in unknown)}{hint}; the AWS "
            f"provider reads only: {', '.join(sorted(AWS_PROVIDER_KEYS))}"
        )


def did_you_mean(unknown: Iterable[str], known: Iterable[str], prefix: str = "") -> str:
    """`` (did you mean PREFIXkey?)`` naming the closest known key of each unknown one (the same
    key in another case first, then the closest spelling), or ``""`` when none is close."""
    import difflib  # only here: every function imports this module in its cold start

    choices = sorted(known)
    by_case = {key.casefold(): key for key in choices}
    close: list[str] = []
    for key in unknown:
        match = by_case.get(key.casefold()) or next(
            iter(difflib.get_close_matches(key, choices, n=1)), None
        )
        if match is not None and f"{prefix}{match}" not in close:
            close.append(f"{prefix}{match}")
    return f" (did you mean {', '.join(close)}?)" if close else ""


def parse_settings(stack: str, raw: Mapping[str, Any]) -> StackSettings:
    """Validate a stack's raw config mapping (keys without the project prefix).

    Unknown keys are rejected so a typo in ``Pulumi.<stack>.yaml`` cannot be silently ignored.
    """
    retired = sorted(set(raw) & set(RETIRED))
    if retired:
        raise SettingsError(
            "; ".join(f"config key '{PROJECT}:{k}' was retired: {RETIRED[k]}" for k in retired)
        )
    unknown = sorted(set(raw) - set(BY_KEY))
    if unknown:
        hint = did_you_mean(unknown, BY_KEY, prefix=f"{PROJECT}:")
        raise SettingsError(
            f"unknown config key(s) {', '.join(f'{PROJECT}:{k}' for k in unknown)}{hint}; "
            f"known keys: {', '.join(BY_KEY)}"
        )
    values: dict[str, Any] = {}
    for s in SETTINGS:
        values[s.key] = s.parse(raw[s.key]) if raw.get(s.key) not in (None, "") else s.default
    _check_connection_clock(values)
    if values["protect"] and not values["alarmEmail"]:
        raise SettingsError(
            f"config key '{PROJECT}:alarmEmail' is required when '{PROJECT}:protect' is on: "
            f"an email address for the alarm topic"
        )
    return StackSettings(stack=stack, **values)
