"""The stack's HMAC key, read from SSM Parameter Store once per process (cold start).

The key is a SecureString parameter, never an environment variable: a function's
environment is readable by anyone with ``lambda:GetFunctionConfiguration``. The function's
environment names the parameter (``IP_HASH_KEY_PARAMETER``); its role may read that one
parameter. The parameter uses the AWS-managed ``aws/ssm`` key, whose key policy lets the
account's principals decrypt through SSM, so no KMS grant is needed.
"""

from __future__ import annotations

import functools
import os

from runtime import aws
from runtime.settings import SettingsError

PARAMETER_ENV = "IP_HASH_KEY_PARAMETER"


def parameter_name_for(prefix: str) -> str:
    """The parameter of the stack whose names start with ``prefix`` (AWS and local alike):
    ``/session-management-dev/ip-hash-key``."""
    return f"/{prefix}/ip-hash-key"


def parameter_name() -> str:
    name = os.environ.get(PARAMETER_ENV, "")
    if not name:
        # A per-process random key would make hashes (and so rate-limit keys) differ between
        # instances; refusing to serve is safer than silently weakening the limits.
        raise SettingsError(f"{PARAMETER_ENV} is not set: the functions need the stack's HMAC key")
    return name


@functools.cache
def ip_hash_key() -> bytes:
    """The key, decrypted; one GetParameter per process (``runtime.aws.reset_clients`` forgets
    it, with the clients)."""
    response = aws.ssm().get_parameter(Name=parameter_name(), WithDecryption=True)
    value: str = response["Parameter"]["Value"]
    return value.encode()
