"""The data layer: every read and write of the service's DynamoDB tables.

One module per kind of record — ``connections``, ``sessions``, ``rate_windows`` (the
RateLimits table and a connection's heartbeat minute) and ``sweeps`` (what the sweeper
reads and corrects) — over ``dynamo``, the primitives they share: the item codec, paging,
batches, named transactions and the one ``Conflict`` a failed condition raises. Each
function is one DynamoDB round trip (batches excepted), and every capacity limit is a
condition inside a write, never a read followed by a write. Attribute names are the data
contract (docs/architecture.md#data).

The package's public names are re-exported here, so callers write ``store.get_session``
without knowing which module is its home.
"""

from runtime.store.connections import (
    LISTENER,
    ROLE_ATTRIBUTES,
    ROLES,
    SPEAKER,
    claim_role,
    delete_connection,
    delete_connections,
    get_connection,
    listener_connections,
    put_connection,
    release_roles,
    whole_records,
)
from runtime.store.dynamo import Conflict, Record, from_item, now_s, to_item, ttl_from_now
from runtime.store.rate_windows import (
    BUCKET_TAT,
    FAILED_LOOKUPS,
    HEARTBEAT_WINDOW_MS,
    REFRESH_NOTIFIED,
    WARNING_NOTIFIED,
    count_failed_lookup,
    count_in_window,
    failed_lookups,
    heartbeat_window,
    record_heartbeat,
    stale_windows,
    take_from_bucket,
)
from runtime.store.records import ConnectionItem, SessionItem
from runtime.store.sessions import (
    ACTIVE_SHARD,
    COUNTERS_KEY,
    active_sessions,
    add_listener,
    add_refreshed_listener,
    create_session,
    end_session,
    forget_user_sessions,
    get_session,
    remove_listener,
    swap_speaker,
    user_key,
)
from runtime.store.sweeps import (
    count_listeners,
    existing_connections,
    is_silent,
    note_missing_speaker,
    sessions_by_id,
    set_active_sessions,
    set_listener_count,
    sweep_connections,
)

__all__ = [
    "ACTIVE_SHARD",
    "BUCKET_TAT",
    "COUNTERS_KEY",
    "FAILED_LOOKUPS",
    "HEARTBEAT_WINDOW_MS",
    "LISTENER",
    "REFRESH_NOTIFIED",
    "ROLES",
    "ROLE_ATTRIBUTES",
    "SPEAKER",
    "WARNING_NOTIFIED",
    "Conflict",
    "ConnectionItem",
    "Record",
    "SessionItem",
    "active_sessions",
    "add_listener",
    "add_refreshed_listener",
    "claim_role",
    "count_failed_lookup",
    "count_in_window",
    "count_listeners",
    "create_session",
    "delete_connection",
    "delete_connections",
    "end_session",
    "existing_connections",
    "failed_lookups",
    "forget_user_sessions",
    "from_item",
    "get_connection",
    "get_session",
    "heartbeat_window",
    "is_silent",
    "listener_connections",
    "note_missing_speaker",
    "now_s",
    "put_connection",
    "record_heartbeat",
    "release_roles",
    "remove_listener",
    "sessions_by_id",
    "set_active_sessions",
    "set_listener_count",
    "stale_windows",
    "swap_speaker",
    "sweep_connections",
    "take_from_bucket",
    "to_item",
    "ttl_from_now",
    "user_key",
    "whole_records",
]
