"""The local token issuer: an RSA key made at start, its JWKS, and Cognito-shaped ID tokens.

The runtime verifies these on the same code path as Cognito tokens: RS256, ``kid`` header
matching the JWKS served at ``/.well-known/jwks.json``, ``iss``/``aud``/``exp`` checked.
``client.local_stack.fetch_token`` is the client side of the stack's local-only minting endpoint.
"""

from __future__ import annotations

import secrets
import time
import uuid
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from client.local_stack import DEFAULT_TTL_S

MAX_TTL_S = 24 * 3600
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
