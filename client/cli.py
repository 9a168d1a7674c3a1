"""A command-line speaker and listener for people, against local or deployed URLs.

    python -m local speak [--url URL] [--token T] [--lang en] [--tier standard]
    python -m local listen SESSION_ID --lang es [--url URL]
    python -m local token --user NAME [--port PORT]
    python -m local connections [--port PORT] [--json]

(``python -m client …`` is the same.) Without ``--url``/``--port`` (and ``$SESSION_URL``)
they use the local stack running from this folder (``client.local_stack``), and say so
when none runs or several do.

One line per event on stdout, with a timestamp; problems on stderr with what went wrong
(connection refused, handshake 401/429, error replies with code and message) and a non-zero
exit. Both roles heartbeat (every 30 s by default) and follow ``connectionRefreshRequired``:
a new connection is opened, ``refreshConnection`` sent on it, and the old one closed once
the server confirms (best effort: on an error reply the current connection is kept).

Heartbeats stay within the stack's ``heartbeatsPerMinute``: an interval the stack would
refuse is refused up front (the local stack's own setting, read from ``/_local/info``; for a
deployed URL the setting's default), and a ``retryAfter`` in any error reply holds the next
heartbeat back until it has passed; a refresh refused with one is sent again (on a new
connection) once it has passed.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import signal
import sys
import urllib.parse
from collections.abc import Callable, Sequence
from typing import Any

from client.connection import CLI, ClientError, check_websocket_url, is_local, without_query
from client.connections_table import print_connections
from client.conversation import Conversation, describe, emit, emit_doc, fail
from client.local_stack import (
    DEFAULT_TTL_S,
    NoLocalStack,
    NoStackFound,
    fetch_connections,
    fetch_info,
    fetch_token,
    the_running_stack,
)
from runtime.settings import BY_KEY
from runtime.terminal import printable

DEFAULT_PORT = 8080
DEFAULT_URL = f"ws://127.0.0.1:{DEFAULT_PORT}/dev"
PORT_HELP = "port of the running local stack (default: the one running from this folder)"


def _session_banner(session_id: str, url: str) -> None:
    line = "=" * 64
    url_flag = "" if url == DEFAULT_URL else f" --url {url}"
    sys.stdout.write(
        f"{line}\n  SESSION ID   {printable(session_id)}\n"
        f"  listeners:   {CLI} listen {printable(session_id)} --lang es{printable(url_flag)}\n"
        f"{line}\n"
    )
    sys.stdout.flush()


async def speak(args: argparse.Namespace) -> int:
    token = args.token
    if not token:
        if not is_local(args.url):
            raise ClientError("a speaker needs a token for a deployed stack: --token ID_TOKEN")
        port = urllib.parse.urlsplit(args.url).port or 80
        try:
            token = fetch_token(args.user, port)
        except NoLocalStack as error:
            raise ClientError(str(error)) from None
        emit("token", f"fetched a local speaker token for user '{args.user}'")
    create = {"action": "createSession", "sourceLanguage": args.lang, "qualityTier": args.tier}

    def created(reply: dict[str, Any]) -> dict[str, Any]:
        session_id = str(reply.get("sessionId"))
        _session_banner(session_id, without_query(args.url))
        return {"sessionId": session_id, "role": "speaker"}

    talk = Conversation(args.url, token, args.heartbeat, args.verbose)
    return await _converse(talk, create, "sessionCreated", created)


async def listen(args: argparse.Namespace) -> int:
    join = {"action": "joinSession", "sessionId": args.session_id, "targetLanguage": args.lang}
    refresh = {"sessionId": args.session_id, "role": "listener", "targetLanguage": args.lang}
    talk = Conversation(args.url, None, args.heartbeat, args.verbose)
    return await _converse(talk, join, "sessionJoined", lambda _reply: refresh)


async def _converse(
    talk: Conversation,
    first: dict[str, Any],
    expected: str,
    refresh: Callable[[dict[str, Any]], dict[str, Any]],
) -> int:
    """Connect, send ``first`` and, once it succeeds, follow the session until it ends.

    ``refresh(reply)`` gives what a refreshConnection must say for this role. Exit code 0
    when stopped before the reply came, 1 when the server refused.
    """
    _stop_on_signals(talk.stop)
    talk.current = await talk.open()
    emit("connected", without_query(talk.url))
    reply = await talk.request(first, expected)
    if reply is None:
        await talk.close_all()
        return 0
    if reply.get("type") == "error":
        fail(describe(reply))
        await talk.close_all()
        return 1
    emit_doc(reply)
    talk.refresh = refresh(reply)
    talk.keep_token(reply)
    return await talk.run(final_types=("sessionEnded",))


def _stop_on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)


def parser(command: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"python -m local {command}")
    if command == "speak":
        p.description = "Create a session as its speaker and show what the server pushes."
        p.add_argument("--token", help="speaker ID token (fetched from a local stack if omitted)")
        p.add_argument("--user", default=_user(), help="user for a fetched local token")
        p.add_argument("--lang", default="en", help="source language (ISO 639-1)")
        p.add_argument("--tier", default="standard", help="quality tier: standard or premium")
    else:
        p.description = "Join a session as a listener and show what the server pushes."
        p.add_argument("session_id", metavar="SESSION_ID", help="e.g. golden-eagle-427")
        p.add_argument("--lang", required=True, help="target language (ISO 639-1)")
    p.add_argument(
        "--url",
        default=os.environ.get("SESSION_URL") or None,
        help="WebSocket URL (default: $SESSION_URL, else the local stack running from this folder)",
    )
    p.add_argument("--heartbeat", type=float, default=30.0, help="seconds between heartbeats")
    p.add_argument("-v", "--verbose", action="store_true", help="also show heartbeat acks")
    return p


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return "developer"


def heartbeat_limit(url: str) -> tuple[int, str]:
    """Heartbeats a minute the stack at ``url`` allows, and where that number comes from."""
    default = int(BY_KEY["heartbeatsPerMinute"].default)
    if is_local(url):
        port = urllib.parse.urlsplit(url).port or 80
        try:
            settings = fetch_info(port).get("settings") or {}
        except NoLocalStack:
            return default, "the default"  # connecting will explain what is wrong
        limit = settings.get("heartbeatsPerMinute")
        if isinstance(limit, int) and limit > 0:
            return limit, f"the local stack's heartbeatsPerMinute on port {port}"
    return default, "the default heartbeatsPerMinute (a deployed stack may set its own)"


def check_heartbeat(interval_s: float, url: str) -> str | None:
    """Why ``--heartbeat interval_s`` would be refused by the stack, or None if it is fine."""
    if interval_s <= 0:
        return "--heartbeat must be > 0"
    limit, source = heartbeat_limit(url)
    shortest = 60 / limit
    if interval_s < shortest:
        return (
            f"--heartbeat {interval_s:g} is too often: {source} is {limit} a minute per "
            f"connection, so send one every {shortest:g} s or more (the default, 30, is safe)"
        )
    return None


def token_main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m local token",
        description="Print a speaker token accepted by the local stack running on --port.",
    )
    parser.add_argument("--user", required=True, help="the token's subject (speaker user ID)")
    parser.add_argument("--port", type=int, default=None, help=PORT_HELP)
    parser.add_argument("--ttl", type=int, default=DEFAULT_TTL_S, help="validity in seconds")
    args = parser.parse_args(argv)
    try:
        port = args.port if args.port is not None else the_running_stack().port
        print(fetch_token(args.user, port, ttl_s=args.ttl))
    except (NoLocalStack, NoStackFound) as error:
        print(f"error: {printable(error)}", file=sys.stderr)
        return 1
    return 0


def connections_main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m local connections",
        description="List the open connections of the local stack running on --port: "
        "connection ID, role, session, language, user and age, for trying "
        "@connections (post_to_connection) by hand.",
    )
    parser.add_argument("--port", type=int, default=None, help=PORT_HELP)
    parser.add_argument("--json", action="store_true", help="print the list as JSON")
    args = parser.parse_args(argv)
    try:
        port = args.port if args.port is not None else the_running_stack().port
        info = fetch_info(port)
        connections = fetch_connections(port)
    except (NoLocalStack, NoStackFound) as error:
        print(f"error: {printable(error)}", file=sys.stderr)
        return 1
    print_connections(connections, info, as_json=args.json)
    return 0


def main(command: str, argv: Sequence[str]) -> int:
    args = parser(command).parse_args(argv)
    try:
        if args.url is None:
            args.url = the_running_stack().websocket_url
        check_websocket_url(args.url)
    except (NoStackFound, ClientError) as error:
        fail(str(error))
        return 1
    problem = check_heartbeat(args.heartbeat, args.url)
    if problem:
        fail(problem)
        return 2
    try:
        return asyncio.run(speak(args) if command == "speak" else listen(args))
    except ClientError as error:
        fail(str(error))
        return 1
    except KeyboardInterrupt:
        return 0


def run(argv: Sequence[str]) -> int:
    """``COMMAND ARGS…``: speak, listen, token or connections."""
    commands: dict[str, Callable[[Sequence[str]], int]] = {
        "token": token_main,
        "connections": connections_main,
        "speak": lambda rest: main("speak", rest),
        "listen": lambda rest: main("listen", rest),
    }
    if not argv or argv[0] not in commands:
        print(f"usage: python -m client {{{','.join(commands)}}} [ARGS…]", file=sys.stderr)
        return 2
    return commands[argv[0]](argv[1:])
