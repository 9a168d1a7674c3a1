"""The environment every function sees, as Lambda gives it: rendered from the settings model.

Settings (``StackSettings.runtime_environment()``), table names, the @connections endpoint,
the issuer of speaker tokens and the name of the hash key's SSM parameter, all pointing at the
embedded AWS; variables that would send boto3 elsewhere are removed from this process.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from local.aws.embedded import DUMMY_CREDENTIALS
from local.config import LocalConfig
from runtime.hash_key import PARAMETER_ENV
from runtime.settings import BY_KEY
from runtime.tables import TABLES

# Variables that would send boto3 somewhere else than the embedded AWS.
_FOREIGN_AWS_VARIABLES = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
)


def function_environment(
    config: LocalConfig,
    *,
    aws_endpoint: str,
    connections_endpoint: str,
    issuer: str,
    audience: str,
    jwks_url: str,
    ip_hash_key_parameter: str,
) -> dict[str, str]:
    """The environment every function sees, rendered from the settings model and tables."""
    stage = config.stack
    env = config.settings.runtime_environment()
    env.update({table.env: table.physical_name(stage) for table in TABLES})
    env.update(
        {
            "CONNECTIONS_ENDPOINT": connections_endpoint,
            # The key itself is in the embedded SSM, as on AWS: only its name is here.
            PARAMETER_ENV: ip_hash_key_parameter,
            BY_KEY["authIssuer"].env: issuer,
            BY_KEY["authAudience"].env: audience,
            BY_KEY["authJwksUrl"].env: jwks_url,
            "AWS_ENDPOINT_URL": aws_endpoint,
            "AWS_DEFAULT_REGION": config.region,
            "AWS_REGION": config.region,
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_XRAY_SDK_ENABLED": "false",
            **DUMMY_CREDENTIALS,
        }
    )
    return env


def apply_environment(env: Mapping[str, str]) -> None:
    """Install ``env`` in this process, removing variables that point boto3 elsewhere."""
    for name in list(os.environ):
        if name in _FOREIGN_AWS_VARIABLES or name.startswith("AWS_ENDPOINT_URL_"):
            del os.environ[name]
    os.environ.update(env)
