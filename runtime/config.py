"""The functions' configuration, read once per process from environment variables.

Every setting is parsed by the same model that ``components`` and ``local`` use
(``runtime.settings``), so a default or a limit cannot differ between them.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from typing import Any

from runtime.settings import BY_KEY, SETTINGS, RuntimeSettings
from runtime.tables import CONNECTIONS, RATE_LIMITS, SESSIONS


@dataclass(frozen=True)
class RuntimeConfig(RuntimeSettings):
    """The settings (typed, by key: ``config().maxActiveSessions``) and what the stack
    resolves for every function: stage, table names, endpoint and token issuer."""

    stage: str
    sessions_table: str
    connections_table: str
    rate_limits_table: str
    connections_endpoint: str
    auth_issuer: str
    auth_audience: str
    auth_jwks_url: str


def _setting(key: str) -> Any:
    setting = BY_KEY[key]
    raw = os.environ.get(setting.env, "")
    return setting.parse(raw) if raw.strip() else setting.default


@functools.cache
def config() -> RuntimeConfig:
    """The process's configuration; ``config.cache_clear()`` re-reads it (tests)."""
    stage = os.environ.get("STAGE", "dev")
    settings = {s.key: _setting(s.key) for s in SETTINGS if s.runtime}
    issuer = settings["authIssuer"]
    return RuntimeConfig(
        **settings,
        stage=stage,
        sessions_table=os.environ.get(SESSIONS.env, SESSIONS.physical_name(stage)),
        connections_table=os.environ.get(CONNECTIONS.env, CONNECTIONS.physical_name(stage)),
        rate_limits_table=os.environ.get(RATE_LIMITS.env, RATE_LIMITS.physical_name(stage)),
        connections_endpoint=os.environ.get("CONNECTIONS_ENDPOINT", ""),
        auth_issuer=issuer,
        auth_audience=settings["authAudience"],
        auth_jwks_url=settings["authJwksUrl"]
        or (f"{issuer.rstrip('/')}/.well-known/jwks.json" if issuer else ""),
    )
