"""``python -m local``: run the local stack, mint a token, or use the CLI client.

python -m local [--stack dev] [--port 8080] [--aws-port 4566] [--set KEY=VALUE ...]
python -m local token --user NAME [--port 8080]
python -m local connections [--port 8080] [--json]
python -m local speak [--url URL] [--token T] [--lang en] [--tier standard]
python -m local listen SESSION_ID --lang es [--url URL]
python -m local drill --list | NAME [--port 8080]
python -m local rehearse [--port 8080] [--listeners 300]

From the project folder, outside the venv: ``uv run python -m local …``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import re
import signal
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from local.common import console, lifeline

if TYPE_CHECKING:
    from local.config import LocalConfig
    from local.stack import StackOptions

# The client's commands (``client.cli``, also ``python -m client``), and the drills.
CLIENT_COMMANDS = ("token", "connections", "speak", "listen")
COMMANDS = (*CLIENT_COMMANDS, "drill", "rehearse")


def serve_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m local",
        description="Run the whole service locally: embedded AWS (moto), the functions of the "
        "route table, and a WebSocket gateway with API Gateway semantics. Other commands: "
        + ", ".join(COMMANDS)
        + " (python -m local COMMAND --help).",
    )
    parser.add_argument("--stack", default="dev", help="stack whose Pulumi.<stack>.yaml to read")
    parser.add_argument("--port", type=int, default=8080, help="WebSocket/HTTP port (0: any)")
    parser.add_argument("--aws-port", type=int, default=4566, help="embedded AWS port (0: any)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set maxListenersPerSession=1000 (repeatable)",
    )
    parser.add_argument(
        "--idle-timeout",
        type=_positive,
        default=600.0,
        metavar="SECONDS",
        help="close connections silent this long (API Gateway: 600)",
    )
    parser.add_argument(
        "--max-connection",
        type=_positive,
        default=7200.0,
        metavar="SECONDS",
        help="close connections this old (API Gateway: 7200)",
    )
    parser.add_argument(
        "--schedule-interval",
        type=_positive,
        default=None,
        metavar="SECONDS",
        help="period of the scheduled functions and of TTL expiry "
        "(rate(1 minute): 60, divided by --alarm-time-scale)",
    )
    parser.add_argument(
        "--alarm-time-scale",
        type=_positive,
        default=1.0,
        metavar="FACTOR",
        help="evaluate alarms this many times faster: 60 makes a 5-minute alarm period last "
        "5 s (fire drills use it); the every-minute scheduled jobs speed up alike",
    )
    parser.add_argument(
        "--workers", type=int, default=64, help="concurrent function invocations (thread pool)"
    )
    parser.add_argument(
        "--quiet", action="store_true", help="no stderr line per connect/disconnect"
    )
    parser.add_argument(
        "--iam-deny",
        dest="iam_deny",
        action="append",
        default=[],
        metavar="FUNCTION=ACTION[@RESOURCE]",
        help="deny an IAM action (on resources matching RESOURCE, default *) to a function "
        "whatever its policy grants, e.g. --iam-deny 'refresh-connection=dynamodb:GetItem@"
        "*-RateLimits', to see how a missing grant shows (repeatable; every call is checked "
        "against the function's policy anyway)",
    )
    parser.add_argument(
        "--stop-on-stdin-eof",
        action="store_true",
        help="shut down cleanly when stdin closes (for launchers: the stack dies with them)",
    )
    return parser


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return value


def _configure_logging() -> None:
    # Library logging goes to stderr, warnings and up only: stdout is the functions' alone.
    console.log_to_stderr(logging.WARNING, "%(asctime)s %(name)s %(levelname)s: %(message)s")
    for noisy in ("werkzeug", "urllib3", "websockets", "botocore"):
        logging.getLogger(noisy).setLevel(logging.ERROR)


class Interrupted(Exception):
    """A stopping signal arrived before the stack's own handlers were in place."""


_received: list[int] = []


def _interrupted(signum: int, _frame: object) -> None:
    if not _received:  # the same Ctrl-C often arrives twice (from the terminal and from uv)
        _received.append(signum)
        raise Interrupted(signal.Signals(signum).name)


# Under make, errors name the make variables (make dev PORT=9000), not the flags.
_MAKE_VARIABLES = {"--aws-port": "AWS_PORT", "--port": "PORT"}


def option(flag: str) -> str:
    """How the developer sets ``flag``: ``PORT=`` under make, else the flag itself."""
    return f"{_MAKE_VARIABLES[flag]}=" if lifeline.make_pid() is not None else flag


def _name_options(message: str) -> str:
    for flag in _MAKE_VARIABLES:
        message = re.sub(rf"{flag}(?![\w-])", option(flag), message)
    return message


def serve_main(argv: Sequence[str]) -> int:
    """Run the stack until a signal (or its parent's end); the terminal is given back after."""
    # Under make, Ctrl-C must reach the stack alone (local.common.lifeline): take the
    # terminal first, then let no signal end the start-up with a traceback.
    give_back = lifeline.take_terminal() if lifeline.make_pid() is not None else None
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupted)
    try:
        return _serve(argv)
    except Interrupted as stopped:  # before the stack started anything: nothing to stop
        console.say(f"stopped while starting ({stopped}): nothing was left running")
        return 0
    finally:
        console.settle_stdout()
        if give_back is not None:
            give_back()


