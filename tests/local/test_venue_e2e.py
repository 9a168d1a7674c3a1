"""A venue's audience through the local stack with the committed dev settings (issue 18).

Everyone here connects from 127.0.0.1, as an audience behind a venue's Wi-Fi shares one
public address: 300 listeners connect and join one session with no refusal, and the same
address still cannot guess session IDs past ``sessionLookupFailuresPerMinute``.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest

from runtime.settings import BY_KEY
from tests.local.local_support import launch, listener, open_ws, request, speaker

AUDIENCE = 300
# Joins in flight at once: a room filling up, not one socket after another.
CONCURRENCY = 25


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    # The committed Pulumi.dev.yaml, nothing overridden.
    yield from launch(tmp_path_factory.mktemp("venue"), "venue", "--quiet")


def test_an_audience_behind_one_address_joins_and_guessing_stays_capped(stack):
    async def scenario() -> None:
        spk, session_id = await speaker(stack.url, stack.token(f"venue-{uuid.uuid4().hex[:6]}"))
        gate = asyncio.Semaphore(CONCURRENCY)

        async def one(i: int) -> tuple[object, dict]:
            async with gate:
                return await listener(stack.url, session_id, ("es", "fr", "de")[i % 3])

        joined = await asyncio.gather(*(one(i) for i in range(AUDIENCE)))
        replies = [reply for _, reply in joined]
        refused = [r for r in replies if r.get("type") != "sessionJoined"]
        assert refused == [], refused[:3]
        assert max(r["listenerCount"] for r in replies) == AUDIENCE

        # The same address guessing: unknown IDs until its failed-lookup budget is spent.
        budget = BY_KEY["sessionLookupFailuresPerMinute"].default
        ws = await open_ws(stack.url)
        outcomes = []
        for n in range(2 * budget + 1):  # covers a minute boundary between two guesses
            guess = {"action": "joinSession", "sessionId": f"quiet-lake-{100 + n}"}
            reply = await request(ws, {**guess, "targetLanguage": "es"})
            outcomes.append(reply.get("code"))
            if reply.get("code") == "RATE_LIMIT_EXCEEDED":
                assert reply["details"]["reason"] == "sessionLookupFailures"
                break
        assert outcomes[-1] == "RATE_LIMIT_EXCEEDED", outcomes
        assert set(outcomes[:-1]) == {"SESSION_NOT_FOUND"}
        assert len(outcomes) - 1 <= 2 * budget
        await asyncio.gather(spk.close(), ws.close(), *(w.close() for w, _ in joined))

    asyncio.run(asyncio.wait_for(scenario(), 600))
