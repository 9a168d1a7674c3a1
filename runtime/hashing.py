"""Keyed hashes for client identifiers: IPs and connection IDs never appear raw in logs or keys.

HMAC-SHA256 with the stack's secret (``runtime.hash_key``), so a hash cannot be reversed by
hashing the IPv4 space.
"""

from __future__ import annotations

import hashlib
import hmac

from runtime.hash_key import ip_hash_key

_HASH_CHARS = 16  # 64 bits: enough to correlate, too short to be worth brute-forcing


def keyed_hash(value: str) -> str:
    """HMAC-SHA256 of ``value`` under the stack key, hex, truncated."""
    digest = hmac.new(ip_hash_key(), value.encode(), hashlib.sha256).hexdigest()
    return digest[:_HASH_CHARS]


def ip_hash(ip: str | None) -> str:
    return keyed_hash("ip:" + (ip or "unknown"))


def connection_hash(connection_id: str) -> str:
    return keyed_hash("conn:" + connection_id)
