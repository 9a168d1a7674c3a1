"""Verification of speaker tokens (Cognito ID tokens or any RS256 JWT from the configured issuer).

Only RS256 is accepted, so ``alg: none`` and HS256 tokens "signed" with the public key are
refused before any key is used. The signing key comes from the issuer's JWKS through one
``PyJWKClient`` per URL, kept for the life of the process so warm invocations verify without
a network call. The verified user ID is the token's ``sub``: stable and unique per user
(unlike ``cognito:username``, which an administrator can reuse).

The token itself is never logged: error messages are fixed strings, not PyJWT's texts.
"""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING, Any

import jwt

from runtime.config import config
from runtime.errors import ErrorCode, ServiceError

if TYPE_CHECKING:
    from runtime.invocation import Invocation

ALGORITHMS = ["RS256"]
LEEWAY_S = 10  # clock skew tolerated on exp / iat / nbf
JWKS_TIMEOUT_S = 2.0  # keeps a hanging identity provider well inside $connect's timeout
JWKS_LIFESPAN_S = 3600  # keys rotate rarely; an unknown kid still triggers a refresh
# A Cognito ID token is ~1-2 KB; anything far larger is not a token we issued.
MAX_TOKEN_CHARS = 16 * 1024
# The what-to-do of most token errors.
_OWN = "use an ID token from this stack's identity provider."

_REASONS: tuple[tuple[type[Exception], str, str], ...] = (
    (jwt.ExpiredSignatureError, "expired", "The token has expired; sign in again."),
    (jwt.InvalidAudienceError, "audience", "The token was not issued for this service; " + _OWN),
    (jwt.InvalidIssuerError, "issuer", "The token was not issued by the trusted issuer; " + _OWN),
    (jwt.InvalidAlgorithmError, "algorithm", "The token must be signed with RS256; " + _OWN),
    (jwt.InvalidSignatureError, "signature", "The token signature is invalid; sign in again."),
    (
        jwt.ImmatureSignatureError,
        "notYetValid",
        "The token is not valid yet; check this device's clock, then retry.",
    ),
    (jwt.MissingRequiredClaimError, "missingClaim", "The token lacks a required claim; " + _OWN),
)
_MALFORMED = "The token is malformed; send the ID token exactly as it was issued."
# A JWS in compact serialisation: three base64url segments (RFC 7515 §7.1; padding tolerated),
# the signature empty only for ``alg: none``, refused later. Anything else never reaches PyJWT,
# which encodes the text as UTF-8 first and raises UnicodeEncodeError (not a PyJWTError) on a
# lone surrogate such as '\ud800'.
_COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+=*\.[A-Za-z0-9_-]+=*\.[A-Za-z0-9_-]*=*")


@functools.lru_cache(maxsize=8)
def jwks_client(url: str) -> jwt.PyJWKClient:
    """The process-wide JWKS client of ``url`` (signing keys cached across invocations)."""
    return jwt.PyJWKClient(url, cache_keys=True, lifespan=JWKS_LIFESPAN_S, timeout=JWKS_TIMEOUT_S)


def clear_cache() -> None:
    """Forget cached JWKS clients and keys (tests, key rotation drills)."""
    jwks_client.cache_clear()


def _unauthorized(message: str, reason: str) -> ServiceError:
    return ServiceError(ErrorCode.UNAUTHORIZED, message, reason=reason)


def _unavailable(inv: Invocation | None, error: Exception) -> ServiceError:
    if inv is not None:
        inv.count_dependency_failure("identityProvider", error)
    return ServiceError(
        ErrorCode.SERVICE_UNAVAILABLE,
        "The identity provider is unavailable, so the token cannot be verified; "
        "retry shortly (connecting without a token still works for listeners).",
        retryable=True,
    )


def _signing_key(token: str, inv: Invocation | None) -> Any:
    cfg = config()
    if not (cfg.auth_jwks_url and cfg.auth_issuer and cfg.auth_audience):
        # Misconfiguration, not the client's fault: refuse rather than accept any issuer.
        raise _unavailable(inv, RuntimeError("auth issuer, audience or JWKS URL not configured"))
    try:
        header = jwt.get_unverified_header(token)
    except (jwt.PyJWTError, ValueError):  # ValueError: UnicodeError and kin, never a 500
        raise _unauthorized(_MALFORMED, "malformed") from None
    # Checked before the key lookup so a forged token cannot make us fetch the JWKS.
    if header.get("alg") not in ALGORITHMS:
        raise _unauthorized("The token must be signed with RS256; " + _OWN, "algorithm")
    if not isinstance(header.get("kid"), str):
        raise _unauthorized("The token has no key ID; " + _OWN, "malformed")
    try:
        client = jwks_client(cfg.auth_jwks_url)
    except jwt.PyJWKClientError as error:  # e.g. a JWKS URL that is not http(s)
        raise _unavailable(inv, error) from error
    try:
        # The key set first (cached after the first fetch): any failure here is the
        # provider's (down, not JSON, no usable keys), not the client's.
        client.get_signing_keys()
    except (jwt.PyJWTError, ValueError) as error:
        raise _unavailable(inv, error) from error
    try:
        # Looks the kid up, refreshing the set once (rate-limited) for a rotated key.
        jwk = client.get_signing_key(header["kid"])
    except jwt.PyJWKClientConnectionError as error:
        raise _unavailable(inv, error) from error
    except jwt.PyJWTError:
        raise _unauthorized(
            "The token was signed with an unknown key; " + _OWN, "unknownKey"
        ) from None
    if jwk.key_type != "RSA":
        raise _unauthorized("The token was signed with an unknown key; " + _OWN, "unknownKey")
    return jwk.key


def verify_token(token: str, inv: Invocation | None = None) -> str:
    """The verified user ID (``sub``) of a speaker token.

    Raises UNAUTHORIZED (``details.reason``) for any token that is not a valid, current,
    RS256-signed ID token of the configured issuer and audience; SERVICE_UNAVAILABLE (and
    counts a DependencyFailure on ``inv``) when the JWKS cannot be fetched.
    """
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_CHARS:
        raise _unauthorized(_MALFORMED, "malformed")
    if not _COMPACT_JWS.fullmatch(token):  # whatever characters it holds: 401, not a crash
        raise _unauthorized(_MALFORMED, "malformed")
    key = _signing_key(token, inv)
    cfg = config()
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=ALGORITHMS,
            audience=cfg.auth_audience,
            issuer=cfg.auth_issuer,
            leeway=LEEWAY_S,
            options={"require": ["exp", "iat", "sub"]},
        )
    except jwt.PyJWTError as error:
        for kind, reason, message in _REASONS:
            if isinstance(error, kind):
                raise _unauthorized(message, reason) from None
        raise _unauthorized(_MALFORMED, "malformed") from None
    # Cognito access tokens have no `aud`; an ID token says so explicitly.
    if claims.get("token_use", "id") != "id":
        raise _unauthorized(
            "An ID token is required, not an access token; connect with the ID token.", "tokenUse"
        )
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject.strip():
        raise _unauthorized("The token has no subject; " + _OWN, "missingClaim")
    return subject
