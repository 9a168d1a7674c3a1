"""Refresh tokens: proof that a ``refreshConnection`` replaces a connection of that session.

Every reply or push that gives a connection a role (``sessionCreated``, ``sessionJoined``,
``connectionRefreshComplete``) and the ``connectionRefreshRequired`` push carry a
``refreshToken`` for that connection: ``<connection ID, base64url>.<HMAC-SHA256>``, the HMAC
over the session ID, the role and the connection ID under the stack's key
(``runtime.hash_key``, the key of the keyed hashes). The client sends it back, unread, in the
``refreshConnection`` of its new connection. The service checks the HMAC (no AWS call) and
then, inside the refresh's one transaction, that the named connection still holds that role in
that session and has not been replaced before: a token replaces one connection, once.

A token carries its own connection's ID, which only that client ever receives; it is never
logged, stored or echoed in an error. It needs no expiry: it is worth something only while
its connection holds the role.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

from runtime.errors import ErrorCode, ServiceError
from runtime.hash_key import ip_hash_key

FIELD = "refreshToken"
# Longer than any token this module makes (API Gateway connection IDs are ~16 characters).
MAX_LENGTH = 512
_MAC_CHARS = 32  # 128 bits


def _mac(session_id: str, role: str, connection_id: str) -> str:
    message = "\x00".join(("refresh", session_id, role, connection_id)).encode()
    return hmac.new(ip_hash_key(), message, hashlib.sha256).hexdigest()[:_MAC_CHARS]


def issue(session_id: str, role: str, connection_id: str) -> str:
    """The token that lets a new connection replace ``connection_id`` as ``role`` of the session."""
    encoded = base64.urlsafe_b64encode(connection_id.encode()).decode().rstrip("=")
    return f"{encoded}.{_mac(session_id, role, connection_id)}"


def replaced_connection(value: object, session_id: str, role: str) -> str | None:
    """The connection a ``refreshToken`` names, if it is a genuine token for this session and
    role; None when there is no token or it does not verify (the refresh then has no proof).

    A token that is not a string is a client bug: INVALID_PARAMETERS.
    """
    if value is None:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= MAX_LENGTH:
        raise ServiceError(
            ErrorCode.INVALID_PARAMETERS,
            f"'{FIELD}' must be the string the service sent with the role "
            "(sessionJoined, sessionCreated, connectionRefreshComplete or "
            "connectionRefreshRequired); send it unchanged, or leave it out.",
            field=FIELD,
        )
    encoded, _, mac = value.partition(".")
    try:
        connection_id = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    expected = _mac(session_id, role, connection_id).encode()
    if not connection_id or not hmac.compare_digest(mac.encode(), expected):
        return None
    return connection_id
