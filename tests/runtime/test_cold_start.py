"""Cold start: a listener's ``$connect`` (no token) never imports PyJWT or cryptography, and no
route handler's import loads what only a rare path needs.

Each case runs in a fresh interpreter against the moto server, so ``sys.modules`` shows
exactly what one cold start of the function imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from runtime.routes import ROUTES
from runtime.settings import FUNCTION_ENVIRONMENT
from tests.support.runtime_env import ENV

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("jwt", "cryptography")

_PROBE = """\
import json, sys, time
sys.path.insert(0, {root!r})
import runtime.handlers.connect as connect
imported = set(sys.modules)
token = {token!r}
event = {{
    "queryStringParameters": {{"token": token}} if token else None,
    "requestContext": {{
        "routeKey": "$connect", "eventType": "CONNECT", "connectionId": "ColdStart001=",
        "connectedAt": int(time.time() * 1000), "requestId": "cold-1",
        "identity": {{"sourceIp": "198.51.100.99"}},
    }},
}}
response = connect.handler(event, None)
print(json.dumps({{
    "status": response["statusCode"],
    "onImport": sorted({{m.split(".")[0] for m in imported}} & set({heavy!r})),
    "afterCall": sorted({{m.split(".")[0] for m in sys.modules}} & set({heavy!r})),
}}))
"""


def cold_connect(moto_url: str, token: str | None) -> dict:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        **ENV,
        "AWS_ENDPOINT_URL": moto_url,
        "LOG_LEVEL": "ERROR",
    }
    return run_probe(["-c", _PROBE.format(root=str(ROOT), token=token, heavy=HEAVY)], env)


def run_probe(args: list[str], env: dict[str, str]) -> dict:
    """Run a probe in a fresh interpreter; its verdict is the last line of stdout (which may
    also carry the function's EMF line)."""
    result = subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_a_listener_connect_imports_neither_pyjwt_nor_cryptography(aws_server: str) -> None:
    verdict = cold_connect(aws_server, token=None)
    assert verdict == {"status": 200, "onImport": [], "afterCall": []}


@pytest.mark.parametrize("token", ["not.a.token"])
def test_a_speaker_connect_loads_them_when_a_token_arrives(aws_server: str, token: str) -> None:
    # The probe can see them: with a token, verification needs PyJWT (and refuses this one).
    verdict = cold_connect(aws_server, token=token)
    assert verdict["status"] == 401
    assert verdict["onImport"] == []
    assert set(verdict["afterCall"]) == set(HEAVY)


_IMPORT_PROBE = """\
import json, sys
sys.path.insert(0, {root!r})
import {module}
from loguru import logger
try:
    logger.remove(0)  # the handler loguru adds on import unless LOGURU_AUTOINIT is false
    default_handler = True
except ValueError:
    default_handler = False
ids = sys.modules.get("runtime.session_ids")
ours = [n for n in sys.modules if n.startswith("runtime.") and n != "runtime.handlers"]
print(json.dumps({{
    "heavy": sorted({{m.split(".")[0] for m in sys.modules}} & set({heavy!r})),
    "defaultHandler": default_handler,
    "wordLists": ids is not None and "ADJECTIVES" in vars(ids),
    # sys.modules keeps insertion order: boto3 was imported before any other module of ours.
    "boto3First": list(sys.modules).index("boto3") < list(sys.modules).index(ours[0]),
}}))
"""
WEBSOCKET_MODULES = sorted({function.module for function in ROUTES if function.route_key})
# Only generating an ID needs the word lists; the other handlers only check an ID's shape.
LOADS_WORD_LISTS = {"runtime.handlers.create_session"}


def cold_import(module: str, extra_env: dict[str, str]) -> dict:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **ENV, **extra_env}
    return run_probe(
        ["-I", "-c", _IMPORT_PROBE.format(root=str(ROOT), module=module, heavy=HEAVY)], env
    )


@pytest.mark.parametrize("module", WEBSOCKET_MODULES)
def test_a_route_handlers_import_loads_only_what_every_request_needs(module: str) -> None:
    # With the environment every deployed function gets (runtime.settings.FUNCTION_ENVIRONMENT).
    verdict = cold_import(module, FUNCTION_ENVIRONMENT)
    assert verdict == {
        "heavy": [],
        "defaultHandler": False,
        "wordLists": module in LOADS_WORD_LISTS,
        # At the shallowest depth (runtime/handlers/__init__.py says why).
        "boto3First": True,
    }


def test_without_the_function_environment_loguru_builds_its_default_handler() -> None:
    # What FUNCTION_ENVIRONMENT saves: the handler configure() removes on the first invocation.
    assert cold_import("runtime.handlers.heartbeat", {})["defaultHandler"] is True
