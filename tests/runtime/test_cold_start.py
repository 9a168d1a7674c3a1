"""Cold start: a listener's ``$connect`` (no token) never imports PyJWT or cryptography.

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
    result = subprocess.run(
        [sys.executable, "-c", _PROBE.format(root=str(ROOT), token=token, heavy=HEAVY)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    # stdout also carries the function's EMF line; the probe's verdict is the last line.
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
