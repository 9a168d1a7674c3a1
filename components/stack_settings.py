"""Typed stack settings, read from ``pulumi.Config`` and validated by ``runtime.settings``.

The settings model owns every key, type, default and range; this module only collects the
stack's raw values and hands them to ``parse_settings``. Code defaults are the model's, which
a test keeps equal to the defaults declared in ``Pulumi.yaml`` (under mocks and for keys the
CLI does not fill, the model's default is what applies).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.naming import check_stack_name
from runtime.settings import (
    BY_KEY,
    PROJECT,
    SETTINGS,
    SettingsError,
    StackSettings,
    check_aws_keys,
    check_deployable,
    parse_settings,
)

IP_HASH_KEY = BY_KEY["ipHashKey"]


@dataclass(frozen=True)
class StackConfig:
    """A stack's validated settings plus the one secret, which never leaves an Output."""

    settings: StackSettings
    # The configured HMAC key, or None when the stack should generate one.
    ip_hash_key: pulumi.Output[str] | None

    @property
    def stack(self) -> str:
        return self.settings.stack


def _full_key(key: str) -> str:
    return f"{PROJECT}:{key}"


def _configured_keys(namespace: str) -> set[str]:
    """Every key of ``namespace`` the stack sets, so typos can be rejected by name.

    ``pulumi.Config`` only answers for keys it is asked about; the runtime's config map (set
    by the language host, or by ``set_all_config`` in tests) and ``PULUMI_CONFIG`` hold them all.
    """
    names = set(pulumi.runtime.config.CONFIG.get()) | set(pulumi.runtime.get_config_env())
    prefix = f"{namespace}:"
    return {name[len(prefix) :] for name in names if name.startswith(prefix)}


def _is_secret(key: str) -> bool:
    full = _full_key(key)
    return (
        pulumi.runtime.is_config_secret(full) or full in pulumi.runtime.get_config_secret_keys_env()
    )


def _check_auth(settings: StackSettings) -> None:
    issuer, audience, jwks = settings.authIssuer, settings.authAudience, settings.authJwksUrl
    if issuer and not audience:
        raise SettingsError(
            f"config key '{PROJECT}:authAudience' is required when authIssuer is set: "
            "the client ID that speaker tokens are issued for"
        )
    if not issuer and (audience or jwks):
        raise SettingsError(
            f"config keys '{PROJECT}:authAudience' and '{PROJECT}:authJwksUrl' apply only "
            "with authIssuer; set authIssuer too, or unset them to use the stack's Cognito pool"
        )
    if issuer and not issuer.startswith("https://"):
        raise SettingsError(
            f"config key '{PROJECT}:authIssuer' must be an https:// URL; got {issuer!r}"
        )


def load_stack_settings(stack: str | None = None) -> StackConfig:
    """Read and validate this stack's settings; a bad value stops the program.

    The error names the key and its allowed range (``pulumi.RunError`` prints just that
    message, without a Python traceback).
    """
    stack = stack or pulumi.get_stack()
    config = pulumi.Config(PROJECT)
    raw: dict[str, str] = {
        key: "" for key in _configured_keys(PROJECT) if key not in BY_KEY
    }  # unknown keys: parse_settings rejects them by name
    for setting in SETTINGS:
        if setting.secret:
            continue
        value = config.get(setting.key)
        if value is not None:
            raw[setting.key] = value
    try:
        check_stack_name(stack)
        check_aws_keys(_configured_keys("aws"))
        settings = parse_settings(stack, raw)
        _check_auth(settings)
        check_deployable(settings)
        ip_hash_key = _ip_hash_key(config)
    except SettingsError as error:
        raise pulumi.RunError(str(error)) from error
    return StackConfig(settings=settings, ip_hash_key=ip_hash_key)


def _ip_hash_key(config: pulumi.Config) -> pulumi.Output[str] | None:
    key = IP_HASH_KEY.key
    plain = pulumi.runtime.get_config(_full_key(key))
    if plain in (None, ""):
        return None
    if not _is_secret(key):
        raise SettingsError(
            f"config key '{_full_key(key)}' must be stored encrypted: "
            f"pulumi config set --secret {key} <value>"
        )
    return config.require_secret(key)
