"""The local token issuer: an RSA key made at start, its JWKS, and Cognito-shaped ID tokens.

The runtime verifies these on the same code path as Cognito tokens: RS256, ``kid`` header
matching the JWKS served at ``/.well-known/jwks.json``, ``iss``/``aud``/``exp`` checked.
``fetch_token`` is the client side of the stack's local-only minting endpoint.
"""

from __future__ import annotations

import json
import secrets
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

DEFAULT_TTL_S = 3600
MAX_TTL_S = 24 * 3600
TOKEN_PATH = "/_local/token"  # noqa: S105 (a URL path, not a secret)
INFO_PATH = "/_local/info"
CONNECTIONS_PATH = "/_local/connections"
JWKS_PATH = "/.well-known/jwks.json"


class TokenIssuer:
    """Mints RS256 ID tokens like a Cognito user pool would, for one local stack."""

    def __init__(self, issuer: str, audience: str) -> None:
        self.issuer = issuer
        self.audience = audience
        self.kid = secrets.token_hex(8)
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwks(self) -> dict[str, Any]:
        """The public key set, as the JWKS endpoint serves it."""
        jwk = RSAAlgorithm.to_jwk(self._key.public_key(), as_dict=True)
        jwk.update({"kid": self.kid, "use": "sig", "alg": "RS256"})
        return {"keys": [jwk]}

    def mint(self, user: str, ttl_s: int = DEFAULT_TTL_S) -> str:
        """An ID token for ``user`` valid for ``ttl_s`` seconds (negative: already expired)."""
        now = int(time.time())
        claims = {
            "sub": user,
            "cognito:username": user,
            "iss": self.issuer,
            "aud": self.audience,
            "token_use": "id",
            "auth_time": now,
            "iat": min(now, now + ttl_s),
            "exp": now + ttl_s,
            "jti": str(uuid.uuid4()),
        }
        return jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": self.kid})


class NoLocalStack(RuntimeError):
    """No local stack answers on the given port."""


def fetch_token(user: str, port: int, host: str = "127.0.0.1", ttl_s: int = DEFAULT_TTL_S) -> str:
    """Ask the local stack on ``host:port`` for a speaker token for ``user``."""
    query = urllib.parse.urlencode({"user": user, "ttl": ttl_s})
    doc = _get_json(f"http://{host}:{port}{TOKEN_PATH}?{query}", port)
    token = doc.get("token")
    if not isinstance(token, str):
        raise NoLocalStack(f"port {port} answered without a token: {doc}")
    return token


def fetch_info(port: int, host: str = "127.0.0.1") -> dict[str, Any]:
    """The running local stack's URLs and settings summary."""
    return _get_json(f"http://{host}:{port}{INFO_PATH}", port)


def fetch_connections(port: int, host: str = "127.0.0.1") -> list[dict[str, Any]]:
    """The running local stack's open connections, each with its role and session."""
    doc = _get_json(f"http://{host}:{port}{CONNECTIONS_PATH}", port)
    return list(doc.get("connections") or [])


def _get_json(url: str, port: int) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (http://127.0.0.1)
            doc: dict[str, Any] = json.loads(response.read().decode())
            return doc
    except urllib.error.HTTPError as error:
        body = error.read().decode(errors="replace")[:300]
        if error.code == 404:
            raise NoLocalStack(
                f"something answers on port {port}, but it is not a local stack ({body!r})"
            ) from None
        raise NoLocalStack(
            f"the local stack on port {port} said HTTP {error.code}: {body}"
        ) from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise NoLocalStack(
            f"no local stack is running on port {port} ({reason}); start one with `make dev` "
            f"or `uv run python -m local --port {port}`"
        ) from None
    except ValueError:
        raise NoLocalStack(f"port {port} did not answer with JSON: not a local stack") from None
