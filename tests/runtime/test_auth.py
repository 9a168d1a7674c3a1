"""Speaker token verification against a real RSA key served as a JWKS on 127.0.0.1."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from runtime import auth
from runtime.errors import ErrorCode, ServiceError
from tests.runtime.helpers_entry import (
    KID,
    Issuer,
    alg_none_token,
    claims,
    closed_port,
    hs256_with_public_key,
    jwks_of,
    public_pem,
    rsa_key,
    sign,
    use_jwks_url,
)


def _refused(token: str) -> ServiceError:
    with pytest.raises(ServiceError) as raised:
        auth.verify_token(token)
    return raised.value


def test_a_valid_id_token_yields_its_subject(issuer: Issuer) -> None:
    assert auth.verify_token(issuer.token("user-42")) == "user-42"


def test_token_use_may_be_absent_but_not_access(issuer: Issuer) -> None:
    assert auth.verify_token(sign(claims("u1", token_use=None))) == "u1"
    error = _refused(sign(claims("u1", token_use="access")))
    assert error.code is ErrorCode.UNAUTHORIZED
    assert error.details == {"reason": "tokenUse"}


def test_small_clock_skew_is_tolerated_but_not_more(issuer: Issuer) -> None:
    now = int(time.time())
    assert auth.verify_token(sign(claims(iat=now - 3600, exp=now - 2))) == "user-123"
    error = _refused(sign(claims(iat=now - 3600, exp=now - auth.LEEWAY_S - 5)))
    assert error.details["reason"] == "expired"


@pytest.mark.parametrize("subject", ["", "   "])
def test_blank_subject_is_refused(issuer: Issuer, subject: str) -> None:
    assert _refused(sign(claims(sub=subject))).code is ErrorCode.UNAUTHORIZED


def test_forged_algorithms_are_refused_without_fetching_keys(issuer: Issuer) -> None:
    for token in (alg_none_token(claims()), hs256_with_public_key(claims(), rsa_key())):
        error = _refused(token)
        assert (error.code, error.details) == (ErrorCode.UNAUTHORIZED, {"reason": "algorithm"})
    assert issuer.requests == 0


def test_hs256_with_the_public_key_would_verify_if_hs256_were_allowed(issuer: Issuer) -> None:
    # Proves the forged token above is a real algorithm-confusion attempt, not mere garbage:
    # its MAC is valid under the public key, so only the algorithm allow-list stops it.
    token = hs256_with_public_key(claims(), rsa_key())
    header, payload, mac = token.split(".")
    expected = hmac.new(public_pem(rsa_key()), f"{header}.{payload}".encode(), hashlib.sha256)
    assert base64.urlsafe_b64encode(expected.digest()).rstrip(b"=").decode() == mac


def test_token_without_kid_is_refused(issuer: Issuer) -> None:
    token = jwt.encode(claims(), rsa_key(), algorithm="RS256")
    assert _refused(token).details == {"reason": "malformed"}


@pytest.mark.parametrize(
    "token",
    [
        "\ud800",  # a lone surrogate: PyJWT's UTF-8 encoding raised UnicodeEncodeError (a 500)
        "\ud800.\udfff.x",
        "a.b.\ud800",
        "ümlaut.header.sig",
        "a.b",
        "a.b.c.d",
        " a.b.c",
        "a..c",
    ],
)
def test_any_token_that_is_not_a_compact_jws_is_malformed_without_fetching_keys(
    issuer: Issuer, token: str
) -> None:
    error = _refused(token)
    assert (error.code, error.details) == (ErrorCode.UNAUTHORIZED, {"reason": "malformed"})
    assert issuer.requests == 0


def test_keys_are_cached_across_verifications(issuer: Issuer) -> None:
    for user in ("a", "b", "c"):
        assert auth.verify_token(issuer.token(user)) == user
    assert issuer.requests == 1


def test_unknown_kid_refreshes_at_most_once_per_cooldown(issuer: Issuer) -> None:
    assert auth.verify_token(issuer.token()) == "user-123"
    for _ in range(3):
        assert _refused(sign(claims(), kid="nope")).details == {"reason": "unknownKey"}
    # The first fetch starts PyJWKClient's refresh cooldown: unknown kids cannot make us
    # hammer the identity provider.
    assert issuer.requests == 1


def test_a_non_rsa_key_under_the_tokens_kid_is_refused(issuer: Issuer) -> None:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ec_jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(ec_key.public_key()))
    issuer.state.jwks = {"keys": [{**ec_jwk, "kid": KID, "use": "sig"}]}
    assert _refused(issuer.token()).code is ErrorCode.UNAUTHORIZED


def test_rotated_key_is_found_after_the_cooldown(
    issuer: Issuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert auth.verify_token(issuer.token()) == "user-123"
    new_key = rsa_key("rotated")
    issuer.state.jwks = {"keys": [*issuer.state.jwks["keys"], *jwks_of(new_key, "k2")["keys"]]}
    client = auth.jwks_client(issuer.jwks_url)
    monkeypatch.setattr(client, "cooldown_duration", 0)
    assert auth.verify_token(sign(claims("rotated-user"), new_key, kid="k2")) == "rotated-user"
    assert issuer.requests == 2


def test_unreachable_jwks_is_service_unavailable(
    issuer: Issuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_jwks_url(monkeypatch, f"http://127.0.0.1:{closed_port()}/jwks.json")
    error = _refused(issuer.token())
    assert error.code is ErrorCode.SERVICE_UNAVAILABLE
    assert "identity provider" in error.message


def test_jwks_with_no_keys_is_service_unavailable(issuer: Issuer) -> None:
    issuer.state.jwks = {"keys": []}
    assert _refused(issuer.token()).code is ErrorCode.SERVICE_UNAVAILABLE


@pytest.mark.parametrize("unset", ["AUTH_ISSUER", "AUTH_AUDIENCE"])
def test_missing_auth_configuration_refuses_rather_than_trusting_anyone(
    issuer: Issuer, monkeypatch: pytest.MonkeyPatch, unset: str
) -> None:
    token = issuer.token()
    monkeypatch.setenv(unset, "")
    use_jwks_url(monkeypatch, issuer.jwks_url)
    assert _refused(token).code is ErrorCode.SERVICE_UNAVAILABLE


def test_non_http_jwks_url_is_a_configuration_error(
    issuer: Issuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = issuer.token()
    use_jwks_url(monkeypatch, "file:///etc/passwd")
    assert _refused(token).code is ErrorCode.SERVICE_UNAVAILABLE


def test_error_messages_never_contain_the_token(issuer: Issuer) -> None:
    forged = sign(claims(aud="x"), rsa_key("attacker"))
    for token in (forged, "x" * 40, forged[:-3], alg_none_token(claims())):
        error = _refused(token)
        assert token not in error.message and token not in json.dumps(error.details)
        for segment in token.split("."):
            if len(segment) > 8:
                assert segment not in error.message