def _serve(argv: Sequence[str]) -> int:
    from local.aws.embedded import EmbeddedAwsError
    from local.config import load_config
    from local.functions.iam import DenyError, parse_denies
    from local.stack import StackOptions
    from runtime.settings import SettingsError

    args = serve_parser().parse_args(argv)
    if args.port == args.aws_port != 0:
        console.say(
            f"error: {option('--port')} and {option('--aws-port')} are both {args.port}; the "
            "gateway and the embedded AWS need a port each: give them different ones (or 0 for "
            "any free port)"
        )
        return 2
    try:
        config = load_config(args.stack, args.overrides)
    except SettingsError as error:
        console.say(f"error: {error}")
        return 2
    try:
        iam_deny = parse_denies(args.iam_deny)
    except DenyError as error:
        console.say(f"error: {error}")
        return 2
    _configure_logging()
    options = StackOptions(
        port=args.port,
        aws_port=args.aws_port,
        idle_timeout_s=args.idle_timeout,
        max_connection_s=args.max_connection,
        schedule_interval_s=args.schedule_interval or 60.0 / args.alarm_time_scale,
        alarm_time_scale=args.alarm_time_scale,
        workers=max(1, args.workers),
        announce=not args.quiet,
        stop_on_stdin_eof=args.stop_on_stdin_eof,
        iam_deny=iam_deny,
    )
    try:
        return asyncio.run(serve_until_signalled(config, options, make=lifeline.make_pid()))
    except (OSError, EmbeddedAwsError) as error:  # a port in use, mostly: one line, no trace
        console.say(f"error: {_name_options(str(error))}")
        return 1


async def serve_until_signalled(
    config: LocalConfig, options: StackOptions, make: int | None = None
) -> int:
    """Run the stack until SIGINT, SIGTERM or SIGHUP, or until its parent or ``make`` (a PID)
    is gone or dying (``local.common.lifeline``); shut down cleanly, return the exit code."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    first_signal: float | None = None
    received = "SIGTERM"

    def on_signal(sig: signal.Signals) -> None:
        nonlocal first_signal, received
        now = time.monotonic()
        if first_signal is None:
            first_signal, received = now, sig.name
            stop.set()
        elif now - first_signal > 1.0:  # one Ctrl-C often arrives twice (make, uv, python)
            console.say("second signal: exiting without waiting")
            os._exit(130)

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, on_signal, sig)

    def parent_gone(why: str) -> None:
        console.say(f"{why}: stopping the local stack")
        with contextlib.suppress(RuntimeError):  # the loop may be closed already
            loop.call_soon_threadsafe(on_signal, signal.SIGTERM)

    from local.stack import LocalStack  # heavy: imported once the terminal is ours

    watch = lifeline.ParentWatch(parent_gone, make=make).start()
    stack = LocalStack(config, options)
    ready = asyncio.Event()

    def show_banner_again() -> None:
        if ready.is_set() and not stop.is_set():
            console.block(stack.banner(again=True))

    lifeline.watch_stdin(loop, show_banner_again, stop.set if options.stop_on_stdin_eof else None)
    for note in config.notes:
        console.say(f"note: {note}")
    try:
        starting = asyncio.create_task(stack.start())
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():  # stopped while starting: one line, nothing left behind
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await starting
            await stack.stop(quick=True)
            console.say(f"stopped while starting ({received}): nothing was left running")
            return 0
        if starting.exception() is not None:
            await stack.stop(quick=True)
            starting.result()  # raises it
        stack.show_banner()
        ready.set()
        failed = asyncio.create_task(stack.failed.wait())
        await asyncio.wait({stopping, failed}, return_when="FIRST_COMPLETED")
        await stack.stop()
    finally:
        watch.stop()
    console.say("stopped" if not stack.exit_code else f"stopped (exit code {stack.exit_code})")
    return stack.exit_code


def drill_main(argv: Sequence[str]) -> int:
    from local.drills import runner as drills

    return drills.main(argv)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "drill":
        return drill_main(argv[1:])
    if argv and argv[0] == "rehearse":
        from client import rehearsal

        return rehearsal.main(argv[1:])
    if argv and argv[0] in CLIENT_COMMANDS:
        from client import cli

        return cli.run(argv)
    if argv and not argv[0].startswith("-"):  # a command, misspelt: the stack takes only flags
        return unknown_command(argv[0])
    return serve_main(argv)


def unknown_command(name: str) -> int:
    """``python -m local spaek``: the commands, and the one it resembles."""
    from runtime.settings import did_you_mean

    console.say(
        f"error: no command {name!r}{did_you_mean([name], COMMANDS)}; the commands are "
        f"{', '.join(COMMANDS)} (python -m local COMMAND --help), and without one "
        "python -m local runs the stack (python -m local --help)"
    )
    return 2


if __name__ == "__main__":
    sys.exit(main())
