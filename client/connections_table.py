"""``python -m local connections``: the open connections as a table, and how to post to one."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from runtime.terminal import printable

_COLUMNS = (
    ("CONNECTION ID", "connectionId"),
    ("ROLE", "role"),
    ("SESSION", "sessionId"),
    ("LANG", "targetLanguage"),
    ("USER", "userId"),
    ("AGE", "ageSeconds"),
)


def print_connections(
    connections: Sequence[Mapping[str, Any]], info: Mapping[str, Any], *, as_json: bool = False
) -> None:
    """The table on stdout; with ``as_json`` the list itself (for scripts and jq)."""
    if as_json:
        sys.stdout.write(json.dumps(list(connections), indent=2) + "\n")
        return
    out = sys.stdout
    out.write(f"{len(connections)} open connection(s) on {printable(info.get('websocketUrl'))}\n")
    if connections:
        rows = [[_cell(c, key) for _, key in _COLUMNS] for c in connections]
        widths = [
            max(len(title), *(len(row[i]) for row in rows)) for i, (title, _) in enumerate(_COLUMNS)
        ]
        for row in [[title for title, _ in _COLUMNS], *rows]:
            cells = (cell.ljust(w) for cell, w in zip(row, widths, strict=True))
            out.write("  ".join(cells).rstrip() + "\n")
    example = connections[0]["connectionId"] if connections else "CONNECTION_ID"
    out.write(
        "\npost to one with boto3 (the local stack accepts any credentials):\n"
        f'  boto3.client("apigatewaymanagementapi", endpoint_url="{info.get("connectionsUrl")}", '
        f'region_name="{info.get("region")}", aws_access_key_id="local", '
        f'aws_secret_access_key="local").post_to_connection(ConnectionId="{example}", '
        'Data=b\'{"type": "hello"}\')\n'
    )
    out.flush()


def _cell(connection: Mapping[str, Any], key: str) -> str:
    value = connection.get(key)
    if key == "ageSeconds" and isinstance(value, int):
        minutes, seconds = divmod(value, 60)
        return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"
    if key == "role" and not value:
        return "(none yet)"
    # A user ID comes from a token: shown escaped, never with raw control characters.
    return "-" if value in (None, "") else printable(value)
